"""Watching the objective for an optimiser that overshoots, before it turns into a useless picture."""

import math


class RisingLoss:
    """Says once when the objective climbs far above where its stage began. L-BFGS's first steps can overshoot
    at small sizes (a 32-px picture of Chelsea in Starry Night goes from 1.1e8 to 1.0e10 at step 2 at lr 1, and
    stays above its start for 10 steps; at lr 0.5 it peaks at 1.6x): the run goes on, the user is told why."""

    FACTOR = 10.0  # a healthy run stays below its stage's start; an overshoot jumps by 100x

    def __init__(self) -> None:
        self.stage: int | None = None
        self.start = math.nan
        self.start_step = 0
        self.warned = False

    def update(self, value: float, stage: int, step: int) -> str | None:
        """The warning, the first time `value` at `step` is FACTOR times its stage's first value; else None."""
        if stage != self.stage:  # a new stage (a finer scale, a clip's next frame) has another scale of loss
            self.stage, self.start, self.start_step = stage, value, step
            return None
        if self.warned or not value > self.FACTOR * self.start > 0:
            return None
        self.warned = True
        return (
            f"the loss rose from {self.start:.3g} at step {self.start_step} to {value:.3g} at step {step}: the "
            "optimiser overshoots; lower --optimizer.lr (to 0.5 or less) or --model.style_weight"
        )
