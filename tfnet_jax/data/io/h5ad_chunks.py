"""Reading an `.h5ad`'s X in row chunks: per-group row sums without loading X whole.

X (an h5py dataset, or anndata's backed CSR/CSC dataset) is sliced `_CHUNK_BYTES` of rows at
a time; each chunk is checked (finite values; with log1p normalisation, counts >= 0 and a
row total > 0), errors naming the file, the cell (obs name) and the gene (var name).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from tfnet_jax.errors import DataError

_CHUNK_BYTES = 64 << 20  # bound on the X rows held at once (as float64)


def open_backed(path: Path):
    """The AnnData at `path` in backed mode (obs and var in memory, X on disk)."""
    import anndata
    if not path.is_file():
        raise DataError(f"{path}: h5ad file not found (data.path)")
    try:
        return anndata.read_h5ad(path, backed="r")
    except Exception as err:  # h5py/anndata raise many types on truncated or corrupt files
        raise DataError(f"{path}: cannot read the h5ad file, truncated or corrupt? "
                        f"({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None


def _bad_value(cell: tuple[int, int], path: Path, start: int, obs_names, var_names, what: str,
               value) -> DataError:
    row, col = cell
    return DataError(f"{path}: X {what} ({value}) at cell {str(obs_names[start + row])!r}, "
                     f"gene {str(var_names[col])!r}")


def _checked_chunk(block, target_sum: float | None, path: Path, start: int, obs_names,
                   var_names):
    """A chunk of X rows as float64 (CSR or dense), checked and, with log1p, normalised."""
    if sp.issparse(block):
        block = sp.csr_matrix(block, dtype=np.float64)
        coo = block.tocoo()
        values, where = coo.data, lambda i: (coo.row[i], coo.col[i])
    else:
        block = np.asarray(block, dtype=np.float64)
        values, where = block.ravel(), lambda i: divmod(i, block.shape[1])
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        raise _bad_value(where(i), path, start, obs_names, var_names, "has a non-finite value",
                         values[i])
    if target_sum is None:
        return block
    negative = values < 0
    if negative.any():
        i = int(np.argmax(negative))
        raise _bad_value(where(i), path, start, obs_names, var_names,
                         "has a negative count (data.log1p=true expects raw counts)", values[i])
    totals = np.asarray(block.sum(axis=1)).ravel()
    if (totals <= 0).any():
        row = int(np.argmax(totals <= 0))
        raise DataError(f"{path}: cell {str(obs_names[start + row])!r} has no counts (data.log1p="
                        f"true normalises each cell by its total); drop empty cells")
    scale = target_sum / totals
    if sp.issparse(block):
        block = sp.csr_matrix(sp.diags(scale) @ block)
        block.data = np.log1p(block.data)
        return block
    return np.log1p(block * scale[:, None])


def group_sums(x, groups: np.ndarray, num_groups: int, columns: np.ndarray, path: Path,
               obs_names, var_names, target_sum: float | None = None) -> np.ndarray:
    """Sum of the rows of each group over `columns`: float64 [groups, R].

    `groups` holds each row's group (-1: unused); X is read `_CHUNK_BYTES` at a time. With
    `target_sum`, X holds counts: each row is scaled to `target_sum` (over every column) and
    log1p'ed first.
    """
    num_rows, num_cols = x.shape
    step = max(1, _CHUNK_BYTES // (8 * max(num_cols, 1)))
    sums = np.zeros((num_groups, len(columns)), dtype=np.float64)
    for start in range(0, num_rows, step):
        stop = min(start + step, num_rows)
        block = _checked_chunk(x[start:stop], target_sum, path, start, obs_names, var_names)
        used = np.flatnonzero(groups[start:stop] >= 0)
        if not len(used):
            continue
        # Only the chunk's own groups: a dense [all groups, R] product per chunk would cost
        # far more than the chunk for a genome-wide screen.
        present, row_group = np.unique(groups[start:stop][used], return_inverse=True)
        pick = sp.csr_matrix((np.ones(len(used)), (row_group, used)),
                             shape=(len(present), stop - start))
        part = pick @ block[:, columns]
        sums[present] += part.toarray() if sp.issparse(part) else part
    return sums
