"""The run's stages: each scale of a coarse-to-fine schedule, then for a clip each frame after the first; which
stage a step is in, asked in one place by the module and the callbacks."""

import bisect
import itertools

from lit_nst.errors import UsageError

DEFAULT_SIZE = 512  # the output's longer side, in pixels, unless --data.size or a schedule says otherwise
FIRST_FRAME_STEPS = 200  # a clip's cold start, without a coarse-to-fine schedule for it
DEFAULT_MAX_STEPS = 500  # a single-scale run's length when --trainer.max_steps is not given


class Schedule:
    """Stages and their steps. `scales` are the longer sides, coarse to fine, the last the output's; `steps` the steps
    of each stage (empty: one stage as long as the run); a clip's stages past its scales are its frames."""

    def __init__(self, scales: list[int], steps: list[int], note: str | None = None, given: bool = False) -> None:
        self.scales = scales
        self.steps = steps
        self.note = note  # a schedule stretched to --data.size, for the run's first lines
        self.given = given  # set by --data.scales, not only by --data.size
        self.frame_steps: int | None = None  # a clip's steps for each frame after the first
        # Asked at every step, by the module and two callbacks, over a clip's hundreds of stages: a bisection.
        self.starts = list(itertools.accumulate(steps[:-1], initial=0)) if steps else [0]

    @classmethod
    def from_flags(cls, size: int | None, scales: list[int] | None, steps: list[int] | None) -> "Schedule":
        """One scale, `size`, unless a coarse-to-fine schedule is given; a `size` given with a schedule that ends
        elsewhere stretches the schedule (a preset at another size)."""
        if size is not None and size <= 0:
            raise UsageError(f"--data.size must be a positive number of pixels, got {size}")
        if scales is None:
            if steps is not None:
                raise UsageError("--data.steps goes with --data.scales (one number of steps per scale)")
            return cls([DEFAULT_SIZE if size is None else size], [])
        if steps is None or len(steps) != len(scales):
            raise UsageError(f"--data.scales {scales} needs --data.steps with one number of steps per scale")
        if any(scale <= 0 for scale in scales) or any(b <= a for a, b in itertools.pairwise(scales)):
            raise UsageError(f"--data.scales must be positive and increasing, got {scales}")
        if any(count <= 0 for count in steps):
            raise UsageError(f"--data.steps must be positive, got {steps}")
        if size is None or size == scales[-1]:
            return cls(list(scales), list(steps), given=True)
        stretched = stretch(scales, size)
        if stretched is None:
            # Stretching up never merges scales; down, rounding may merge and part them again: the least size from
            # which every size up to the schedule's own keeps them apart.
            least = next(n for n in range(scales[-1], 0, -1) if stretch(scales, n - 1) is None)
            raise UsageError(
                f"--data.size {size} is too small for the {len(scales)} scales of --data.scales {scales}: "
                f"give --data.size {least} or more, or --data.scales ending at it"
            )
        note = f"--data.size {size} stretches --data.scales {list(scales)} to {stretched}"
        return cls(stretched, list(steps), note, given=True)

    def with_frames(self, frames: int, frame_steps: int) -> "Schedule":
        """A clip's: its first frame over the scales (or `FIRST_FRAME_STEPS`), then `frame_steps` a frame."""
        first = self.steps or [FIRST_FRAME_STEPS]
        clip = Schedule(self.scales, first + [frame_steps] * (frames - 1), self.note, self.given)
        clip.frame_steps = frame_steps
        return clip

    @property
    def stages(self) -> int:
        return max(1, len(self.steps))

    @property
    def total(self) -> int:
        """The schedule's steps in all; 0 for a single stage, whose length is the run's."""
        return sum(self.steps)

    def run_length(self, asked: int) -> tuple[int, str | None]:
        """The run's steps: the schedule's, else `DEFAULT_MAX_STEPS`; an explicit --trainer.max_steps `asked`
        (Lightning's -1 means unset) stops earlier, with a line for the user where it cuts a schedule."""
        if asked < 0:
            return self.total or DEFAULT_MAX_STEPS, None
        if not self.total or asked == self.total:
            return asked, None
        what = "stops the schedule early" if asked < self.total else "is beyond the schedule's end"
        schedule = (
            "the clip (--data.steps, then --data.frame_steps a frame)"
            if self.frame_steps is not None
            else f"the schedule --data.steps {self.steps}"
        )
        resume = " (resume with --ckpt_path last)" if asked < self.total else ""
        note = (
            f"--trainer.max_steps {asked} {what}: {schedule} takes {self.total} steps; the run stops at step "
            f"{min(asked, self.total)}{resume}"
        )
        return min(asked, self.total), note

    def stage_at(self, step: int) -> int:
        """Which stage step `step` (0-based) belongs to."""
        return bisect.bisect_right(self.starts, step) - 1 if self.steps else 0

    def size_at(self, stage: int) -> int:
        """The longer side at a stage: a clip's frames after the first are at the output size."""
        return self.scales[min(stage, len(self.scales) - 1)]

    def frame_stage(self, stage: int) -> int:
        """Of a clip, the step of its frame sweep that a stage is (the `stage` of lit_nst.video.clips.ChunkPlan): 0 at
        the first frame's last scale, then one a frame; negative at the first frame's coarser scales."""
        return stage - len(self.scales) + 1

    def moves_frames(self, stage: int) -> bool:
        """Whether at this stage a clip moves on to its next frames (rather than to a finer scale)."""
        return self.frame_steps is not None and stage >= len(self.scales)


def stretch(scales: list[int], size: int) -> list[int] | None:
    """`scales` in proportion, ending at `size`; None where rounding merges two of them or makes one 0."""
    stretched = [round(scale * size / scales[-1]) for scale in scales]
    return None if any(b <= a for a, b in itertools.pairwise([0, *stretched])) else stretched
