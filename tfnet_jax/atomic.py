"""Atomic file writes: write to a temporary sibling, then rename over the target.

A crash mid-write leaves the old file (or none), never a truncated one; a failed write (a
full disk, a read-only dir) also leaves no temporary file, and stops the run with one line
naming the path (`output_error`).
"""
from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path

from tfnet_jax.errors import RunDirError

# What a user can do about a failed write, by cause.
_WRITE_FAILURES = {
    errno.ENOSPC: "no space left on device; free space or use another output dir",
    errno.EDQUOT: "disk quota exceeded; free space or use another output dir",
    errno.EROFS: "read-only file system; use another output dir",
    errno.EACCES: "permission denied; use another output dir",
    errno.EPERM: "permission denied; use another output dir",
}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp's 0600 is too strict


def output_error(path: str | Path, err: OSError) -> RunDirError:
    """The one-line error for a write to `path` that failed with `err`."""
    code = err.errno
    if code is None and "No space left on device" in str(err):  # h5py drops the errno
        code = errno.ENOSPC
    reason = _WRITE_FAILURES.get(code)
    if reason is None:
        reason = f"cannot write ({err.strerror or err}); free space or use another output dir"
    return RunDirError(f"{path}: {reason}")


def publish(tmp: str | Path, path: str | Path) -> None:
    """Move a fully written temporary file (a sibling of `path`) into place."""
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.chmod(tmp, _FILE_MODE)
    os.replace(tmp, path)


def atomic_write_with(path: str | Path, writer) -> None:
    """`writer(tmp_path)` writes the file (e.g. DataFrame.to_parquet); then it is published."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    except OSError as err:
        raise output_error(path, err) from None
    os.close(fd)
    try:
        writer(tmp)
        publish(tmp, path)
    except OSError as err:
        _remove(tmp)
        raise output_error(path, err) from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write_with(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
