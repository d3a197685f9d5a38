"""Each run's own folder, named by what it paints and how, so that no run writes over another's checkpoint.

`<default_root_dir>/checkpoints/<content>__<style>-<key>/` holds a run's `last.ckpt` (and its `step-N.ckpt`
and a clip's painted frames); the key is a hash of the settings a resume must share (`lit_nst.resume`), so
`--ckpt_path last` finds the checkpoint of the run the command describes. A lock in the folder refuses a second
live process on the same run; the kernel drops it when its process ends, however it ends.
"""

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path

from filelock import FileLock, Timeout

from lit_nst.errors import UsageError, WriteError

RUNS = "checkpoints"
LAST = "last.ckpt"
RECORD = "run.json"


def run_name(groups: list[tuple[str, list[str]]]) -> str:
    """`<content>__<style>` of the first (content, styles) job, with how many more there are."""
    content, styles = groups[0]
    name = f"{Path(content).stem}__{'+'.join(Path(style).stem for style in styles)}"
    return name if len(groups) == 1 else f"{name}_and_{len(groups) - 1}_more"


def folder_of(trainer) -> Path:
    """The run's folder (set as the command starts), else the folder of all runs, for a Trainer made by hand."""
    return getattr(trainer.datamodule, "run_folder", None) or Path(trainer.default_root_dir) / RUNS


def run_folder(root: str | Path, name: str, identity: dict[str, object]) -> Path:
    """The folder of the run with this `identity` (settings and the images' hashes) under `root`."""
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:10]
    readable = re.sub(r"[^\w.+-]+", "_", name)[:60]
    return Path(root) / RUNS / f"{readable}-{key}"


def keep_aside(last: Path) -> Path:
    """A run started afresh over its own checkpoint: the old one moved to `previous.ckpt` (one generation), so
    that a fresh start by mistake loses nothing."""
    previous = last.with_name("previous.ckpt")
    os.replace(last, previous)
    return previous


def write_run_record(folder: Path, record: dict) -> None:
    """`run.json`: the settings that make the run what it is, readable without unpickling its checkpoint."""
    (folder / RECORD).write_text(json.dumps(record, default=str) + "\n")


def other_runs(folder: Path) -> list[tuple[Path, dict]]:
    """(folder, record) of the other runs with a checkpoint beside `folder`, newest first."""
    found = []
    for record in folder.parent.glob(f"*/{RECORD}"):
        if record.parent != folder and (record.parent / LAST).is_file():
            with contextlib.suppress(OSError, ValueError):
                found.append((record.parent, json.loads(record.read_text()), (record.parent / LAST).stat().st_mtime))
    return [(other, record) for other, record, _ in sorted(found, key=lambda item: item[2], reverse=True)]


class RunLock:
    """Held by the process that writes a run's folder, from before the first step to the end of the run."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lock = FileLock(folder / ".lock", thread_local=False)
        self.owner = folder / ".lock.pid"

    def acquire(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.lock.acquire(timeout=0)
        except Timeout:
            raise UsageError(
                f"another lit-nst process{self._owner()} is writing checkpoints in {self.folder}: let it finish "
                "(then resume with --ckpt_path last), or give this run another --trainer.default_root_dir"
            ) from None
        except OSError as error:
            raise WriteError(self.folder, error) from None
        try:
            self.owner.write_text(f"{os.getpid()}\n")
        except OSError as error:  # the first write of a run into a full or read-only folder
            self.discard()
            raise WriteError(self.owner, error) from None

    def discard(self) -> None:
        """After a refusal or a failure: the lock's files go, and the run's folder if nothing else is in it (a run
        refused before its first write leaves nothing). Unlinking a held lock file lets, in the instant before the
        release, a process that opened it and one that makes it anew both lock: only runs started in that instant."""
        if not self.lock.is_locked:
            return
        if not any(self.folder.glob("*.ckpt")):
            (self.folder / RECORD).unlink(missing_ok=True)
        self.owner.unlink(missing_ok=True)
        Path(self.lock.lock_file).unlink(missing_ok=True)
        self.release()
        with contextlib.suppress(OSError):
            self.folder.rmdir()

    def release(self) -> None:
        if self.lock.is_locked:
            self.lock.release()

    def _owner(self) -> str:
        try:
            return f" (pid {int(self.owner.read_text())})"
        except (OSError, ValueError):
            return ""
