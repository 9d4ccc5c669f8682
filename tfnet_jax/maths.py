"""Row-wise Pearson r and per-gene R^2: the maths that model fitting (baselines, the elastic
net's cross-validation) and evaluation (`tfnet_jax.eval`) share, so models need not import eval.

`row_pearson` / `pearson_test` score predictions row by row (a zero-variance row gives
r = 0, p = 1: a constant prediction carries no signal). `per_gene_r2` divides each gene's SSE
by its own sum of squares around its own mean (NaN for a gene constant on the rows scored).
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def _rows_2d(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    for name, arr in (("a", a), ("b", b)):
        if arr.ndim != 2:
            raise ValueError(f"{name} must be a 2-D array [n, R], got shape {arr.shape}")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    return a, b


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit norm; zero-variance rows become exactly 0.

    Constancy is tested with max == min rather than a variance threshold because the
    float mean of identical values can be off by one ulp, which would leave a tiny
    non-zero residual that normalisation would blow up into noise.
    """
    centred = x - x.mean(axis=1, keepdims=True)
    constant = x.max(axis=1, initial=-np.inf) == x.min(axis=1, initial=np.inf)
    centred[constant] = 0.0
    norm = np.linalg.norm(centred, axis=1, keepdims=True)
    return np.divide(centred, norm, out=np.zeros_like(centred), where=norm > 0)


def row_pearson(a, b) -> np.ndarray:
    """Pearson r of each row pair of `a` and `b` [n, R]; a zero-variance row gives 0.0.

    Per column: row_pearson(a.T, b.T).
    """
    a, b = _rows_2d(a, b)
    r = np.sum(unit_rows(a) * unit_rows(b), axis=1)
    # Rounding can push |r| a hair past 1.
    return np.clip(r, -1.0, 1.0)


def pearson_test(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Per row of `a`, `b` [n, R]: Pearson r and its two-sided p-value (t test, R - 2 df)."""
    a, _ = _rows_2d(a, b)
    r = row_pearson(a, b)
    df = a.shape[1] - 2
    if df < 1:
        raise ValueError(f"a Pearson test needs at least 3 values per row, got {a.shape[1]}")
    t = r * np.sqrt(df / np.maximum(1.0 - r ** 2, 1e-300))
    return r, 2.0 * stats.t.sf(np.abs(t), df)


def paired_arrays(pred, true) -> tuple[np.ndarray, np.ndarray]:
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    if pred.shape != true.shape or pred.ndim != 2:
        raise ValueError(f"pred and true must be equal-shaped [samples, genes] arrays, got "
                         f"{pred.shape} and {true.shape}")
    if pred.shape[0] < 2:
        raise ValueError(f"R^2 needs at least 2 samples, got {pred.shape[0]}")
    return pred, true


def per_gene_r2(pred, true) -> np.ndarray:
    """1 - SSE / SST per gene (column), SST around that gene's own mean. NaN for constant genes.

    Constancy is max == min, not SST > 0: the float mean of identical values can be off by
    an ulp, and dividing by that residue would score noise.
    """
    pred, true = paired_arrays(pred, true)
    sse = ((true - pred) ** 2).sum(axis=0)
    sst = ((true - true.mean(axis=0)) ** 2).sum(axis=0)
    constant = true.max(axis=0) == true.min(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(constant, np.nan, 1.0 - sse / np.where(constant, 1.0, sst))
