"""Where a run starts, decided before any step: its own folder and lock (lit_nst.runs), and the checkpoint it goes
on from (`--ckpt_path last`: this run's own; a file: only of the same run)."""

import sys
from pathlib import Path

from lightning.pytorch.utilities.rank_zero import rank_zero_only

from lit_nst.errors import UsageError
from lit_nst.resume import check_same_job, first_difference, read_checkpoint_record, same_pictures
from lit_nst.runs import LAST, keep_aside, other_runs


def checkpoint_to_resume(
    asked: str | None,
    *,
    folder: Path,
    identity: dict[str, object],
    optimizer: str,
    others: bool,
    max_steps: int,
    clip_steps: int | None,
) -> Path | None:
    """The checkpoint `--ckpt_path` (`asked`) names for the run in `folder`, checked to be this run's; None to start
    afresh. `others`: runs of the default layout, among which a differing one of the same pictures is named.
    `clip_steps`: a clip's steps in all, which a checkpoint at --trainer.max_steps may not have reached. A fresh
    start keeps this run's checkpoint aside once every check has passed (`keep_a_waiting_checkpoint`)."""
    if asked is None:
        return None
    path = last_of_this_run(folder, identity, optimizer, others) if asked == "last" else Path(asked)
    if path is None:
        return None
    record = read_checkpoint_record(path)
    check_same_job(path, record, identity, optimizer)
    step = record["global_step"]
    if 0 < max_steps <= step and rank_zero_only.rank == 0:
        unfinished_clip = clip_steps is not None and step < clip_steps
        then = (
            f"raise it (the clip takes {clip_steps} steps) to paint on" if unfinished_clip else "rewriting the output"
        )
        print(f"lit-nst: {path} is already at step {step} of --trainer.max_steps {max_steps}: {then}", file=sys.stderr)
    return path


def last_of_this_run(folder: Path, identity: dict[str, object], optimizer: str, others: bool) -> Path | None:
    """This run's last checkpoint; else None, saying so, and in the default layout (`others`) naming how a run of
    the same pictures differs (a mistyped flag starts afresh). Other runs are known by their `run.json`: no file
    but this run's own is unpickled."""
    last = folder / LAST
    if last.is_file():
        return last
    nearest = ""
    if others:
        for other, record in other_runs(folder):
            difference = first_difference(record, identity, optimizer)
            if difference is not None and same_pictures(record, identity):
                what, here, there = difference
                nearest = f"; {other.name} paints the same pictures with {what} {there} ({here} here)"
                break
    if rank_zero_only.rank == 0:
        print(f"lit-nst: no checkpoint of this run in {folder} yet: starting fresh{nearest}", file=sys.stderr)
    return None


def keep_a_waiting_checkpoint(last: Path) -> None:
    """A fresh start of a run that has a checkpoint would replace it at its first save: it is kept aside. Called as
    the first step starts, after every check: a refused command leaves the checkpoint where it was."""
    if not last.is_file():
        return
    try:
        held = f"at step {read_checkpoint_record(last)['global_step']}"
        then = " (--ckpt_path with that file goes on from it)"
    except UsageError as refusal:  # broken, or of another lit-nst's format: kept all the same, nothing is lost
        held = "that this lit-nst cannot resume" + (" (another format)" if "format" in str(refusal) else "")
        then = ""
    print(
        f"lit-nst: starting afresh; this run's checkpoint {held} is kept as {keep_aside(last)}{then}", file=sys.stderr
    )
