"""The run's own lines on stderr: how it starts, where it resumes, and what it wrote."""

import logging
import os
from typing import ClassVar

import lightning as L
from lightning.pytorch.callbacks import Callback

from lit_nst.callbacks.clip_output import ClipWriter
from lit_nst.callbacks.output import ImageOutput
from lit_nst.ranks import say


def resuming_note(trainer: L.Trainer) -> str:
    """Where a resumed run goes on: its step, and its stage where there are several, of all."""
    data, step = trainer.datamodule, trainer.global_step
    stages = len(data.schedule.steps)
    stage = f", stage {data.schedule.stage_at(step) + 1} of {stages}" if stages > 1 else ""
    if data.clip is not None:  # a clip's stages after the first frame's schedule are its frames
        plan = data.clip.plan
        frame = max(0, data.schedule.frame_stage(data.schedule.stage_at(step))) + 1
        stage = f", frame {frame} of {plan.stages}" + (f" in each of {plan.chunks} chunks" if plan.chunks > 1 else "")
    return f"resuming at step {step} of {trainer.max_steps}{stage}, from {trainer.ckpt_path}"


def device_note(lightning_lines: list[str]) -> str | None:
    """Of Lightning's device and precision lines, what a user may act on: an accelerator there but not used. The
    rest is said by lit-nst's precision note, or was asked for."""
    unused = [
        line.split(" available")[0]
        for line in lightning_lines
        if " available: True" in line and ("used: False" in line or "using: 0" in line)
    ]
    if not unused:
        return None
    return f"{' and '.join(unused)} available but not used: --trainer.accelerator gpu (or auto) to use it"


def clip_note(trainer: L.Trainer) -> str | None:
    """How a clip is painted, and where its frames go as they are done."""
    data = trainer.datamodule
    if data.clip is None:
        return None
    plan = data.clip.plan
    longest = f"{plan.stages} frame{'s' if plan.stages != 1 else ''}"
    chunks = f" in {plan.chunks} chunks of {longest} or fewer" if plan.chunks > 1 else ""
    first = sum(data.schedule.steps[: len(data.schedule.scales)])
    return (
        f"a clip of {plan.frames} frames{chunks}: the first in {first} steps, then {data.frame_steps} steps a frame "
        f"from the last one warped along the optical flow; painted frames in {ClipWriter.frames_folder(trainer)}"
    )


class RunNote(Callback):
    """Lines on stderr as the first step starts, after every check, so a refused run prints its error alone: the
    precision, when the CLI chose it, a schedule stretched to --data.size, and how the objective is evaluated,
    when in blocks (lit_nst.objective.tiling); at the end, the pictures the run wrote."""

    held: ClassVar[list[str]] = []  # Lightning's device and precision lines, held back by `hold_start_lines`
    HELD_PREFIXES = ("GPU available", "TPU available", "HPU available", "Using bfloat16", "Using 16bit")
    # Said by lit-nst's own lines: "resuming at step ...", and the run's end line naming what it wrote.
    REPLACED_PREFIXES = (
        "Restoring states from the checkpoint",
        "Restored all states from the checkpoint",
        "`Trainer.fit` stopped: `max_steps=",
        "\nDetected KeyboardInterrupt",  # the checkpoint's line says where the run stopped and how to go on
        "-" * 100 + "\ndistributed_backend=",  # DDP's banner: the run's device note says how many processes
        "Initializing distributed: GLOBAL_RANK",
    )

    def __init__(self, message: str | None = None) -> None:
        self.message = message

    @staticmethod
    def hold_start_lines(record: logging.LogRecord) -> bool:
        """A logging filter: Lightning's "GPU available: ..." and "Using bfloat16 ..." lines, printed as the Trainer
        is made, are folded into the run's own notes (`device_note`), so a run refused in a callback's checks prints
        its error alone; LIT_NST_VERBOSE=1 lets Lightning say everything as it comes."""
        if os.environ.get("LIT_NST_VERBOSE", "0") not in ("", "0"):
            return True
        if str(record.msg).startswith(RunNote.REPLACED_PREFIXES):
            return False
        if str(record.msg).startswith(RunNote.HELD_PREFIXES):
            RunNote.held.append(record.getMessage())
            return False
        return True

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.say_what_was_written(trainer)  # before the checkpoint's line on how to resume

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.say_what_was_written(trainer)  # after the metrics table: the run's last line

    @staticmethod
    def say_what_was_written(trainer: L.Trainer) -> None:
        for output in trainer.callbacks:
            if isinstance(output, ImageOutput) and output.wrote is not None:
                say(trainer, output.wrote)
                output.wrote = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        unused = device_note(RunNote.held)
        RunNote.held.clear()
        if trainer.global_step > 0:
            say(trainer, resuming_note(trainer))
        walk = pl_module.evaluation.block_walk
        tiling = walk.describe([job.shape for job in trainer.datamodule.jobs]) if walk is not None else None
        stretched = trainer.datamodule.schedule.note
        for message in (self.message, unused, stretched, tiling, clip_note(trainer)):
            say(trainer, message)
