"""Low-level reading of delimited text tables, shared by every file loader.

A table is read with every cell as a stripped string (so Entrez IDs such as "95" or
"007" never become numbers) into a DataFrame whose index is the 1-based line number of
each row in the file (the header is line 1). Numbers are converted afterwards, column by
column, so that every error can name the file, the line and the column at fault.

Formats: `.csv` is comma-separated, `.tsv` tab-separated; any other name (`.txt`, ...)
is sniffed from the header line: tab if it has one, else comma, else runs of
whitespace. Any of them may be gzip-compressed (`.gz`). Blank lines are skipped.

`read_table_fast` is the fast path for large, well-formed numeric tables: it parses the
value columns as floats inside pandas and gives up (returns None) on anything the checked
path would reject or might read differently, so that callers then run the checked path
(`read_table` + `column_as_str` / `block_as_float`), which names the line and column at
fault. On a table both accept, both give the same IDs, the same floats and the same line
numbers.
"""
from __future__ import annotations

import csv
import gzip
import re
import warnings
import zlib
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from tfnet_jax.errors import DataError

TABLE_EXTENSIONS = (".csv", ".tsv", ".txt")
WHITESPACE = r"\s+"
# Extra trailing column that catches rows with more fields than the header: without it
# pandas would silently reinterpret the first column as an index.
_OVERFLOW_COLUMN = "\0overflow"
_PANDAS_FIELD_ERROR = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def split_table_name(path: str | Path) -> tuple[str, str] | None:
    """`corum.tsv.gz` -> ("corum", ".tsv"); None when the name is not a known table type."""
    name = Path(path).name
    if name.endswith(".gz"):
        name = name[: -len(".gz")]
    for extension in TABLE_EXTENSIONS:
        if name.endswith(extension) and len(name) > len(extension):
            return name[: -len(extension)], extension
    return None


def _read_header_line(path: Path) -> str:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        # utf-8-sig drops the byte-order mark that spreadsheet exports put in front.
        with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
            return handle.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError, EOFError, zlib.error) as err:  # zlib: a corrupt .gz
        raise DataError(f"{path}: cannot read the file ({err})") from err


def table_delimiter(path: str | Path, header_line: str) -> str:
    """The field delimiter: by extension, else sniffed from the header (tab, comma, whitespace)."""
    named = split_table_name(path)
    extension = named[1] if named else ""
    if extension == ".csv":
        return ","
    if extension == ".tsv":
        return "\t"
    if "\t" in header_line:
        return "\t"
    if "," in header_line:
        return ","
    return WHITESPACE


def _split_header(header_line: str, delimiter: str) -> list[str]:
    if delimiter == WHITESPACE:
        return header_line.split()
    # csv honours quoted names, as pandas does for the data rows.
    return [name.strip() for name in next(csv.reader([header_line], delimiter=delimiter))]


def _check_header(path: Path, names: list[str]) -> None:
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if not name:
            raise DataError(f"{path}, line 1: column {position} has an empty name")
        if name in seen:
            raise DataError(
                f"{path}, line 1: column name '{name}' appears twice (columns {seen[name]} and {position})")
        seen[name] = position


def table_layout(path: Path) -> tuple[str, list[str]]:
    """(delimiter, column names) from the header line; a DataError for a bad header."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    header_line = _read_header_line(path)
    if not header_line.strip():
        raise DataError(f"{path}: empty file (line 1 must be a header)")
    delimiter = table_delimiter(path, header_line)
    names = _split_header(header_line, delimiter)
    _check_header(path, names)
    return delimiter, names


def _read_csv_options(path: Path, delimiter: str, names: list[str]) -> dict:
    """The pandas.read_csv arguments both paths share: they fix how lines split into fields."""
    return dict(sep=delimiter, header=None, skiprows=1, names=[*names, _OVERFLOW_COLUMN],
                index_col=False, skip_blank_lines=False,
                compression="gzip" if path.name.endswith(".gz") else None, encoding="utf-8")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a table as stripped strings; the index holds each row's line number in the file."""
    path = Path(path)
    delimiter, names = table_layout(path)
    try:
        with warnings.catch_warnings():
            # A too-long first row only warns in pandas; the overflow column reports it below.
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            frame = pd.read_csv(path, **_read_csv_options(path, delimiter, names),
                                dtype=object, na_filter=False)
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame(columns=[*names, _OVERFLOW_COLUMN], dtype=object)
    except pd.errors.ParserError as err:
        match = _PANDAS_FIELD_ERROR.search(str(err))
        if match:
            raise DataError(f"{path}, line {match.group(2)}: {int(match.group(3))} fields, "
                            f"but the header has {len(names)}") from err
        raise DataError(f"{path}: malformed table ({err})") from err
    except (OSError, UnicodeDecodeError, EOFError, zlib.error) as err:  # zlib: a corrupt .gz
        raise DataError(f"{path}: cannot read the file ({err})") from err

    # Strip every cell in one vectorised pass (a per-column loop is slow on wide tables).
    cells = np.strings.strip(frame.to_numpy(dtype=object).astype(np.dtypes.StringDType()))
    # Row i of the data is line i + 2 (line 1 is the header); blank lines were kept so far.
    lines = np.arange(2, len(cells) + 2)
    not_blank = (cells != "").any(axis=1)
    cells, lines = cells[not_blank], lines[not_blank]
    too_long = np.flatnonzero(cells[:, -1] != "")
    if len(too_long):
        raise DataError(f"{path}, line {lines[too_long[0]]}: more fields than the {len(names)} in the header")
    frame = pd.DataFrame(cells[:, :-1].astype(object), columns=names,
                         index=pd.Index(lines, name="line"), dtype=object)
    if frame.empty:
        raise DataError(f"{path}: the file has a header but no data rows")
    return frame


def read_table_fast(path: str | Path, id_columns: Sequence[str],
                    value_columns: Sequence[str] | None = None,
                    dtype: type = np.float32) -> pd.DataFrame | None:
    """The fast path of `read_table` for well-formed tables; None whenever it cannot vouch.

    Returns the ID columns (stripped strings, as `read_table` gives them) and the value
    columns (float64, each the float(text) of its cell), in header order; other columns
    are left out. `value_columns` names the value columns, those absent from the header
    are skipped; None means every column that is not an ID column. The index holds each
    row's line number in the file, as in `read_table`.

    None (the caller then runs the checked path, which reports the fault) when the file or
    its header is bad, an ID column is absent, pandas fails, a row has more fields than
    the header, an ID cell is empty or holds a NUL, a value cell is empty, non-numeric,
    NaN, infinite or not finite in `dtype`, a value column holds a word pandas reads as a
    boolean (TRUE/false), or no data row is left. Blank lines are skipped, as there.
    """
    path = Path(path)
    try:
        delimiter, names = table_layout(path)
    except DataError:
        return None
    ids = list(id_columns)
    if any(name not in names for name in ids):
        return None
    values = ([name for name in names if name not in ids] if value_columns is None else
              [name for name in value_columns if name in names and name not in ids])
    dtypes = {name: object for name in (*names, _OVERFLOW_COLUMN)}
    dtypes.update({name: np.float64 for name in values})
    options = _read_csv_options(path, delimiter, names)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            # Only empty fields are missing (an ID such as "NA" stays text); round_trip
            # parses as float(text) does; low_memory=False converts each column in one go,
            # so a column is either parsed as floats or inferred (see the boolean check).
            frame = pd.read_csv(path, **options, dtype=dtypes, keep_default_na=False,
                                na_values=[""], float_precision="round_trip", low_memory=False)
    except Exception:  # noqa: BLE001 - whatever went wrong, the checked path reports it
        return None

    # A row with every field empty is a blank line; read_table drops it too. Any other
    # row with an empty field is one the checked path rejects (or must judge). A blank row
    # has no first ID, so only rows without one need the full look.
    maybe_blank = np.flatnonzero(frame[ids[0]].isna().to_numpy()) if ids else np.arange(len(frame))
    blank = maybe_blank[frame.iloc[maybe_blank].isna().to_numpy().all(axis=1)]
    lines = np.arange(2, len(frame) + 2)
    if len(blank):
        keep = np.ones(len(frame), dtype=bool)
        keep[blank] = False
        frame, lines = frame[keep], lines[keep]
    if frame.empty or frame[_OVERFLOW_COLUMN].notna().any():
        return None
    index = pd.Index(lines, name="line")
    id_frame = {}
    for name in ids:
        stripped = _stripped_ids(frame[name].to_numpy(dtype=object))
        if stripped is None:
            return None
        id_frame[name] = stripped
    parts = [pd.DataFrame(id_frame, index=index)]
    if values:
        block = frame[values].to_numpy(dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            if not np.isfinite(block.astype(dtype)).all():
                return None
        # pandas falls back to reading a column of TRUE/false words as 1.0/0.0.
        zero_one = ((block == 0) | (block == 1)).all(axis=0)
        if zero_one.any() and _has_boolean_words(path, options, np.asarray(values)[zero_one].tolist()):
            return None
        parts.append(pd.DataFrame(block, columns=values, index=index))
    result = pd.concat(parts, axis=1) if len(parts) > 1 else parts[0]
    wanted = {*ids, *values}
    kept = [name for name in names if name in wanted]
    return result if result.columns.tolist() == kept else result[kept]


def _stripped_ids(cells: np.ndarray) -> np.ndarray | None:
    """Cells stripped as read_table strips them (each distinct text once); None on an empty one."""
    codes, uniques = pd.factorize(cells)  # a missing cell gets code -1
    if len(codes) and codes.min() < 0:
        return None
    stripped = [text.strip() for text in uniques.tolist()]
    # NUL: numpy's strings drop it at the end of a text, Python's do not; leave it to the slow path.
    if any(not text or "\0" in text for text in stripped):
        return None
    return np.asarray(stripped, dtype=object)[codes]


_BOOLEAN_TEXT = re.compile(rb"true|false", re.IGNORECASE)


def _has_boolean_words(path: Path, options: dict, columns: list[str]) -> bool:
    # Cheap screen first: a file whose bytes hold neither word anywhere has none in a cell
    # (a 0/1 table such as GO membership: seconds instead of a minute of cell-by-cell text).
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            if _BOOLEAN_TEXT.search(handle.read()) is None:
                return False
    except (OSError, EOFError, zlib.error):
        return True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            # usecols would reject the rows that lack the overflow field, so read all text.
            tokens = pd.read_csv(path, **options, dtype=object, na_filter=False)
    except Exception:  # noqa: BLE001
        return True
    words = tokens[columns].to_numpy(dtype=object).ravel()
    return bool(pd.Series(words, dtype=object).str.strip().str.lower().isin(["true", "false"]).any())


def require_columns(frame: pd.DataFrame, columns: Iterable[str], path: str | Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing required column(s) {missing}; "
                        f"the header has {preview(list(frame.columns))}")


def require_first_column(frame: pd.DataFrame, name: str, path: str | Path) -> None:
    first = frame.columns[0]
    if first != name:
        raise DataError(f"{path}, line 1: the first column must be named '{name}', not '{first}'")


def column_as_str(frame: pd.DataFrame, column: str, path: str | Path) -> np.ndarray:
    """A column of IDs as a numpy str array; an empty cell is an error naming its line."""
    values = frame[column].to_numpy(dtype=object)
    empty = np.flatnonzero(values == "")
    if len(empty):
        raise DataError(f"{path}, line {frame.index[empty[0]]}, column '{column}': empty value")
    return np.asarray(values.tolist(), dtype=str)


def block_as_float(frame: pd.DataFrame, columns: Sequence[str], path: str | Path,
                   dtype: type = np.float32) -> np.ndarray:
    """Columns as a finite float matrix [rows, len(columns)] in `dtype`.

    The first bad cell in file order (non-numeric, empty, NaN, Inf, or too large for
    `dtype`) is an error naming the file, its line and its column.
    """
    columns = list(columns)
    block = frame[columns]
    if all(pd.api.types.is_float_dtype(column_dtype) for column_dtype in block.dtypes):
        # Already floats (read_table_fast): no round trip through text.
        parsed = block.to_numpy(dtype=np.float64)
        raw = None
    else:
        raw = block.to_numpy(dtype=object)
        try:
            parsed = raw.astype(np.float64)
        except ValueError:
            # Slow path only on bad input: mark unparseable cells as NaN to locate them below.
            parsed = np.array([[_float_or_nan(text) for text in row] for row in raw],
                              dtype=np.float64).reshape(raw.shape)
    with np.errstate(over="ignore", invalid="ignore"):
        values = parsed.astype(dtype)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]  # row-major: the first bad cell in file order
        text = raw[row, col] if raw is not None else str(parsed[row, col])
        raise DataError(f"{path}, line {frame.index[row]}, column '{columns[col]}': "
                        f"{_describe_bad_number(text, dtype)}")
    return values


def column_as_float(frame: pd.DataFrame, column: str, path: str | Path,
                    dtype: type = np.float32) -> np.ndarray:
    return block_as_float(frame, [column], path, dtype)[:, 0]


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _describe_bad_number(text: str, dtype: type) -> str:
    if text == "":
        return "empty value, expected a number"
    try:
        number = float(text)
    except ValueError:
        return f"non-numeric value '{text}'"
    if np.isnan(number):
        return f"NaN value '{text}'"
    if np.isinf(number):
        return f"infinite value '{text}'"
    return f"value '{text}' is too large for {np.dtype(dtype).name}"


def check_unique_keys(frame: pd.DataFrame, columns: Sequence[str], path: str | Path,
                      what: str) -> None:
    """Error naming both lines when a key (one or several columns) appears twice."""
    columns = list(columns)
    repeated = frame.duplicated(subset=columns, keep="first").to_numpy()
    if not repeated.any():
        return
    second = int(np.argmax(repeated))
    key = tuple(frame[columns].iloc[second])
    same_key = (frame[columns] == pd.Series(key, index=columns)).all(axis=1).to_numpy()
    first = int(np.argmax(same_key))
    shown = key[0] if len(key) == 1 else key
    raise DataError(f"{path}: {what} {shown!r} is listed twice, "
                    f"on lines {frame.index[first]} and {frame.index[second]}")


def preview(items: Sequence[str], limit: int = 8) -> str:
    """A short list for error messages: the first few items and the total count."""
    shown = ", ".join(map(str, items[:limit]))
    return f"[{shown}{', ...' if len(items) > limit else ''}] ({len(items)} in all)"

