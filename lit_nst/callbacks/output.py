"""The `--output` group: where the run's pictures or clip go. A picture writer or a clip writer does the writing."""

import contextlib
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback

from lit_nst.callbacks.checkpoints import INTERRUPTIONS
from lit_nst.callbacks.clip_output import ClipWriter
from lit_nst.callbacks.pictures import PictureWriter
from lit_nst.callbacks.writer import Writer
from lit_nst.errors import UsageError, WriteError
from lit_nst.images import check_writable, check_writable_folder
from lit_nst.video.files import VIDEO_SUFFIXES, WRITABLE_SUFFIXES, check_writable_clip


class ImageOutput(Callback):
    """Writes the results: each job's picture, its snapshots and panel; or a clip, its frames as they are done.

    A picture writer or a clip writer does the writing, chosen by what the content is.
    """

    wrote: str | None = None  # what `write` wrote, for the run's last line (RunNote)

    def __init__(
        self,
        path: str | None = None,
        dir: str | None = None,
        every_n_steps: int = 0,
        panel: bool = False,
        fps: float | None = None,
    ) -> None:
        """
        Args:
            path: the result image of a single job; by default `stylized.png` in the run's log directory. For a
                clip, a video file (.mp4, .mov, .mkv; .gif without sound); by default `stylized.mp4`.
            dir: the folder for the results of several jobs, each named `<content>__<style>.png`; for a clip,
                its frames as `00000.png`, `00001.png`, ...
            every_n_steps: also write `<name>_step<N>.png` snapshots every N steps (0: never).
            panel: also write `<name>_panel.png`: content | style | result side by side, labelled.
            fps: a clip's frame rate; by default the source's (24 for a folder of frames).
        """
        if every_n_steps < 0:
            raise UsageError(f"--output.every_n_steps must be 0 (off) or positive, got {every_n_steps}")
        if path is not None and dir is not None:
            raise UsageError("give --output.path (one job) or --output.dir (several jobs), not both")
        # Checked now, before the trainer starts, so a bad path fails before the first step.
        if fps is not None and fps <= 0:
            raise UsageError(f"--output.fps must be positive, got {fps}")
        if path is not None:
            if Path(path).suffix.lower() in VIDEO_SUFFIXES:
                check_writable_clip(Path(path))
            check_writable(Path(path), also=WRITABLE_SUFFIXES)
        if dir is not None:
            check_writable_folder(Path(dir))
        self.path = path
        self.dir = dir
        self.every_n_steps = every_n_steps
        self.panel = panel
        self.fps = fps
        self.writer: Writer | None = None  # chosen in `setup`, by what the content is
        self.started = False  # the first step has begun: an interruption before it has nothing new to write

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.datamodule.clip is not None:
            if self.panel or self.every_n_steps:
                raise UsageError(
                    "--output.panel and --output.every_n_steps are for pictures; a clip's painted frames "
                    f"are kept in {ClipWriter.frames_folder(trainer)} as they are done"
                )
            self.writer = ClipWriter(self.path, self.dir, self.fps, trainer)
            return
        if self.fps is not None:
            raise UsageError(
                "--output.fps applies to a clip (a video file or a folder of frames), and --data.content "
                "is a picture: drop it"
            )
        self.writer = PictureWriter(self.path, self.dir, self.every_n_steps, self.panel, trainer)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = True
        self.writer.start(trainer)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx) -> None:
        self.writer.before_step(trainer, pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        self.writer.after_step(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # on_fit_end, not on_train_end: a resume of a finished run skips training but still rewrites the image.
        self.write(trainer, pl_module)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # Only interruptions of a run under way: after a divergence the image of the last good step must stay as it
        # is, and before the first step there is nothing new to write (an earlier result at the path stays).
        if isinstance(exception, INTERRUPTIONS) and self.started:
            self.write(trainer, pl_module)
        # A checkpoint that could not be written (its disk full): the picture may still fit where it goes.
        if isinstance(exception, WriteError) and self.started and exception.path.suffix == ".ckpt":
            with contextlib.suppress(WriteError):
                self.write(trainer, pl_module)

    def write(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        wrote = self.writer.write(trainer, pl_module)
        self.wrote = wrote if wrote is not None else self.wrote
