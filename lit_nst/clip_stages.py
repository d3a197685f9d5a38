"""A clip's jobs stage by stage: its first frame coarse to fine, then each chunk's next frame, and the optical flows
between them (lit_nst.video does the clip itself; this is the clip as the run's stages see it)."""

import dataclasses
from collections.abc import Callable
from pathlib import Path

from torch import Tensor

from lit_nst.errors import UsageError
from lit_nst.jobs import JobMaker, StyleJob
from lit_nst.schedule import Schedule
from lit_nst.video.clips import Clip
from lit_nst.video.files import is_clip


def clip_of(
    contents: list[str],
    styles: list[str],
    one_job_per_content: bool,
    size: int,
    settings: dict[str, int | None],
    too_small: str,
) -> Clip | None:
    """The clip to paint, when the content is one (a video file or a folder of frames); `settings` are the clip's
    flags (frame_steps, chunks, overlap), None where not given."""
    if not any(is_clip(content) for content in contents):
        given = [f"--data.{name}" for name, value in settings.items() if value is not None]
        if given:
            raise UsageError(
                f"{' and '.join(given)} apply to a clip (a video file or a folder of frames), and "
                "--data.content is a picture: drop them"
            )
        return None
    if len(contents) > 1:
        raise UsageError("a clip is painted on its own: give it as the only --data.content")
    if len(styles) > 1 and not one_job_per_content:
        raise UsageError(
            "a clip is painted in one style: give one --data.style, or blend several with --data.style_blend"
        )
    frame_steps, chunks, overlap = settings["frame_steps"], settings["chunks"], settings["overlap"]
    if frame_steps is not None and frame_steps <= 0:
        raise UsageError(f"--data.frame_steps must be positive, got {frame_steps}")
    return Clip(Path(contents[0]), size, 1 if chunks is None else chunks, 4 if overlap is None else overlap, too_small)


class ClipStages:
    """Each chunk's job at each stage of `schedule`, built once a stage (asked for at every step); the styles
    loaded once a size."""

    def __init__(self, clip: Clip, schedule: Schedule, maker: JobMaker, styles: list[str]) -> None:
        self.clip = clip
        self.schedule = schedule
        self.maker = maker
        self.style_paths = styles
        self._styles: dict[int, list[Tensor]] = {}
        self._stage_jobs: tuple[int, list[StyleJob]] = (-1, [])  # the jobs at the stage last asked for

    def jobs_at(self, stage: int) -> list[StyleJob]:
        if self._stage_jobs[0] != stage:
            self._stage_jobs = (stage, self._new_jobs(stage))
        return self._stage_jobs[1]

    def _new_jobs(self, stage: int) -> list[StyleJob]:
        size = self.schedule.size_at(stage)
        styles = self._styles_at(size)
        contents = [self.clip.frame(frame, size) for frame in self.frames_at(stage)]
        chunked = self.clip.plan.chunks > 1
        paths = [Path(style) for style in self.style_paths]
        return [
            dataclasses.replace(
                self.maker.job(self.clip.path, paths, content, styles), chunk=chunk if chunked else None
            )
            for chunk, content in enumerate(contents)
        ]

    def _styles_at(self, size: int) -> list[Tensor]:
        if size not in self._styles:
            self._styles[size] = [self.maker.load(s, "style", self.maker.style_size(size)) for s in self.style_paths]
        return self._styles[size]

    def frames_at(self, stage: int) -> list[int]:
        """The frame each chunk paints at a stage."""
        frame_stage = max(0, self.schedule.frame_stage(stage))
        return [self.clip.plan.frame(chunk, frame_stage) for chunk in range(self.clip.plan.chunks)]

    def flows_into(self, stage: int, load_flows: Callable[[], None]) -> list[tuple[Tensor, Tensor] | None]:
        """Each chunk's (flow from its frame at `stage` to its frame before, reliability); None where it stays.
        `load_flows` computes or reads them all, once, when first needed (so a refused run computes none)."""
        before, now = self.frames_at(stage - 1), self.frames_at(stage)
        if not self.clip.flows:
            load_flows()
        return [None if old == new else self.clip.flow_into(new) for old, new in zip(before, now, strict=True)]
