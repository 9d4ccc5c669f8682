"""AnnData (`.h5ad`) writing, streamed row block by row block, atomic.

The layout is anndata's own on-disk format: the dense float32 matrix `/X` (observations x
variables) grows with each `append`, so memory holds one block of it; `obs`, `var` and the
empty mappings are written by `anndata.io.write_elem` at `close()`. Text metadata is stored
as categoricals (what `AnnData.write_h5ad` does with strings), so a missing value (None) stays
missing. Read it back with `anndata.read_h5ad`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from tfnet_jax.data.io.h5_atomic import AtomicH5Writer
from tfnet_jax.errors import DataError

_CHUNK_BYTES = 1 << 20  # chunks of whole rows, about 1 MiB
_EMPTY_MAPPINGS = ("layers", "obsm", "obsp", "varm", "varp", "uns")


def _write_elem():
    try:
        from anndata.io import write_elem  # anndata >= 0.11
    except ImportError:
        from anndata.experimental import write_elem
    return write_elem


def _as_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as categoricals (None -> missing); numbers, booleans and categoricals (with
    the caller's category order) as they are."""
    frame = frame.copy()
    for column in frame.columns:
        values = frame[column]
        kept = (pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype)
                or isinstance(values.dtype, pd.CategoricalDtype))
        if not kept:
            frame[column] = pd.Categorical(values.astype(object).where(values.notna(), None))
    return frame


class H5adWriter(AtomicH5Writer):
    """Write an AnnData file of `var` variables, `append`ing blocks of observations.

    `var` is indexed by the variable names (e.g. readout gene ids). The obs rows are kept until
    `close()` (a few short fields per observation, against 4 x n_vars bytes of X), because
    categoricals need every value first. The file is written under
    a temporary name beside `path` and renamed into place by `close()`; `abort()` (or leaving
    a `with` block by an exception) deletes it instead.
    """

    def __init__(self, path: str | Path, var: pd.DataFrame):
        self.path = Path(path)
        names = pd.Index(var.index.astype(str))
        if not len(names):
            raise DataError(f"{self.path}: an h5ad file needs at least one variable")
        if not names.is_unique:
            raise DataError(f"{self.path}: variable name(s) listed more than once: "
                            f"{names[names.duplicated()].unique().tolist()[:5]}")
        self._var = _as_categories(var.set_axis(names).rename_axis(None))
        self._obs_names: list[str] = []
        self._obs: list[pd.DataFrame] = []
        try:
            self._open(self.path)
            rows = max(1, _CHUNK_BYTES // (4 * len(names)))
            self._x = self._file.create_dataset("X", shape=(0, len(names)), maxshape=(None, len(names)),
                                                dtype=np.float32, chunks=(rows, len(names)))
            self._x.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
        except BaseException:
            self.abort()
            raise

    def append(self, block: np.ndarray, obs_names: Sequence[str], obs: pd.DataFrame) -> None:
        """Add observations: `block` is k x variables, `obs_names` and `obs` have k rows."""
        block = np.asarray(block, dtype=np.float32)
        if block.shape != (len(obs_names), self._x.shape[1]) or len(obs) != len(obs_names):
            raise DataError(f"{self.path}: block of shape {block.shape} with {len(obs_names)} names "
                            f"and {len(obs)} obs rows; expected (k, {self._x.shape[1]}) and k of each")
        if self._obs and list(obs.columns) != list(self._obs[0].columns):
            raise DataError(f"{self.path}: obs columns {list(obs.columns)} differ from those of "
                            f"the first block {list(self._obs[0].columns)}")
        start = self._x.shape[0]
        self._x.resize(start + len(block), axis=0)
        self._x[start:] = block
        self._obs_names.extend(map(str, obs_names))
        self._obs.append(obs.reset_index(drop=True))

    def close(self) -> None:
        """Write obs, var and the encoding attributes, then rename the file into place."""
        try:
            names = pd.Index(self._obs_names)
            if not names.is_unique:
                raise DataError(f"{self.path}: observation name(s) listed more than once: "
                                f"{names[names.duplicated()].unique().tolist()[:5]}")
            obs = pd.concat(self._obs, ignore_index=True) if self._obs else pd.DataFrame(index=range(0))
            write_elem = _write_elem()
            write_elem(self._file, "obs", _as_categories(obs).set_axis(names))
            write_elem(self._file, "var", self._var)
            for key in _EMPTY_MAPPINGS:
                write_elem(self._file, key, {})
            self._file.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
            self._publish()
        except BaseException:
            self.abort()
            raise
