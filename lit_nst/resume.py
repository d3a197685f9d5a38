"""Deciding whether a checkpoint may be resumed by this command, before any step is taken."""

from pathlib import Path

import torch

from lit_nst.errors import UsageError


def read_checkpoint_record(path: Path) -> dict:
    """The lit-nst record of a checkpoint file and its step; a one-line error for anything else."""
    if not path.is_file():
        raise UsageError(f"checkpoint {path} does not exist: give a .ckpt file or --ckpt_path last")
    try:
        # mmap: only the small entries are read, not the image or optimiser tensors.
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as error:  # truncated zips, other formats, pickles of other things
        raise UsageError(
            f"checkpoint {path} is truncated or not a checkpoint ({type(error).__name__}); nothing was overwritten"
        ) from None
    if not isinstance(checkpoint, dict) or "lit_nst" not in checkpoint:
        raise UsageError(f"checkpoint {path} was not written by lit-nst fit; nothing was overwritten")
    return {**checkpoint["lit_nst"], "global_step": checkpoint.get("global_step", 0)}


def check_same_job(path: Path, saved: dict, identity: dict[str, object], optimizer: str) -> None:
    """Raise a UsageError naming the first setting in which this command differs from the checkpoint's run."""
    for key, value in identity.items():
        before = saved["identity"].get(key)
        if before != value:
            what, value, before = _jobs_difference(before, value) if key == "data.jobs" else (f"--{key}", value, before)
            raise UsageError(
                f"cannot resume from {path}: {what} differ from the checkpoint's "
                f"({_short(value)} here, {_short(before)} there); use the checkpoint's settings or another "
                "--trainer.default_root_dir for a new run"
            )
    if saved.get("optimizer") != optimizer:
        raise UsageError(
            f"cannot resume from {path}: it was optimised with {saved.get('optimizer')}, this command uses "
            f"{optimizer}; use the same --optimizer"
        )


JOB_FIELDS = {
    "content": "the content image files' contents (sha256)",
    "styles": "the style image files' contents (sha256)",
    "blend": "--data.style_blend weights",
    "style_masks": "the style masks' contents (sha256)",
    "content_mask": "the content mask's contents (sha256)",
    "chunk": "--data.chunks",
}


def _jobs_difference(before: list[dict], now: list[dict]) -> tuple[str, object, object]:
    """(what differs, its value here, there) between two lists of job identities (lit_nst.data.StyleJob)."""
    if len(before) != len(now):
        return "the jobs (--data.content, --data.style, --data.pairs)", f"{len(now)} jobs", f"{len(before)} jobs"
    if sorted(map(repr, before)) == sorted(map(repr, now)):
        return "the order of the jobs (--data.pairs, or the order of the images)", "one order", "another"
    for job_before, job_now in zip(before, now, strict=True):
        for field, what in JOB_FIELDS.items():
            if job_before.get(field) != job_now.get(field):
                return what, job_now.get(field), job_before.get(field)
    return "the jobs", now, before


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."
