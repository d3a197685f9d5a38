"""What happens around the steps: writing the result image and its snapshots."""

import contextlib
import sys
from fractions import Fraction
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger

from lit_nst.callbacks.checkpoints import INTERRUPTIONS
from lit_nst.errors import UsageError, WriteError
from lit_nst.images import check_writable, check_writable_folder, labelled_panel, save_image
from lit_nst.runs import folder_of
from lit_nst.video.clips import assembled, chunk_frame_file, clip_folder
from lit_nst.video.files import (
    DEFAULT_FPS,
    VIDEO_SUFFIXES,
    WRITABLE_SUFFIXES,
    check_writable_clip,
    gif_delay,
    write_clip,
    write_frame_folder,
)


class ImageOutput(Callback):
    """Writes each job's result image at the end of the run, and snapshots every N steps; a clip's frames as they
    are done, and the clip at the end."""

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
        self.paths: list[Path] = []
        self.started = False  # the first step has begun: an interruption before it has nothing new to write

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        jobs = trainer.datamodule.jobs
        if trainer.datamodule.clip is not None:
            self._setup_clip(trainer)
            return
        if self.fps is not None:
            raise UsageError(
                "--output.fps applies to a clip (a video file or a folder of frames), and --data.content "
                "is a picture: drop it"
            )
        if self.path is not None and Path(self.path).suffix.lower() in WRITABLE_SUFFIXES[:-1]:
            raise UsageError(
                f"--output.path {self.path} is a video file, and the content a picture: give an image "
                "file name such as stylized.png"
            )
        if self.path is not None:
            if len(jobs) > 1:
                raise UsageError(f"{len(jobs)} jobs need --output.dir, not --output.path")
            self.paths = [Path(self.path)]
        else:
            folder = Path(self.dir) if self.dir is not None else Path(trainer.log_dir or ".")
            names = ["stylized"] if len(jobs) == 1 and self.dir is None else [job.name for job in jobs]
            self.paths = [folder / f"{name}.png" for name in names]
        if trainer.is_global_zero:
            for path in self.paths:
                check_writable(path)

    def _setup_clip(self, trainer: L.Trainer) -> None:
        if self.panel or self.every_n_steps:
            raise UsageError(
                "--output.panel and --output.every_n_steps are for pictures; a clip's painted frames "
                f"are kept in {self.frames_folder(trainer)} as they are done"
            )
        self.paths = [Path(self.path or self.dir or Path(trainer.log_dir or ".") / "stylized.mp4")]
        if self.dir is None:
            check_writable_clip(self.paths[0])
        else:
            # Frames numbered past this clip's, from a longer one, would read as part of it.
            frames = trainer.datamodule.clip.plan.frames
            beyond = sorted(
                path.name for path in Path(self.dir).glob("*.png") if path.stem.isdigit() and int(path.stem) >= frames
            )
            if beyond:
                raise UsageError(
                    f"--output.dir {self.dir} holds frames past this clip's {frames} ({beyond[0]}, ...), "
                    "which would read as part of it: give an empty folder"
                )
        if trainer.is_global_zero and self.dir is None:
            check_writable(self.paths[0], also=WRITABLE_SUFFIXES)

    @staticmethod
    def frames_folder(trainer: L.Trainer) -> Path:
        """Where a clip's painted frames wait to be assembled: beside the checkpoints, found again by a resume."""
        return clip_folder(folder_of(trainer)) / "frames"

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = True
        # A fresh start of a clip over the frames of an earlier attempt at the same run: they are not this one's.
        if trainer.datamodule.clip is not None and trainer.global_step == 0 and trainer.is_global_zero:
            for stale in self.frames_folder(trainer).glob("chunk*_*.png"):
                stale.unlink()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx) -> None:
        # Before the module moves its chunks on to their next frames (its own hook runs after this one).
        data = trainer.datamodule
        if data.clip is not None and data.schedule.stage_at(trainer.global_step) != pl_module.stage:
            self.write_frames(trainer, pl_module)

    def write_frames(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Each chunk's picture of the frame it paints now, once the first frame's coarse scales are behind."""
        data, stage = trainer.datamodule, pl_module.stage
        frame_stage = data.schedule.frame_stage(stage)
        if frame_stage < 0 or not trainer.is_global_zero:  # every rank holds every chunk's picture
            return
        for chunk, (frame, image) in enumerate(zip(data.frames_at(stage), pl_module.result(), strict=True)):
            if data.clip.plan.paints(chunk, frame_stage):
                save_image(image, chunk_frame_file(self.frames_folder(trainer), chunk, frame))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.every_n_steps and step % self.every_n_steps == 0 and trainer.is_global_zero:
            for path, image in zip(self.paths, pl_module.result(), strict=True):
                save_image(image, path.with_name(f"{path.stem}_step{step:05d}{path.suffix}"))
                log_snapshot(trainer, path.stem, image, step)

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
        clip = trainer.datamodule.clip
        if clip is not None:
            self.write_frames(trainer, pl_module)  # the frames in progress too: a stop loses nothing
            if trainer.is_global_zero:  # a clip is written whole
                if trainer.global_step >= trainer.datamodule.schedule.total:
                    self.write_clip(trainer)
                else:
                    done = self._frames_done(trainer, pl_module)
                    print(
                        f"lit-nst: {done} frame{'s' if done != 1 else ''} of the clip's {clip.plan.frames} painted "
                        f"so far, in {self.frames_folder(trainer)}; the video is written once the last is: resume "
                        "with --ckpt_path last",
                        file=sys.stderr,
                    )
            return
        if not trainer.is_global_zero:
            return
        jobs = trainer.datamodule.jobs
        for path, image, job in zip(self.paths, pl_module.result(), jobs, strict=True):
            save_image(image, path)
            if self.panel:
                styles = (
                    [("style", job.styles[0])]
                    if len(job.styles) == 1
                    else [(f"style {index}", style) for index, style in enumerate(job.styles, 1)]
                )
                pictures = [("content", job.content), *styles, ("result", image)]
                save_image(labelled_panel(pictures, image.shape[-2]), path.with_name(f"{path.stem}_panel.png"))
        self.wrote = written(self.paths, self.panel)

    def _frames_done(self, trainer: L.Trainer, pl_module: L.LightningModule) -> int:
        """The clip's frames painted to their last step (a stop mid-frame has written the ones in progress too)."""
        data, folder, stage = trainer.datamodule, self.frames_folder(trainer), pl_module.stage
        plan, in_progress = data.clip.plan, set()
        if data.schedule.stage_at(trainer.global_step) == stage:  # stopped inside a stage: its frames are not done
            frame_stage = data.schedule.frame_stage(stage)
            in_progress = {
                (chunk, frame)
                for chunk, frame in enumerate(data.frames_at(stage))
                if frame_stage >= 0 and plan.paints(chunk, frame_stage)
            }
        # A frame of a cross-fade is done once both chunks have painted it.
        return sum(
            all(
                (chunk, frame) not in in_progress and chunk_frame_file(folder, chunk, frame).is_file()
                for chunk, _ in plan.sources(frame)
            )
            for frame in range(plan.frames)
        )

    def write_clip(self, trainer: L.Trainer) -> None:
        clip = trainer.datamodule.clip
        frames = assembled(clip.plan, self.frames_folder(trainer))
        if self.dir is not None:
            write_frame_folder(frames, self.paths[0])
            self.wrote = f"wrote the clip's {clip.plan.frames} frames in {self.paths[0]}"
            return
        rate = clip.rate or DEFAULT_FPS
        # --output.fps 29.97 means NTSC's 30000/1001, the clip's own rate: its sound stays.
        if self.fps and not (clip.rate and abs(self.fps - float(clip.rate)) < 0.01):
            rate = Fraction(self.fps).limit_denominator(1001)
        audio = clip.path if clip.has_audio else None
        if audio is not None and rate != clip.rate:
            print(
                f"lit-nst: the clip is written at {float(rate):g} fps, not its {float(clip.rate):g}: without its "
                "sound, which would no longer match",
                file=sys.stderr,
            )
            audio = None
        note = write_clip(frames, self.paths[0], rate, audio)
        if note is not None:
            print(f"lit-nst: {note}", file=sys.stderr)
        shown = f"{float(rate):g} fps"
        if self.paths[0].suffix.lower() == ".gif":  # a GIF's delays are whole 1/100 s
            shown = f"{100 / gif_delay(rate):g} fps, a GIF's nearest to {shown}"
        self.wrote = f"wrote {self.paths[0]} ({clip.plan.frames} frames at {shown})"


def written(paths: list[Path], panel: bool) -> str:
    """What a run wrote, in one line: the picture, or how many and where (the first few by name)."""
    beside = "" if not panel else ", and its _panel.png beside it" if len(paths) == 1 else ", each with its _panel.png"
    if len(paths) == 1:
        return f"wrote {paths[0]}{beside}"
    names = ", ".join(path.name for path in paths[:3]) + (", ..." if len(paths) > 3 else "")
    return f"wrote {len(paths)} pictures in {paths[0].parent}: {names}{beside}"


def log_snapshot(trainer: L.Trainer, name: str, image, step: int) -> None:
    """Show the forming picture where the metrics are: TensorBoard's image tab, or files beside the CSV."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(f"snapshot/{name}", image.clamp(0, 1), step)
        elif logger.log_dir is not None:
            save_image(image, Path(logger.log_dir) / "images" / f"{name}_step{step:05d}.png")
