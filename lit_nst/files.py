"""Files on disk: written so that a kill leaves the old file or the new one, never half; known by their content."""

import functools
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from lit_nst.errors import WriteError, os_error_in


@contextmanager
def atomic_file(path: Path, durable: bool = False) -> Iterator[BinaryIO]:
    """A stream to a temporary file beside `path`, renamed over `path` when the block succeeds; a failed write
    (no space, a read-only folder) raises a WriteError naming `path` and leaves the file there was."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        # mkstemp creates the file private (0600); the result should have the permissions any new file gets.
        os.fchmod(descriptor, 0o666 & ~_umask())
        with os.fdopen(descriptor, "wb") as stream:
            yield stream
            if durable:
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        reason = os_error_in(error) if isinstance(error, Exception) else None
        if reason is None:
            raise
        raise WriteError(path, reason) from error


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def file_sha256(path: Path) -> str:
    """The file's hash, read once while the file is unchanged: checkpoints are written often, images rarely.
    A folder's (of frames) is the hash of its files' names and hashes."""
    if path.is_dir():
        files = sorted(file for file in path.iterdir() if file.is_file())
        return hashlib.sha256("".join(f"{file.name}:{file_sha256(file)};" for file in files).encode()).hexdigest()
    status = path.stat()
    return _sha256_of(path.resolve(), status.st_mtime_ns, status.st_size)


@functools.cache
def _sha256_of(path: Path, modified_ns: int, size: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
