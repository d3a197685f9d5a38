"""Writing a clip: each chunk's frames as they are done, beside the checkpoints, and the video once the last is."""

import sys
from fractions import Fraction
from pathlib import Path

import lightning as L

from lit_nst.callbacks.writer import Writer
from lit_nst.errors import UsageError
from lit_nst.images import check_writable, save_image
from lit_nst.runs import folder_of
from lit_nst.video.clips import assembled, chunk_frame_file, clip_folder
from lit_nst.video.files import (
    DEFAULT_FPS,
    WRITABLE_SUFFIXES,
    check_writable_clip,
    gif_delay,
    write_clip,
    write_frame_folder,
)


class ClipWriter(Writer):
    """A clip: a video file at `path` (`stylized.mp4` in the log directory by default), or its frames in `dir`, at
    `fps` (by default the source's)."""

    def __init__(self, path: str | None, dir: str | None, fps: float | None, trainer: L.Trainer) -> None:
        self.dir = dir
        self.fps = fps
        self.what = "the video is" if dir is None else f"the clip's frames in {dir} are"
        self.paths = [Path(path or dir or Path(trainer.log_dir or ".") / "stylized.mp4")]
        if dir is None:
            check_writable_clip(self.paths[0])
        else:
            # Frames numbered past this clip's, from a longer one, would read as part of it.
            frames = trainer.datamodule.clip.plan.frames
            beyond = sorted(
                path.name for path in Path(dir).glob("*.png") if path.stem.isdigit() and int(path.stem) >= frames
            )
            if beyond:
                raise UsageError(
                    f"--output.dir {dir} holds frames past this clip's {frames} ({beyond[0]}, ...), "
                    "which would read as part of it: give an empty folder"
                )
        if trainer.is_global_zero and dir is None:
            check_writable(self.paths[0], also=WRITABLE_SUFFIXES)

    @staticmethod
    def frames_folder(trainer: L.Trainer) -> Path:
        """Where a clip's painted frames wait to be assembled: beside the checkpoints, found again by a resume."""
        return clip_folder(folder_of(trainer)) / "frames"

    def start(self, trainer: L.Trainer) -> None:
        # A fresh start of a clip over the frames of an earlier attempt at the same run: they are not this one's.
        if trainer.global_step == 0 and trainer.is_global_zero:
            for stale in self.frames_folder(trainer).glob("chunk*_*.png"):
                stale.unlink()

    def before_step(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Before the module moves its chunks on to their next frames (its own hook runs after this one).
        if trainer.datamodule.schedule.stage_at(trainer.global_step) != pl_module.stage:
            self.write_frames(trainer, pl_module)

    def write_frames(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Each chunk's picture of the frame it paints now, once the first frame's coarse scales are behind."""
        data, stage = trainer.datamodule, pl_module.stage
        frame_stage = data.schedule.frame_stage(stage)
        if frame_stage < 0 or not trainer.is_global_zero:  # every rank holds every chunk's picture
            return
        for chunk, (frame, image) in enumerate(zip(data.frames_at(stage), pl_module.result(), strict=True)):
            if data.clip.plan.paints(chunk, frame_stage):
                save_image(image, chunk_frame_file(self.frames_folder(trainer), chunk, frame))

    def write(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str | None:
        """The frames in progress (a stop loses nothing); the clip, whole, once its last frame is painted."""
        self.write_frames(trainer, pl_module)
        if not trainer.is_global_zero:
            return None
        if trainer.global_step >= trainer.datamodule.schedule.total:
            return self.write_clip(trainer)
        done, frames = self._frames_done(trainer, pl_module), trainer.datamodule.clip.plan.frames
        print(
            f"lit-nst: {done} frame{'s' if done != 1 else ''} of the clip's {frames} painted so far, in "
            f"{self.frames_folder(trainer)}; {self.what} written once the last is: resume with --ckpt_path last",
            file=sys.stderr,
        )
        return None

    def _frames_done(self, trainer: L.Trainer, pl_module: L.LightningModule) -> int:
        """The clip's frames painted to their last step (a stop mid-frame has written the ones in progress too)."""
        data, folder, stage = trainer.datamodule, self.frames_folder(trainer), pl_module.stage
        plan, in_progress = data.clip.plan, set()
        if data.schedule.stage_at(trainer.global_step) == stage:  # stopped inside a stage: its frames are not done
            frame_stage = data.schedule.frame_stage(stage)
            in_progress = {
                (chunk, frame)
                for chunk, frame in enumerate(data.frames_at(stage))
                if frame_stage >= 0 and plan.paints(chunk, frame_stage)
            }
        # A frame of a cross-fade is done once both chunks have painted it.
        return sum(
            all(
                (chunk, frame) not in in_progress and chunk_frame_file(folder, chunk, frame).is_file()
                for chunk, _ in plan.sources(frame)
            )
            for frame in range(plan.frames)
        )

    def write_clip(self, trainer: L.Trainer) -> str:
        clip = trainer.datamodule.clip
        frames = assembled(clip.plan, self.frames_folder(trainer))
        if self.dir is not None:
            write_frame_folder(frames, self.paths[0])
            return f"wrote the clip's {clip.plan.frames} frames in {self.paths[0]}"
        rate = clip.rate or DEFAULT_FPS
        # --output.fps 29.97 means NTSC's 30000/1001, the clip's own rate: its sound stays.
        if self.fps and not (clip.rate and abs(self.fps - float(clip.rate)) < 0.01):
            rate = Fraction(self.fps).limit_denominator(1001)
        audio = clip.path if clip.has_audio else None
        if audio is not None and rate != clip.rate:
            print(
                f"lit-nst: the clip is written at {float(rate):g} fps, not its {float(clip.rate):g}: without its "
                "sound, which would no longer match",
                file=sys.stderr,
            )
            audio = None
        note = write_clip(frames, self.paths[0], rate, audio)
        if note is not None:
            print(f"lit-nst: {note}", file=sys.stderr)
        shown = f"{float(rate):g} fps"
        if self.paths[0].suffix.lower() == ".gif":  # a GIF's delays are whole 1/100 s
            shown = f"{100 / gif_delay(rate):g} fps, a GIF's nearest to {shown}"
        return f"wrote {self.paths[0]} ({clip.plan.frames} frames at {shown})"
