"""Watching the objective for an optimiser that does not converge, while the run goes on."""

import math

import lightning as L

from lit_nst.errors import DivergedError
from lit_nst.ranks import any_rank, say


def stop_if_diverged(trainer: L.Trainer, value: float, step: int) -> None:
    """A DivergedError on every rank where the loss is not finite on any: one rank alone leaving would cut the others
    off mid-collective."""
    (stop,) = any_rank(trainer, not math.isfinite(value))
    if stop:
        value = value if not math.isfinite(value) else "non-finite on another process"
        raise DivergedError(
            f"the loss became {value} at step {step}: lower the learning rate (--optimizer.lr) or the style weight "
            "(--model.style_weight); the last good checkpoint and image were kept"
        )


class LossWatch(L.Callback):
    """Warns once, on rank 0, when the objective does not converge (`RisingLoss`), from the loss each step has
    already read (`StyleTransfer.step_loss`): no wait of its own for the device."""

    def __init__(self) -> None:
        self.rising = RisingLoss()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object) -> None:
        step = trainer.global_step - 1  # the step just taken
        say(trainer, self.rising.update(pl_module.step_loss, pl_module.stage, step), "warning: ")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        say(trainer, self.rising.at_end(), "warning: ")


class RisingLoss:
    """Says once when, `PATIENCE` steps into a stage, the objective is still above where the stage began.

    L-BFGS's first steps often overshoot and recover: Chelsea in Starry Night at 32 px goes from 1.1e8 to 1.0e10 at
    step 2 with lr 1 and is back below 1.1e8 by step 11, ending lower than at lr 0.5; at 128 px it is below its start
    by step 3. That is no reason to worry anyone. At lr 3 it is still about 40 times its start at step 25: that run
    is not converging, and the user is told what to lower.
    """

    PATIENCE = 20

    def __init__(self) -> None:
        self.stage: int | None = None
        self.start = math.nan
        self.start_step = 0
        self.last = math.nan
        self.last_step = 0
        self.warned = False

    def at_end(self) -> str | None:
        """The warning, where the run ends above where its last stage began, too short to have said it before but
        long enough to tell (`PATIENCE` // 2 steps): in its first few steps L-BFGS's overshoot is the rule."""
        if self.warned or not self.last > self.start or self.last_step - self.start_step < self.PATIENCE // 2:
            return None
        self.warned = True
        return (
            f"the loss ended at {self.last:.3g}, above the {self.start:.3g} its stage began with at step "
            f"{self.start_step}: the optimiser did not converge; lower --optimizer.lr (to 0.5 or less) or "
            "--model.style_weight"
        )

    def update(self, value: float, stage: int, step: int) -> str | None:
        """The warning, the first time `value` at `step` is still above its stage's first value PATIENCE steps on."""
        self.last, self.last_step = value, step
        if stage != self.stage:  # a new stage (a finer scale, a clip's next frame) has another scale of loss
            self.stage, self.start, self.start_step = stage, value, step
            return None
        if self.warned or step - self.start_step < self.PATIENCE or not value > self.start:
            return None
        self.warned = True
        return (
            f"the loss is {value:.3g} at step {step}, still above the {self.start:.3g} its stage began with at step "
            f"{self.start_step}: the optimiser is not converging; lower --optimizer.lr (to 0.5 or less) or "
            "--model.style_weight"
        )
