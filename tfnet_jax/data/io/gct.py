"""GCT text matrices (versions #1.2 and #1.3), read into the type `gctx.read_gctx` returns."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from tfnet_jax.data.io.gctx import (
    GCTXData,
    _meta_frame,
    _missing_to_none,
    _unique_index,
)
from tfnet_jax.errors import DataError

_NAN_TEXT = ("", "na", "NA", "nan", "NaN", "NAN")


def _split_lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, stripped tab-separated fields) of every non-blank line."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
            return [(number, [cell.strip() for cell in line.rstrip("\r\n").split("\t")])
                    for number, line in enumerate(handle, start=1) if line.strip()]
    except (OSError, UnicodeDecodeError, EOFError, zlib.error) as err:  # zlib: a corrupt .gz
        raise DataError(f"{path}: cannot read the file ({err})") from err


def _gct_dims(path: Path, version: str, fields: list[str]) -> tuple[int, int, int, int]:
    wanted = 2 if version == "#1.2" else 4
    numbers = [f for f in fields if f]
    if len(numbers) != wanted or not all(n.isdigit() for n in numbers):
        layout = "n_rows n_cols" if wanted == 2 else "n_rows n_cols n_row_meta n_col_meta"
        raise DataError(f"{path}, line 2: expected {wanted} counts ({layout}), got {fields}")
    dims = [int(n) for n in numbers]
    return (dims[0], dims[1], 1, 0) if wanted == 2 else tuple(dims)  # 1.2: Description only


def read_gct(path: str | Path) -> GCTXData:
    """Read a GCT text file, version #1.2 or #1.3, into the type `read_gctx` returns.

    Metadata stays text (ids such as "007" must not become numbers), -666 -> None.
    Matrix cells "", na, NA, NaN -> NaN.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    lines = _split_lines(path)
    if len(lines) < 3:
        raise DataError(f"{path}: too short for a GCT file (version, counts and header lines)")
    version = lines[0][1][0]
    if lines[0][0] != 1 or version not in ("#1.2", "#1.3"):
        raise DataError(f"{path}, line {lines[0][0]}: expected '#1.2' or '#1.3', got {version!r}")
    n_rows, n_cols, n_rmeta, n_cmeta = _gct_dims(path, version, lines[1][1])
    width = 1 + n_rmeta + n_cols
    for number, fields in lines[2:]:
        if len(fields) != width:
            raise DataError(f"{path}, line {number}: {len(fields)} fields, expected {width} "
                            f"(1 id + {n_rmeta} row metadata + {n_cols} columns)")
    header, meta_lines, data_lines = lines[2], lines[3:3 + n_cmeta], lines[3 + n_cmeta:]
    if len(meta_lines) < n_cmeta or len(data_lines) != n_rows:
        raise DataError(f"{path}: line 2 announces {n_cmeta} column-metadata and {n_rows} data "
                        f"lines, found {len(meta_lines)} and {len(data_lines)}")
    fields = header[1][1:1 + n_rmeta]
    col_ids = np.asarray(header[1][1 + n_rmeta:], dtype=object)
    row_ids = np.asarray([f[0] for _, f in data_lines], dtype=object)
    _unique_index(col_ids, f"{path}, line {header[0]}: column")
    _unique_index(row_ids, f"{path}: row")
    cells = np.array([f for _, f in data_lines], dtype=object).reshape(n_rows, width)
    col_fields = {f[0]: _missing_to_none(np.asarray(f[1 + n_rmeta:], dtype=object))
                  for _, f in meta_lines}
    row_fields = {name: _missing_to_none(cells[:, 1 + k]) for k, name in enumerate(fields)}
    matrix = _parse_values(path, cells[:, 1 + n_rmeta:], [n for n, _ in data_lines], col_ids)
    return GCTXData(matrix=matrix, row_meta=_meta_frame(row_fields, row_ids, "rid"),
                    col_meta=_meta_frame(col_fields, col_ids, "cid"))


def _parse_values(path: Path, cells: np.ndarray, line_numbers: list[int],
                  col_ids: np.ndarray) -> np.ndarray:
    text = np.where(np.isin(cells, _NAN_TEXT), "nan", cells).astype(str)
    try:
        return text.astype(np.float32)
    except ValueError:
        for (row, col), cell in np.ndenumerate(text):  # slow path, only to name the bad cell
            try:
                float(cell)
            except ValueError:
                raise DataError(f"{path}, line {line_numbers[row]}, column '{col_ids[col]}': "
                                f"non-numeric value '{cell}'") from None
        raise
