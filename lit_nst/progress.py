"""The console progress bar, worded as steps of one optimisation rather than epochs of training."""

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar


class StepProgressBar(RichProgressBar):
    """Rich bar with step/total, it/s, time left and the current losses."""

    def _get_train_description(self, current_epoch: int) -> str:
        return "Stylizing"

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)  # a logger version number means nothing to someone painting a photo
        return metrics
