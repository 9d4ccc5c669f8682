"""Text files of the public formats, plain or gzip-compressed (told apart by content, not
name), with read errors as one-line DataErrors."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Iterator, TextIO

from tfnet_jax.errors import DataError


def open_text(path: Path) -> TextIO:
    """A text handle on a plain or gzip-compressed file, told apart by content, not name."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        return (gzip.open(path, "rt", encoding="utf-8-sig") if gzipped
                else open(path, "rt", encoding="utf-8-sig"))
    except OSError as err:
        raise DataError(f"{path}: cannot read the file ({err})") from err


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line without its end) of a plain or gzipped text file; read errors
    (a corrupt .gz, bad UTF-8) become one-line DataErrors."""
    with open_text(path) as handle:
        try:
            for number, line in enumerate(handle, start=1):
                yield number, line.rstrip("\r\n")
        except (OSError, UnicodeDecodeError, EOFError, zlib.error) as err:
            raise DataError(f"{path}: cannot read the file ({err})") from err
