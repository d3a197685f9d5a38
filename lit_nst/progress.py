"""The console progress bar, worded as steps of one optimisation rather than epochs of training."""

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar


class StepProgressBar(RichProgressBar):
    """Rich bar with step/total, it/s, time left and the current losses. A resumed run's bar counts the run's steps,
    from where it resumes to its last (Lightning's counts the batches of this session's part of an epoch)."""

    @property
    def total_train_batches(self) -> int | float:
        steps = self.trainer.max_steps
        return steps if steps > 0 else super().total_train_batches

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        if self.progress is not None and self.train_progress_bar_id is not None and trainer.global_step > 0:
            # Starts at the resumed step, its rate measured from here on, not from a jump over the steps done before.
            self.progress.reset(
                self.train_progress_bar_id, total=self.total_train_batches, completed=trainer.global_step
            )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, trainer.global_step - 1)

    def _get_train_description(self, current_epoch: int) -> str:
        return "Stylizing"

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)  # a logger version number means nothing to someone painting a photo
        return metrics
