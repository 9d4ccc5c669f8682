"""RUN/metrics.jsonl, the per-step (or per-fit) log: the one reader and the one writer.

A line cut short (a full disk, a kill mid-write) is skipped with a warning by `read`, and
the writer cuts the file back to its last whole line before it appends again, so no later
run trips over it. A training run starting from scratch resets the log; a resumed one
keeps only the records up to its restored checkpoint (`keep_until`), so the log of a killed
and resumed run equals that of an uninterrupted one.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from tfnet_jax.atomic import atomic_write_text, output_error

log = logging.getLogger(__name__)
FILE_NAME = "metrics.jsonl"


def _parse(path: Path) -> tuple[list[dict], int, bool]:
    """(whole records, byte length of the whole lines before the first bad one, any bad)."""
    records, good_end, bad = [], 0, False
    data = path.read_bytes()
    position = 0
    for number, line in enumerate(data.splitlines(keepends=True), 1):
        position += len(line)
        try:
            if not line.endswith(b"\n"):
                raise ValueError("no line end")
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a record")
        except ValueError:
            if line.strip():
                log.warning("%s: line %d is cut short or unreadable (a full disk or a killed "
                            "write?); skipped", path, number)
                bad = True
            continue
        records.append(record)
        if not bad:
            good_end = position
    return records, good_end, bad


def read(path: str | Path) -> list[dict]:
    """Every whole record of `path` ([] if it is missing); unreadable lines are skipped."""
    path = Path(path)
    if not path.exists():
        return []
    return _parse(path)[0]


def rewrite(path: str | Path, records: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))


def reset(path: str | Path) -> None:
    """An empty log: a run that starts from scratch must not inherit an earlier attempt's records."""
    path = Path(path)
    if path.exists():
        rewrite(path, [])


def keep_until(path: str | Path, step: int) -> None:
    """Drop records newer than `step` (the restored checkpoint's) and any unreadable line."""
    path = Path(path)
    if path.exists():
        rewrite(path, [r for r in read(path) if r.get("step", 0) <= step])


def repair(path: str | Path) -> None:
    """Cut a torn last line (and anything unreadable) so appends start on a whole line."""
    path = Path(path)
    if path.exists():
        records, _, bad = _parse(path)
        if bad:
            rewrite(path, records)


def _ends_whole(path: Path) -> bool:
    """The file is missing, empty or ends with a line end (the cheap check before each append)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return True
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"
    except FileNotFoundError:
        return True


def append(path: str | Path, record: dict) -> None:
    """Append one record as one whole line; a failed write is cut back, leaving no partial line."""
    path = Path(path)
    line = (json.dumps(record) + "\n").encode()
    if not _ends_whole(path):
        repair(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as err:
        raise output_error(path, err) from None
    try:
        start = os.fstat(fd).st_size
        try:
            written = 0
            while written < len(line):  # unbuffered: nothing is left to fail again at close
                written += os.write(fd, line[written:])
        except OSError as err:
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass  # the reader skips and the next writer repairs a torn line
            raise output_error(path, err) from None
    finally:
        os.close(fd)
