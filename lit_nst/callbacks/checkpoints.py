"""Checkpoints that survive interruptions: a fixed place, atomic writes, a save on Ctrl-C and SIGTERM."""

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lit_nst.errors import UsageError, WriteError
from lit_nst.files import atomic_file
from lit_nst.ranks import say
from lit_nst.resume import read_checkpoint_record
from lit_nst.run_start import keep_a_waiting_checkpoint
from lit_nst.runs import folder_of

INTERRUPTIONS = (KeyboardInterrupt, SIGTERMException)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file, then renames it: a kill mid-write leaves the old one whole."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        with atomic_file(Path(path), durable=True) as stream:
            torch.save(checkpoint, stream)


class RunCheckpoint(ModelCheckpoint):
    """`last.ckpt` in the run's folder (lit_nst.runs), every N steps, at the end of every run, and on interrupt."""

    def __init__(self, every_n_steps: int = 100, keep: int = 0, dirpath: str | None = None) -> None:
        """
        Args:
            every_n_steps: write the checkpoint every this many steps (and always at the end of a run).
            keep: also keep this many of the latest periodic checkpoints as `step-NNNNNN.ckpt` (-1: all).
                Off by default: an L-BFGS checkpoint carries its whole history, hundreds of MB at 512 px.
            dirpath: where checkpoints go; by default the run's own folder in `checkpoints/` under
                `--trainer.default_root_dir`, named by its pictures and a hash of its settings.
        """
        if every_n_steps <= 0:
            raise UsageError(f"--checkpoint.every_n_steps must be positive, got {every_n_steps}")
        if keep < -1:
            raise UsageError(f"--checkpoint.keep must be -1 (all), 0 or a positive count, got {keep}")
        super().__init__(
            dirpath=dirpath,
            filename="step-{step:06d}",
            auto_insert_metric_name=False,
            # The newest steps win: ranked by the step itself.
            monitor="step" if keep else None,
            mode="max",
            every_n_train_steps=every_n_steps,
            save_top_k=keep,
            save_last=True,
            enable_version_counter=False,
        )
        self.started = False  # the first step has begun: an interruption before it has nothing to save

    def last_path(self, trainer: L.Trainer) -> Path:
        """The run's `last.ckpt`: one fixed file in the run's own folder (lit_nst.runs), found by --ckpt_path last."""
        folder = Path(self.dirpath) if self.dirpath is not None else folder_of(trainer)
        return folder / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.dirpath = str(self.last_path(trainer).parent)
        super().setup(trainer, pl_module, stage)
        if trainer.is_global_zero:
            # Temporaries of writes that a hard kill cut short.
            for stale in Path(self.dirpath).glob(".*.ckpt.*.tmp"):
                stale.unlink(missing_ok=True)

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, Any]) -> None:
        # An image that is already NaN or infinite would replace the last good checkpoint with a useless one.
        if torch.isfinite(trainer.lightning_module.target).all():
            super()._save_last_checkpoint(trainer, monitor_candidates)

    def what_remains(self, trainer: L.Trainer, failed: Path | None = None) -> str:
        """After a failed write (of `failed`): how to go on, with the step this run's checkpoint still holds."""
        last = self.last_path(trainer)
        try:
            step = read_checkpoint_record(last)["global_step"]
        except UsageError:
            return "run again"
        holder = "it" if failed == last else str(last)
        return f"resume with the same command and --ckpt_path last ({holder} still holds step {step})"

    def save_now(self, trainer: L.Trainer) -> None:
        if self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            self._last_global_step_saved = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        super().on_train_batch_end(trainer, pl_module, *args)
        data = trainer.datamodule
        # A clip's frame is done (lit_nst.video.clips): from here on no kill, however hard, makes a resume repaint it.
        if getattr(data, "clip", None) is not None and data.schedule.stage_at(trainer.global_step) != pl_module.stage:
            self.save_now(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save_now(trainer)  # however short the run, and whatever N is

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = True
        if trainer.ckpt_path is None and trainer.is_global_zero:  # a fresh start: this run's checkpoint kept aside
            keep_a_waiting_checkpoint(self.last_path(trainer))

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, WriteError):  # whichever write failed: what the checkpoint holds, how to go on
            exception.then = self.what_remains(trainer, exception.path)
        # Only interruptions of a run under way: after a divergence or an error the last good checkpoint must stay.
        if isinstance(exception, INTERRUPTIONS) and self.started:
            self.save_now(trainer)
            say(
                trainer,
                f"interrupted at step {trainer.global_step}: checkpoint saved to {self.last_path(trainer)}; "
                "resume with the same command and --ckpt_path last",
            )
