"""PLINK text files (.fam, .bim) and .bed checks: parsing with line-numbered errors, chromosome
names ("chr1" == "1"), and allele alignment between a run's variants and another fileset's."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from tfnet_jax.errors import DataError

BED_MAGIC = bytes([0x6C, 0x1B, 0x01])  # the last byte marks variant-major mode


def read_plink_text(path: Path, names: list[str]) -> pd.DataFrame:
    """Whitespace-separated fields as strings; a line with the wrong field count is an error."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    width = len(names)
    try:
        # One spare column catches lines with one field too many (pandas raises beyond that).
        frame = pd.read_csv(path, sep=r"\s+", header=None, names=list(range(width + 1)), dtype=str,
                            skip_blank_lines=False, na_filter=False, index_col=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file") from None
    except pd.errors.ParserError as err:
        found = re.search(r"Expected \d+ fields in line (\d+), saw (\d+)", str(err))
        if found:
            raise DataError(f"{path}, line {found.group(1)}: {found.group(2)} fields, expected {width} "
                            f"({', '.join(names)})") from err
        raise DataError(f"{path}: malformed file ({err})") from err
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the file ({err})") from err
    cells = frame.to_numpy(dtype=str)
    filled = np.flatnonzero((cells != "").any(axis=1))
    cells = cells[: filled[-1] + 1] if len(filled) else cells[:0]  # trailing blank lines are harmless
    bad = (cells[:, :width] == "").any(axis=1) | (cells[:, width] != "")
    if bad.any():
        row = int(np.argmax(bad))
        count = int((cells[row] != "").sum())
        raise DataError(f"{path}, line {row + 1}: {count} fields, expected {width} ({', '.join(names)})")
    if not len(cells):
        raise DataError(f"{path}: empty file")
    return pd.DataFrame(cells[:, :width], columns=names, index=pd.RangeIndex(1, len(cells) + 1))


def int_column(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = frame[column].to_numpy(dtype=str)
    try:
        return values.astype(np.int64)
    except ValueError:
        for line, text in zip(frame.index, values):
            try:
                int(text)
            except ValueError:
                raise DataError(f"{path}, line {line}, field '{column}': '{text}' is not an integer") from None
    raise AssertionError("unreachable")


def first_duplicate(values: np.ndarray, lines, path: Path, what: str) -> None:
    _, first, counts = np.unique(values, return_index=True, return_counts=True)
    if (counts > 1).any():
        value = values[first[counts > 1][0]]
        where = [str(lines[i]) for i in np.flatnonzero(values == value)[:2]]
        raise DataError(f"{path}: {what} '{value}' is listed twice, on lines {' and '.join(where)}")


def read_fam(path: Path) -> pd.DataFrame:
    frame = read_plink_text(path, ["fid", "iid", "father", "mother", "sex", "pheno"])
    first_duplicate(frame["iid"].to_numpy(dtype=str), frame.index, path, "individual (IID)")
    return frame


def read_bim(path: Path) -> pd.DataFrame:
    frame = read_plink_text(path, ["chrom", "sid", "cm", "bp", "allele_1", "allele_2"])
    frame["bp"] = int_column(frame, "bp", path)
    if (frame["bp"] < 0).any():
        line = frame.index[int(np.argmax(frame["bp"].to_numpy() < 0))]
        raise DataError(f"{path}, line {line}, field 'bp': negative position")
    frame["chrom"] = norm_chrom(frame["chrom"].to_numpy(dtype=str))
    return frame


def allele_flips(expected: np.ndarray, found: np.ndarray, variant_ids, source) -> np.ndarray:
    """Per variant, True where `found` (A1, A2) is `expected` swapped, so its dosages count the
    other allele (use 2 - d). Alleles compare case-insensitively; a variant whose alleles are
    neither the same pair nor the swapped pair (another strand or another variant) is an error."""
    expected, found = np.char.upper(np.asarray(expected, str)), np.char.upper(np.asarray(found, str))
    same = (expected == found).all(axis=1)
    flip = (expected == found[:, ::-1]).all(axis=1) & ~same
    bad = ~(same | flip)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{source}: {int(bad.sum())} variant(s) have other alleles than the run's, e.g. "
                        f"{variant_ids[i]}: {'/'.join(found[i])} there, {'/'.join(expected[i])} in the run "
                        f"(A1/A2); they cannot be aligned")
    return flip


def check_bed(path: Path, n_individuals: int, n_variants: int) -> None:
    """Magic bytes and exact size, so a truncated file fails here rather than mid-read."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    expected = 3 + n_variants * ((n_individuals + 3) // 4)
    actual = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(3)
    if head != BED_MAGIC:
        raise DataError(f"{path}: not a variant-major PLINK .bed (first bytes {head.hex()}, "
                        f"expected {BED_MAGIC.hex()})")
    if actual != expected:
        raise DataError(f"{path}: size {actual} bytes, expected {expected} for {n_individuals} "
                        f"individuals (.fam) x {n_variants} variants (.bim); truncated or corrupt?")


def norm_chrom(values: np.ndarray) -> np.ndarray:
    text = pd.Series(np.asarray(values, dtype=str)).str.strip()
    return text.str.replace(r"^(?i:chr)", "", regex=True).to_numpy(dtype=str)
