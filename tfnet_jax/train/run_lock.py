"""One writer per run dir: `RUN/.lock`, held for a training run's whole life.

The lock is an flock on RUN/.lock (the kernel drops it when its process dies, however it
dies) and the file records who holds it (host, pid, start time) for the message a second
run prints. A record left by a dead process (SIGKILL, power loss) is stale: the next run
takes it over with a warning. Where the file system has no flock, the record alone decides:
a live pid on this host, or any record from another host, holds the dir.

Read-only commands (predict, analyses) never take it. In a multi-process (jax.distributed)
run only process 0 takes it: `owner=None` asks `jax.process_index()` when the lock is taken.
"""
from __future__ import annotations

import atexit
import errno
import json
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path

from tfnet_jax.atomic import output_error
from tfnet_jax.errors import RunDirError

log = logging.getLogger(__name__)
LOCK_FILE = ".lock"
SIGTERM_EXIT = 128 + signal.SIGTERM  # the shell's status for a process ended by SIGTERM


def pid_alive(pid: int) -> bool:
    """Whether process `pid` of this host is running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _read_record(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def describe(record: dict | None) -> str:
    if not record:
        return "another process"
    return (f"pid {record.get('pid', '?')} on host {record.get('host', '?')} "
            f"since {record.get('since', '?')}")


class RunLock:
    """`with RunLock(run_dir): ...` -- RunDirError at once if another live run holds the dir."""

    def __init__(self, run_dir: str | Path, owner: bool | None = None):
        self.path = Path(run_dir) / LOCK_FILE
        self.owner = owner
        self._fd: int | None = None
        self._old_sigterm = None

    def _is_owner(self) -> bool:
        if self.owner is None:
            import jax
            self.owner = jax.process_index() == 0
        return self.owner

    def busy(self, record: dict | None) -> RunDirError:
        return RunDirError(f"{self.path}: run dir in use by {describe(record)}; wait for it or "
                           f"use another hydra.run.dir")

    def acquire(self) -> "RunLock":
        if not self._is_owner() or self._fd is not None:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            while True:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    flocked = self._flock(fd)
                    if self._still_linked(fd):
                        self._take(fd, flocked)
                        return self
                except BaseException:
                    os.close(fd)
                    raise
                os.close(fd)
        except OSError as err:
            raise output_error(self.path, err) from None

    def _still_linked(self, fd: int) -> bool:
        """False when the holder released (unlinked) the file between our open and flock:
        then we hold a lock on a dead inode and must open the path again."""
        try:
            return os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False

    def _flock(self, fd: int) -> bool:
        """True when flocked; False when the file system has no flock; raises RunDirError
        naming the holder when another process holds it."""
        import fcntl
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            raise self.busy(_read_record(self.path)) from None
        except OSError as err:
            if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                return False
            raise

    def _take(self, fd: int, flocked: bool) -> None:
        host, pid = socket.gethostname(), os.getpid()
        old = _read_record(self.path)
        if old and old.get("pid") != pid:
            alive = old.get("host") != host or pid_alive(int(old.get("pid", -1)))
            if not flocked and alive:  # no flock to tell: trust the record
                raise self.busy(old)
            log.warning("%s: taking over a stale lock of %s (that process is gone)",
                        self.path, describe(old))
        record = {"host": host, "pid": pid,
                  "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        data = (json.dumps(record) + "\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        self._fd = fd
        atexit.register(self.release)
        self._handle_sigterm()

    def _handle_sigterm(self) -> None:
        """SIGTERM (a scheduler's cancel) ends the run like an exception, so the lock is
        released and the run's finally blocks run; a handler someone else set is kept."""
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            def terminate(signum, frame):
                raise SystemExit(SIGTERM_EXIT)
            self._old_sigterm = signal.signal(signal.SIGTERM, terminate)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        atexit.unregister(self.release)
        if self._old_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
        try:  # unlink while still holding it: a waiter re-checks the inode (see acquire)
            self.path.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only dir: the dead record is taken over by the next run
        os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *_exc) -> None:
        self.release()
