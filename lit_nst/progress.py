"""The console progress bar, worded as steps of one optimisation rather than epochs of training."""

import shutil
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

    def configure_columns(self, trainer: L.Trainer) -> list:
        # One line from 60 columns: the bar gives up what the steps, times, rate and loss need.
        description, bar, *rest = super().configure_columns(trainer)
        bar.bar_width = min(40, max(6, self.width() - 58))
        return [description, bar, *rest] if self.width() >= 80 else [bar, *rest]

    def width(self) -> int:
        return self._console.width if self._console is not None else shutil.get_terminal_size().columns

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        # The total, and each term where there is room; all of them stay in the logger, unrounded.
        logged = super().get_metrics(trainer, pl_module)
        logged.pop("v_num", None)  # a logger version number means nothing to someone painting a photo
        shown = {"loss": logged["loss/total"]} if "loss/total" in logged else {}
        if self.width() >= 150:
            shown |= {name.removeprefix("loss/"): value for name, value in logged.items() if name != "loss/total"}
        return {name: f"{float(value):.3g}" for name, value in shown.items()}
