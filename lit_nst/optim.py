"""L-BFGS with one curvature history per job, so jobs optimised together never influence each other.

torch's L-BFGS keeps one history for all its parameters: with several jobs stacked in one target, each
job's step would depend on the others'. Here job b's picture, the (h_b, w_b) corner of row b of the
(B, 3, H, W) target canvas (see lit_nst.objective.canvas), gets its own torch L-BFGS, fed that picture's gradient
from the one forward and backward pass. Its vectors hold the picture's pixels only, in the order of the
job run alone: padding in the dot products changed their rounding, which L-BFGS amplified to 4/255.
"""

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from lit_nst.errors import UsageError
from lit_nst.objective.canvas import crops

# L-BFGS is handed the objective divided by 255², i.e. measured as if the image were in 0-255 pixel
# units (the convention of Gatys et al. and jcjohnson/neural-style). L-BFGS without line search is not
# invariant to that choice: before it has curvature history it takes a raw gradient step of length
# lr·|g|, which on a [0, 1] image blew the total up to 1.9e23 at step 2 and never recovered. First-order
# optimisers get the objective unscaled (Adam's eps would otherwise swamp small gradients).
# Logged losses are always the unscaled objective.
LBFGS_LOSS_SCALE = 1.0 / 255.0**2


class JobwiseLBFGS(torch.optim.Optimizer):
    """torch.optim.LBFGS applied to each job (row of the single target parameter) independently.

    One iteration per step (`max_iter` 1, no line search), which is what one training step means here.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1.0,
        history_size: int = 100,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
    ) -> None:
        """
        Args:
            params: the one target parameter, shaped (jobs, 3, H, W).
            lr: step length once curvature is known (1 is L-BFGS's natural step).
            history_size: curvature pairs kept per job.
            tolerance_grad: a job whose largest gradient entry is below this stops moving.
            tolerance_change: a job whose step would change no entry by more than this stops moving.
        """
        defaults = {
            "lr": lr,
            "history_size": history_size,
            "tolerance_grad": tolerance_grad,
            "tolerance_change": tolerance_change,
        }
        super().__init__(params, defaults)
        if len(self.param_groups) != 1 or len(self.param_groups[0]["params"]) != 1:
            raise ValueError("JobwiseLBFGS optimises exactly one parameter, the stacked target images")
        self._jobs: list[torch.optim.LBFGS] = []
        self._pending_job_states: list[dict[str, Any]] | None = None
        self._job_shapes: list[tuple[int, int]] | None = None  # None: each job fills its row

    def set_job_shapes(self, shapes: list[tuple[int, int]]) -> None:
        """Each job's (h, w) corner of the target canvas (the module tells, at every scale)."""
        if shapes != self._job_shapes:
            self._job_shapes = list(shapes)
            self._jobs = []  # rebuilt on the new pictures at the next step, keeping any loaded state

    @property
    def target(self) -> Tensor:
        return self.param_groups[0]["params"][0]

    def _job_optimizers(self) -> list[torch.optim.LBFGS]:
        # Built at the first step: the target gets its shape (and its storage) only in the module's setup.
        if not self._jobs or self._jobs[0].param_groups[0]["params"][0].data_ptr() != self.target.data[0].data_ptr():
            settings = optimizer_settings(self)
            self._jobs = [
                torch.optim.LBFGS([picture], max_iter=1, **settings) for picture in self._pictures(self.target.data)
            ]
            if self._pending_job_states is not None:
                for optimizer, state in zip(self._jobs, self._pending_job_states, strict=True):
                    optimizer.load_state_dict(state)
                    apply_settings(optimizer, settings)  # this run's settings, not the checkpoint's
                self._pending_job_states = None
        for optimizer in self._jobs:
            optimizer.param_groups[0]["lr"] = self.param_groups[0]["lr"]  # follow any lr scheduler
        return self._jobs

    def _pictures(self, canvas: Tensor) -> list[Tensor]:
        if self._job_shapes is None:
            return list(canvas)
        return crops(canvas, self._job_shapes)

    def reset(self) -> None:
        """Forget every job's curvature history (the target changed shape: a new scale)."""
        self._jobs = []
        self._pending_job_states = None

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor]) -> Tensor:  # type: ignore[override]
        """One batched forward/backward through `closure`, then one L-BFGS iteration per job."""
        with torch.enable_grad():
            loss = closure()
        gradients = self._pictures(self.target.grad)
        for job, optimizer in enumerate(self._job_optimizers()):
            (picture,) = optimizer.param_groups[0]["params"]
            # contiguous, so that L-BFGS can flatten it; the picture itself is updated in place, as a view
            picture.grad = gradients[job].contiguous()
            # With max_iter 1 and no line search, L-BFGS evaluates its closure once, before its update.
            optimizer.step(lambda: loss)
        return loss

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["jobs"] = [optimizer.state_dict() for optimizer in self._jobs] or self._pending_job_states
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        job_states = state_dict.pop("jobs", None)
        super().load_state_dict(state_dict)
        self._jobs = []
        self._pending_job_states = job_states


def reset_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Start the optimiser afresh on a target of a new shape; its settings stay."""
    if isinstance(optimizer, JobwiseLBFGS):
        optimizer.reset()
        return
    optimizer.state.clear()  # torch's optimisers build their state lazily, at the parameter's new shape
    if isinstance(optimizer, torch.optim.LBFGS):
        optimizer._numel_cache = None


def optimizer_settings(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimiser's hyperparameters (its first group's, less the parameters)."""
    return {key: value for key, value in optimizer.param_groups[0].items() if key != "params"}


def apply_settings(optimizer: torch.optim.Optimizer, settings: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Give a restored optimiser this run's `settings`; returns {setting: (checkpoint's, now)} of those changed.

    A shorter L-BFGS history keeps the newest curvature pairs.
    """
    changed = {}
    for group in optimizer.param_groups:
        for key, value in settings.items():
            if key in group and group[key] != value:
                changed[key] = (group[key], value)
                group[key] = value
    # JobwiseLBFGS's jobs' optimisers take the settings when next built (see `_job_optimizers`).
    if isinstance(optimizer, torch.optim.LBFGS) and "history_size" in changed:
        _fit_history(optimizer, settings["history_size"])
    return changed


def _fit_history(optimizer: torch.optim.LBFGS, history_size: int) -> None:
    for state in optimizer.state.values():
        for key in ("old_dirs", "old_stps", "ro"):
            if key in state:
                state[key] = state[key][-history_size:]
        if "al" in state:  # torch sizes this scratch list once, by the history size of the first step
            state["al"] = [None] * history_size


class StepPolicy(NamedTuple):
    """What an optimiser needs of each step."""

    clamp_every_step: bool  # the target clamped to [0, 1] after each step
    loss_scale: float  # what the objective is multiplied by before the optimiser sees it


def step_policy(optimizer: torch.optim.Optimizer, jobs: int) -> StepPolicy:
    """The optimiser's policy; a UsageError for torch's LBFGS over several jobs."""
    if isinstance(optimizer, torch.optim.LBFGS) and jobs > 1:
        raise UsageError(
            f"torch's LBFGS would share one curvature history across the {jobs} jobs; "
            "use --optimizer lit_nst.optim.JobwiseLBFGS"
        )
    # L-BFGS's curvature history assumes the iterate it produced; clamping it each step breaks it.
    quasi_newton = isinstance(optimizer, torch.optim.LBFGS | JobwiseLBFGS)
    return StepPolicy(not quasi_newton, LBFGS_LOSS_SCALE if quasi_newton else 1.0)


def settings_note(changed: dict[str, tuple[Any, Any]]) -> str | None:
    """The line of a resume that changed the optimiser's settings (`apply_settings`), or None."""
    if not changed:
        return None
    said = ", ".join(
        f"--optimizer.{key} {now} (the checkpoint's was {before})" for key, (before, now) in changed.items()
    )
    return f"resuming with {said}"
