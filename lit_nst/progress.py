"""The console progress bar, worded as steps of one optimisation rather than epochs of training."""

import shutil
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar


class StepProgressBar(RichProgressBar):
    """Rich bar with step/total, time, rate and the total loss on one line (each term too where there is room). A
    resumed run's bar counts the run's steps, from where it resumes to its last (Lightning's counts the batches of
    this session's part of an epoch)."""

    room_for_terms = 0  # the columns the line leaves after its fixed parts (configure_columns)

    @property
    def total_train_batches(self) -> int | float:
        steps = self.trainer.max_steps
        return steps if steps > 0 else super().total_train_batches

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        # A resume from a checkpoint taken mid-run skips on_train_epoch_start, where Lightning makes the bar.
        if self.progress is not None and self.train_progress_bar_id is None and trainer.global_step > 0:
            self.train_progress_bar_id = self._add_task(self.total_train_batches, self._get_train_description(0))
        self.start_at_the_resumed_step(trainer)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self.start_at_the_resumed_step(trainer)

    def start_at_the_resumed_step(self, trainer: L.Trainer) -> None:
        # Its rate measured from here on, not from a jump over the steps done before.
        if self.progress is not None and self.train_progress_bar_id is not None and trainer.global_step > 0:
            self.progress.reset(
                self.train_progress_bar_id, total=self.total_train_batches, completed=trainer.global_step
            )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, trainer.global_step - 1)

    def _get_train_description(self, current_epoch: int) -> str:
        return "Stylizing"

    def configure_columns(self, trainer: L.Trainer) -> list:
        # One line from 60 columns. What the parts after the bar take: the count "N/M", the times
        # "0:00:00 • 0:00:00" (19, with ten hours), the rate "99.99it/s" (10), "loss: 1.23e+06" (14) and the spaces
        # between; the description (10) where there is room, and the rate only where the bar keeps 6 columns.
        description, bar, count, times, rate = super().configure_columns(trainer)
        width, digits = self.width(), len(str(max(trainer.max_steps, 1)))
        columns, fixed = [bar, count, times, rate], 2 * digits + 1 + 19 + 10 + 14 + 4
        if width - fixed >= 6 + 10 + 20:
            columns, fixed = [description, *columns], fixed + 10
        elif width - fixed < 6:
            columns, fixed = [bar, count, times], fixed - 11
        bar.bar_width = min(40, max(6, width - fixed))
        self.room_for_terms = width - fixed - bar.bar_width
        return columns

    def width(self) -> int:
        return self._console.width if self._console is not None else shutil.get_terminal_size().columns

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        # The total, and each term while the line has room; all of them stay in the logger, unrounded.
        logged = super().get_metrics(trainer, pl_module)
        logged.pop("v_num", None)  # a logger version number means nothing to someone painting a photo
        if not pl_module.evaluation.splits_jobs:  # else summed over the processes, as logged
            logged.update(pl_module.live_losses)
        if "loss/total" not in logged:
            return {}
        shown, room = {"loss": f"{float(logged.pop('loss/total')):.3g}"}, self.room_for_terms
        for name, value in logged.items():
            name, value = name.removeprefix("loss/"), f"{float(value):.3g}"
            room -= len(f" {name}: {value}")
            if room < 0:
                break
            shown[name] = value
        return shown
