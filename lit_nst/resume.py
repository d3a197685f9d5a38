"""Deciding whether a checkpoint may be resumed by this command, before any step is taken."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from lit_nst.errors import UsageError
from lit_nst.files import file_sha256
from lit_nst.objective.statistics import style_weight

# The layout of `checkpoint["lit_nst"]`: raised when it changes, so that an older checkpoint is refused in one line
# rather than half-read. 2: "stage" for "scale_index", the canvas at the output size from the first stage on.
CHECKPOINT_FORMAT = 2


def checkpoint_record(
    stage: int, identity: dict[str, object], optimizer: torch.optim.Optimizer, temporal: dict | None
) -> dict:
    """What lit-nst adds to a checkpoint: its format, the stage, the run's identity, the optimiser's class and the
    temporal term's state (a clip's)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "stage": stage,
        "identity": identity,
        "optimizer": type(optimizer).__name__,
        "temporal": temporal,
    }


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
    written = checkpoint["lit_nst"].get("format", 1)
    if written != CHECKPOINT_FORMAT:
        earlier = isinstance(written, int) and written < CHECKPOINT_FORMAT
        which = "an earlier" if earlier else "a later" if isinstance(written, int) else "another"
        raise UsageError(
            f"checkpoint {path} is of format {written}, from {which} lit-nst, and this one resumes format "
            f"{CHECKPOINT_FORMAT}: drop --ckpt_path to start afresh"
        )
    return {**checkpoint["lit_nst"], "global_step": checkpoint.get("global_step", 0)}


# The model's settings that a resume must share with the run it continues (not max_steps, output or logging).
MODEL_IDENTITY = (
    *("arch", "weights", "pooling", "preprocessing", "content_layers", "style_layers"),
    *("content_layer_weights", "style_layer_weights", "content_weight", "style_weight", "tv_weight", "color"),
)


# Settings recorded in the identity only where they are not their default, so that the runs from before the setting
# existed keep their identity, and so their run folders (lit_nst.runs).
UNRECORDED_DEFAULTS = {"model.style_loss": "gram"}


def model_identity(hparams: Mapping[str, object], clip: bool = False) -> dict[str, object]:
    """What of the model's settings `hparams` a resume must share; for a `clip`, its temporal weight too."""
    keys = (*MODEL_IDENTITY, *(("temporal_weight",) if clip else ()))
    # Tuples and lists compare equal once stored, whatever the YAML or CLI produced.
    identity = {
        f"model.{key}": list(hparams[key]) if isinstance(hparams[key], tuple | list) else hparams[key] for key in keys
    }
    identity["model.style_weight"] = style_weight(hparams.get("style_loss", "gram"), hparams["style_weight"])
    if hparams.get("style_loss", "gram") != UNRECORDED_DEFAULTS["model.style_loss"]:
        # First, so that a run of another loss is named by it rather than by the weight that follows from it.
        identity = {"model.style_loss": hparams["style_loss"], **identity}
    if hparams["weights"] not in ("caffe", "imagenet"):  # a file: what it holds, not where it lies
        identity["model.weights"] = f"sha256:{file_sha256(Path(hparams['weights']))}"
    return identity


def run_identity(hparams: Mapping[str, object], data: Any) -> dict[str, object]:
    """Everything a resume must share with the run it continues: the model's settings and the data's
    (`StyleImages.identity`)."""
    return {**model_identity(hparams, data.clip is not None), **data.identity()}


def check_same_job(path: Path, saved: dict, identity: dict[str, object], optimizer: str) -> None:
    """Raise a UsageError naming the first setting in which this command differs from the checkpoint's run."""
    difference = first_difference(saved, identity, optimizer)
    if difference is not None:
        what, here, there = difference
        verb = "differs" if what.startswith("--") else "differ"
        raise UsageError(
            f"cannot resume from {path}: {what} {verb} from the checkpoint's ({here} here, {there} there); use "
            "the checkpoint's settings, or drop --ckpt_path for a new run"
        )


def first_difference(saved: dict, identity: dict[str, object], optimizer: str) -> tuple[str, str, str] | None:
    """(the first setting in which this command differs from a checkpoint's run, its value here, there), or None."""
    for key in [*identity, *(key for key in saved["identity"] if key not in identity)]:
        value, before = (side.get(key, UNRECORDED_DEFAULTS.get(key)) for side in (identity, saved["identity"]))
        if before != value:
            what, value, before = _jobs_difference(before, value) if key == "data.jobs" else (f"--{key}", value, before)
            return what, _short(value), _short(before)
    if saved.get("optimizer") != optimizer:
        return "--optimizer", optimizer, str(saved.get("optimizer"))
    return None


def same_pictures(saved: dict, identity: dict[str, object]) -> bool:
    """Whether a checkpoint's run paints the same content and style images as this command (whatever else)."""

    def pictures(identity: dict[str, object]) -> list[tuple[str, list[str]]]:
        return [(job["content"], job["styles"]) for job in identity.get("data.jobs", [])]

    return pictures(saved["identity"]) == pictures(identity)


JOB_FIELDS = {
    "content": "the content image files' contents (sha256)",
    "styles": "the style image files' contents (sha256)",
    "blend": "--data.style_blend weights",
    "style_masks": "the style masks' contents (sha256)",
    "content_mask": "the content mask's contents (sha256)",
    "chunk": "--data.chunks",
}


def _jobs_difference(before: list[dict], now: list[dict]) -> tuple[str, object, object]:
    """(what differs, its value here, there) between two lists of job identities (lit_nst.jobs.StyleJob)."""
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
