"""GCTX writing in the CMap layout (see gctx.py): atomic, and streamed signature block by block."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import pandas as pd

from tfnet_jax.data.io.gctx import (
    COL_META,
    MATRIX_PATH,
    MISSING,
    ROW_META,
    VERSION,
    _unique_index,
)
from tfnet_jax.data.io.h5_atomic import AtomicH5Writer
from tfnet_jax.errors import DataError

_BATCH_BYTES = 32 << 20  # bound on the temporary block of one write call
_CHUNK_BYTES = 64 << 10  # default chunk: whole signatures, about 64 KiB


def _encode_text(values: Sequence) -> np.ndarray:
    """Text as fixed-length utf-8 byte strings (what CMap readers expect); None/NaN -> -666."""
    encoded = [str(MISSING).encode() if v is None or (isinstance(v, float) and np.isnan(v))
               else str(v).encode("utf-8") for v in values]
    return np.array(encoded, dtype=f"S{max([1, *map(len, encoded)])}")


def _meta_array(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=np.int8)
    if pd.api.types.is_numeric_dtype(series.dtype):
        if pd.api.types.is_integer_dtype(series.dtype) and not series.isna().any():
            return series.to_numpy(dtype=np.int64)
        return series.to_numpy(dtype=np.float64, na_value=np.nan).copy()
    return _encode_text(series.tolist())


def _write_meta(file: h5py.File, node: str, ids: np.ndarray, meta: pd.DataFrame) -> None:
    group = file.create_group(node, track_order=True)  # keeps the fields in the caller's order
    group.create_dataset("id", data=_encode_text(ids))
    for name in meta.columns:
        values = _meta_array(meta[name])
        if values.dtype.kind == "f":
            values[np.isnan(values)] = MISSING
        group.create_dataset(str(name), data=values)


def _as_ids(ids: Sequence) -> np.ndarray:
    return np.asarray([str(i) for i in ids], dtype=object)


def _aligned_meta(meta: pd.DataFrame | None, ids: np.ndarray, what: str) -> pd.DataFrame:
    """Metadata rows in `ids` order: by index when it holds exactly these ids, else by position."""
    if meta is None:
        return pd.DataFrame(index=pd.RangeIndex(len(ids)))
    if "id" in meta.columns:
        raise DataError(f"{what}: 'id' is reserved for the ids; rename that column")
    if len(meta) != len(ids):
        raise DataError(f"{what}: {len(meta)} rows for {len(ids)} ids")
    index = meta.index.astype(str)
    if index.is_unique and set(index) == set(ids.tolist()):
        return meta.set_axis(index).reindex(ids.tolist())
    return meta


def _default_chunks(n_genes: int) -> tuple[int, int]:
    # Whole signatures per chunk, so a signature subset touches only its own chunks.
    genes = min(n_genes, _CHUNK_BYTES * 16 // 4)
    return max(1, _CHUNK_BYTES // (4 * genes)), genes


class GCTXWriter(AtomicH5Writer):
    """Write a GCTX file signature block by signature block, with bounded memory.

    The matrix dataset is resizable along the signature axis and grows with each
    `append`. Column ids and metadata are kept until `close()` (a few bytes per signature
    and field, against 4 x n_genes bytes of matrix) because CMap readers expect
    fixed-length strings whose width is known only at the end. The file is written under
    a temporary name beside `path` and renamed into place by `close()`; leaving a `with`
    block by an exception deletes it instead.
    """

    def __init__(self, path: str | Path, row_ids: Sequence[str],
                 row_meta: pd.DataFrame | None = None, chunks: tuple[int, int] | None = None, compression: str | None = None,
                 compression_opts: int | None = None):
        """`chunks` is (signatures, genes) per chunk, in the on-disk order."""
        self.path = Path(path)
        self.row_ids = _as_ids(row_ids)
        if not len(self.row_ids):
            raise DataError(f"{self.path}: a GCTX file needs at least one gene (row)")
        _unique_index(self.row_ids, f"{self.path}: row_ids")
        row_meta = _aligned_meta(row_meta, self.row_ids, f"{self.path}: row_meta")
        self._col_ids: list[np.ndarray] = []
        self._col_meta: list[pd.DataFrame] = []
        try:
            self._open(self.path)
            self._file.attrs["version"] = np.bytes_(VERSION)
            n_genes = len(self.row_ids)
            self._matrix = self._file.create_dataset(
                MATRIX_PATH, shape=(0, n_genes), maxshape=(None, n_genes), dtype=np.float32,
                chunks=chunks or _default_chunks(n_genes), compression=compression,
                compression_opts=compression_opts)
            _write_meta(self._file, ROW_META, self.row_ids, row_meta)
        except BaseException:
            self.abort()
            raise

    def append(self, block: np.ndarray, col_ids: Sequence[str],
               col_meta: pd.DataFrame | None = None) -> None:
        """Add signatures: `block` is genes x k, `col_ids` and `col_meta` have k rows."""
        block = np.asarray(block, dtype=np.float32)
        ids = _as_ids(col_ids)
        if block.ndim != 2 or block.shape != (len(self.row_ids), len(ids)):
            raise DataError(f"{self.path}: block of shape {block.shape}, expected "
                            f"({len(self.row_ids)} genes, {len(ids)} signatures)")
        meta = _aligned_meta(col_meta, ids, f"{self.path}: col_meta")
        if self._col_meta and list(meta.columns) != list(self._col_meta[0].columns):
            raise DataError(f"{self.path}: col_meta fields {list(meta.columns)} differ from "
                            f"those of the first block {list(self._col_meta[0].columns)}")
        start = self._matrix.shape[0]
        self._matrix.resize(start + len(ids), axis=0)
        self._matrix[start:] = block.T
        self._col_ids.append(ids)
        self._col_meta.append(meta.reset_index(drop=True))

    def close(self) -> None:
        """Write the column ids and metadata, then rename the file into place."""
        try:
            ids = np.concatenate(self._col_ids) if self._col_ids else np.asarray([], dtype=object)
            _unique_index(ids, f"{self.path}: col_ids")
            meta = (pd.concat(self._col_meta, ignore_index=True) if self._col_meta
                    else pd.DataFrame(index=pd.RangeIndex(0)))
            _write_meta(self._file, COL_META, ids, meta)
            self._publish()
        except BaseException:
            self.abort()
            raise


def write_gctx(path: str | Path, matrix: np.ndarray, row_ids: Sequence[str], col_ids: Sequence[str],
               row_meta: pd.DataFrame | None = None, col_meta: pd.DataFrame | None = None,
               chunks: tuple[int, int] | None = None, compression: str | None = None,
               compression_opts: int | None = None) -> None:
    """Write a genes x signatures matrix atomically in the CMap layout (stored transposed).

    `chunks` is (signatures, genes) per chunk; `compression="gzip"` with level
    `compression_opts` shrinks real data at some cost in speed (CMap's files are not).
    """
    matrix = np.asarray(matrix)
    col_ids = _as_ids(col_ids)
    if matrix.ndim != 2 or matrix.shape != (len(row_ids), len(col_ids)):
        raise DataError(f"{path}: matrix of shape {matrix.shape}, expected "
                        f"({len(row_ids)} row ids, {len(col_ids)} col ids)")
    col_meta = _aligned_meta(col_meta, col_ids, f"{path}: col_meta")
    step = max(1, _BATCH_BYTES // (4 * max(1, matrix.shape[0])))
    with GCTXWriter(path, row_ids, row_meta, chunks, compression, compression_opts) as writer:
        for start in range(0, len(col_ids), step):
            part = slice(start, start + step)
            writer.append(matrix[:, part], col_ids[part], col_meta.iloc[part])
