"""GCTX (HDF5, CMap layout) matrices: the layout and subset reading by id (writing: gctx_write.py;
GCT text: gct.py).

CMap layout, as written by cmapPy and the CMap/clue.io files:
    attrs["version"]   b"GCTX1.0"
    /0/DATA/0/matrix   float32 [n_signatures, n_genes]   (columns x rows: transposed on disk)
    /0/META/COL/id     signature ids (fixed-length byte strings); more fields beside `id`
    /0/META/ROW/id     gene ids; more fields beside `id`
In memory the matrix is genes x signatures, like cmapPy's data_df. In metadata, -666
(number or text) means missing: it is read as NaN in numeric fields, None in text fields,
and written for NaN / None.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import h5py
import numpy as np
import pandas as pd

from tfnet_jax.data.io.tables import preview
from tfnet_jax.errors import DataError

log = logging.getLogger(__name__)

VERSION = "GCTX1.0"
MATRIX_PATH = "0/DATA/0/matrix"
ROW_META = "0/META/ROW"
COL_META = "0/META/COL"
MISSING = -666
_MISSING_TEXT = ("-666", "-666.0")
_BATCH_BYTES = 32 << 20  # bound on the temporary block of one read call
_GAP_BYTES = 256 << 10  # reading this many unwanted bytes costs about one more h5py call


@dataclass
class GCTXData:
    """A genes x signatures matrix with its row (gene) and column (signature) metadata."""

    matrix: np.ndarray  # float32 [genes, signatures]
    row_meta: pd.DataFrame  # index "rid": gene ids, in matrix row order
    col_meta: pd.DataFrame  # index "cid": signature ids, in matrix column order

    @property
    def row_ids(self) -> np.ndarray:
        return self.row_meta.index.to_numpy(dtype=object)

    @property
    def col_ids(self) -> np.ndarray:
        return self.col_meta.index.to_numpy(dtype=object)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.matrix, index=self.row_meta.index, columns=self.col_meta.index)


def _decode_text(raw: np.ndarray) -> np.ndarray:
    """Fixed- or variable-length byte strings (or numbers) -> object array of str."""
    return np.array([x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in raw.tolist()],
                    dtype=object)


def _missing_to_none(text: np.ndarray) -> np.ndarray:
    text = text.copy()
    text[np.isin(text, _MISSING_TEXT)] = None
    return text


def _meta_values(raw: np.ndarray) -> np.ndarray:
    """One metadata field as stored -> values with -666 turned into NaN / None."""
    if raw.dtype.kind in "SOU":
        return _missing_to_none(_decode_text(raw))
    if raw.dtype.kind in "iuf" and (raw == MISSING).any():
        values = raw.astype(np.float64)
        values[raw == MISSING] = np.nan
        return values
    return raw


def _meta_frame(fields: dict[str, np.ndarray], ids: np.ndarray, index_name: str) -> pd.DataFrame:
    index = pd.Index(ids, dtype=object, name=index_name)
    # dtype=object keeps None (not NaN) for missing text, as documented.
    return pd.DataFrame({k: pd.Series(v, index=index, dtype=object if v.dtype == object else None)
                         for k, v in fields.items()}, index=index)


def _unique_index(ids: np.ndarray, where: str) -> pd.Index:
    index = pd.Index(ids, dtype=object)
    if not index.is_unique:
        raise DataError(f"{where}: id(s) listed more than once: "
                        f"{preview(index[index.duplicated()].unique().tolist(), 5)}")
    return index


class GCTXReader:
    """An open GCTX file: ids at hand, matrix and metadata read on request, by id subset."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: file not found")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as err:  # h5py's error for non-HDF5, truncated or corrupt files
            raise DataError(f"{self.path}: not a readable HDF5/GCTX file ({err})") from err
        try:
            with self._errors():
                self._check_layout()
        except BaseException:
            self._file.close()
            raise

    def _check_layout(self) -> None:
        for node in (MATRIX_PATH, f"{ROW_META}/id", f"{COL_META}/id"):
            if not isinstance(self._file.get(node), h5py.Dataset):
                raise DataError(f"{self.path}: no dataset /{node} (not a GCTX file in CMap layout)")
        self._matrix = self._file[MATRIX_PATH]
        if self._matrix.ndim != 2:
            raise DataError(f"{self.path}: /{MATRIX_PATH} has {self._matrix.ndim} dimensions, "
                            "expected 2")
        n_cols, n_rows = self._matrix.shape
        self.row_ids = _decode_text(self._file[f"{ROW_META}/id"][()])
        self.col_ids = _decode_text(self._file[f"{COL_META}/id"][()])
        for ids, n, node, what in ((self.row_ids, n_rows, ROW_META, "genes (axis 1)"),
                                   (self.col_ids, n_cols, COL_META, "signatures (axis 0)")):
            if len(ids) != n:
                raise DataError(f"{self.path}: /{node}/id has {len(ids)} ids but /{MATRIX_PATH} "
                                f"has {n} {what}")
        self._row_index = _unique_index(self.row_ids, f"{self.path}: /{ROW_META}/id")
        self._col_index = _unique_index(self.col_ids, f"{self.path}: /{COL_META}/id")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        # h5py reports corrupt chunks and broken nodes as OSError / KeyError mid-read.
        try:
            yield
        except (OSError, KeyError, UnicodeDecodeError) as err:
            raise DataError(f"{self.path}: cannot read the GCTX file ({err})") from err

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "GCTXReader":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def positions(self, ids: Sequence[str] | None, axis: str) -> np.ndarray | None:
        """Positions of `ids` among the row ("row") or column ("col") ids; None means all."""
        if ids is None:
            return None
        index = self._row_index if axis == "row" else self._col_index
        what = "gene (row)" if axis == "row" else "signature (column)"
        wanted = _unique_index(np.asarray([str(i) for i in ids], dtype=object),
                               f"{self.path}: requested {what} ids")
        found = index.get_indexer(wanted)
        if (found < 0).any():
            unknown = wanted[found < 0].tolist()
            raise DataError(f"{self.path}: unknown {what} id(s) {preview(unknown, 5)}")
        return found.astype(np.int64)

    def read_meta(self, rows: np.ndarray | None = None,
                  cols: np.ndarray | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(row_meta, col_meta) for the given positions (all when None)."""
        return (self._group_meta(ROW_META, self.row_ids, rows, "rid"),
                self._group_meta(COL_META, self.col_ids, cols, "cid"))

    def _group_meta(self, node: str, ids: np.ndarray, take: np.ndarray | None,
                    index_name: str) -> pd.DataFrame:
        fields: dict[str, np.ndarray] = {}
        with self._errors():
            for name, dataset in self._file[node].items():
                if name == "id" or not isinstance(dataset, h5py.Dataset):
                    continue
                if dataset.shape != (len(ids),):
                    raise DataError(f"{self.path}: /{node}/{name} has shape {dataset.shape}, "
                                    f"expected ({len(ids)},) like /{node}/id")
                values = _meta_values(dataset[()])
                fields[name] = values if take is None else values[take]
        return _meta_frame(fields, ids if take is None else ids[take], index_name)

    def read(self, rids: Sequence[str] | None = None,
             cids: Sequence[str] | None = None) -> GCTXData:
        """The matrix (genes x signatures) for the requested ids, in the requested order."""
        rows, cols = self.positions(rids, "row"), self.positions(cids, "col")
        matrix = self.read_positions(rows, cols)
        row_meta, col_meta = self.read_meta(rows, cols)
        bad = ~np.isfinite(matrix)
        if bad.any():  # CMap matrices have no missing values: this is damage, not data
            r, c = np.argwhere(bad)[0]
            raise DataError(f"{self.path}: {int(bad.sum())} non-finite value(s) in /{MATRIX_PATH}, e.g. "
                            f"gene {row_meta.index[r]!r}, signature {col_meta.index[c]!r}; the file "
                            f"is damaged or not a signature matrix: re-download or re-create it")
        return GCTXData(matrix=matrix, row_meta=row_meta, col_meta=col_meta)

    def read_positions(self, rows: np.ndarray | None, cols: np.ndarray | None) -> np.ndarray:
        """float32 [len(rows), len(cols)]; reads only the chunks holding the wanted signatures."""
        n_sigs, n_genes = self._matrix.shape
        cols = np.arange(n_sigs) if cols is None else cols
        # Genes: one contiguous slice from disk, then an in-memory take in the caller's order.
        lo, hi = (0, n_genes) if rows is None or not len(rows) else (rows.min(), rows.max() + 1)
        take = None if rows is None else rows - lo
        out = np.empty((len(cols), n_genes if rows is None else len(rows)), dtype=np.float32)
        if out.size == 0:
            return out.T
        # Signatures: read in sorted slabs (plain slices: h5py's point lists are ~10x slower),
        # then put back in request order.
        order = np.argsort(cols, kind="stable")
        ordered = cols[order]
        row_bytes = max(1, (hi - lo) * self._matrix.dtype.itemsize)
        chunk_rows = self._matrix.chunks[0] if self._matrix.chunks else 1
        with self._errors():
            for a, b in _slabs(ordered, row_bytes, chunk_rows):
                first = ordered[a]
                block = self._matrix[first:ordered[b - 1] + 1, lo:hi]
                if len(block) != b - a:  # the slab spans rows not asked for
                    block = block[ordered[a:b] - first]
                out[order[a:b]] = block if take is None else block[:, take]
        return out.T  # a genes x signatures view of the signature-major buffer: no copy


def _slabs(ordered: np.ndarray, row_bytes: int, chunk_rows: int) -> Iterator[tuple[int, int]]:
    """(a, b): read ordered[a:b] as the one slice ordered[a]..ordered[b-1] of the matrix.

    Neighbours share a slab when they share a chunk (so each chunk is read and
    decompressed once) or when the rows between them cost less than another h5py call;
    a slab spans at most _BATCH_BYTES (or one chunk) to bound the temporary block.
    """
    gap_bytes = (np.diff(ordered) - 1) * row_bytes
    same_chunk = np.diff(ordered // chunk_rows) == 0
    starts = np.flatnonzero(np.r_[True, (gap_bytes > _GAP_BYTES) & ~same_chunk])
    span = max(_BATCH_BYTES // row_bytes, chunk_rows, 1)
    for a, end in zip(starts, [*starts[1:], len(ordered)]):
        while a < end:
            b = a + int(np.searchsorted(ordered[a:end], ordered[a] + span))
            yield a, b
            a = b


def read_gctx_meta(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(row_meta indexed by gene id, col_meta indexed by signature id); no matrix read."""
    with GCTXReader(path) as reader:
        return reader.read_meta()


def read_gctx(path: str | Path, rids: Sequence[str] | None = None,
              cids: Sequence[str] | None = None) -> GCTXData:
    """Read the genes `rids` x signatures `cids` (None = all) in the order asked for."""
    with GCTXReader(path) as reader:
        return reader.read(rids, cids)

