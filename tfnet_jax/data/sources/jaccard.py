"""Top-k Jaccard neighbours between the rows of a sparse 0/1 membership matrix (genes x sets).

This is how GEARS turns gene sets (GO terms) into a gene graph: each gene keeps the k
genes whose sets overlap its own the most, by Jaccard similarity |A & B| / |A | B|.

Intersections |A & B| are computed a block of rows at a time, never as a dense
genes x genes matrix. Columns shared by many rows (the top of the GO graph: every annotated
gene of an aspect shares its root) make a sparse product cost sum(n_t^2) over columns of
n_t members (about 3e9 for GO BP), so those columns go through one dense float32 BLAS
product and only the rest through the sparse product; counts stay exact (< 2^24).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

# A column with more members than this fraction of the rows goes through the dense product:
# there a column costs 2 * rows^2 flops (BLAS), in the sparse product about n_t^2 slower ones.
DENSE_COLUMN_FRACTION = 1 / 16
BLOCK_BYTES = 64 * 2**20  # one block's float64 similarity matrix


def jaccard_top_k(members: sp.spmatrix, top_k: int, *, block_bytes: int = BLOCK_BYTES
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, weight) of the undirected pairs a < b (row indices) where b is among a's top_k
    most similar other rows or a among b's; weight = the Jaccard similarity (> 0 only).

    Ties in similarity go to the lower row index, so the result depends on the row order
    only. A row without members has no neighbours.
    """
    members = sp.csr_matrix(members, dtype=np.float32)
    members.sum_duplicates()
    members.data[:] = 1
    n = members.shape[0]
    if n < 2 or top_k < 1:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float64)
    sizes = np.diff(members.indptr).astype(np.float64)
    per_column = np.bincount(members.indices, minlength=members.shape[1])
    dense_columns = per_column > DENSE_COLUMN_FRACTION * n
    dense = members[:, np.flatnonzero(dense_columns)].toarray()  # rows x few columns, float32
    sparse_part = members[:, np.flatnonzero(~dense_columns)].tocsr()
    sparse_transposed = sparse_part.T.tocsr()
    block = max(1, min(n, block_bytes // (8 * n)))
    chosen_rows, chosen_cols, chosen_weights = [], [], []
    for start in range(0, n, block):
        stop = min(n, start + block)
        shared = (dense[start:stop] @ dense.T).astype(np.float64)
        extra = (sparse_part[start:stop] @ sparse_transposed).tocoo()
        shared[extra.row, extra.col] += extra.data
        union = sizes[start:stop, None] + sizes[None, :]
        union -= shared
        np.maximum(union, 1.0, out=union)  # 0 only between two rows without members
        similarity = np.divide(shared, union, out=shared)
        del union
        similarity[np.arange(stop - start), np.arange(start, stop)] = -1.0  # never oneself
        rows, cols = _top_k_per_row(similarity, top_k)
        chosen_rows.append(rows + start)
        chosen_cols.append(cols)
        chosen_weights.append(similarity[rows, cols])
    rows, cols = np.concatenate(chosen_rows), np.concatenate(chosen_cols)
    # A pair chosen from both ends has the same weight both times (the same float operations).
    pairs, first = np.unique(np.minimum(rows, cols) * n + np.maximum(rows, cols), return_index=True)
    return pairs // n, pairs % n, np.concatenate(chosen_weights)[first]


def _top_k_per_row(similarity: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of each row's top_k largest positive values, by row; among equal values
    at the cut-off, the lowest columns."""
    height, width = similarity.shape
    k = min(top_k, width)
    cutoff = np.partition(similarity, width - k, axis=1)[:, width - k, None]  # k-th largest
    above_rows, above_cols = np.nonzero(similarity > cutoff)
    # by row, then column; a cut-off of 0 or less (fewer than k overlapping rows) takes no ties
    tied_rows, tied_cols = np.nonzero((similarity == cutoff) & (cutoff > 0))
    wanted = k - np.bincount(above_rows, minlength=height)
    rank_in_row = np.arange(len(tied_rows)) - np.searchsorted(tied_rows, tied_rows)
    take = rank_in_row < wanted[tied_rows]
    rows = np.concatenate([above_rows, tied_rows[take]])
    cols = np.concatenate([above_cols, tied_cols[take]])
    positive = similarity[rows, cols] > 0
    return rows[positive], cols[positive]
