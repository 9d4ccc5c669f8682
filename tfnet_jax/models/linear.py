"""The one ridge regression: a thin SVD of the centred training inputs, alpha chosen on
validation rows.

Used by TFNet's ridge baseline and ridge start, TranscriptionNet's ridge skip start and
its gene-feature ridge baseline. With an intercept, ridge is the minimiser of
|y_c - X_c W|^2 + alpha |W|^2 over centred X_c, y_c, i.e. W = V diag(s / (s^2 + alpha)) U^T y_c
from X_c = U diag(s) V^T, so one SVD serves every alpha (and PCR's truncations).
The selection criterion differs by caller and is a parameter (`score`).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

Score = Callable[[np.ndarray, np.ndarray], float]


def variance_explained(pred: np.ndarray, true: np.ndarray) -> float:
    """1 - SSE / SST over all entries, SST around each column's own mean (higher is better)."""
    return 1.0 - ((true - pred) ** 2).sum() / max(((true - true.mean(0)) ** 2).sum(), 1e-12)


class CentredSvd:
    """Thin SVD of the centred training inputs, shared by every alpha / truncation."""

    def __init__(self, x_train, y_train):
        x_train, y_train = np.asarray(x_train, np.float64), np.asarray(y_train, np.float64)
        if x_train.ndim != 2 or y_train.ndim != 2 or x_train.shape[0] != y_train.shape[0]:
            raise ValueError(f"x_train [n, F] and y_train [n, R] must share their rows, got "
                             f"{x_train.shape} and {y_train.shape}")
        if x_train.shape[0] == 0:
            raise ValueError("x_train has no rows")
        self.x_mean, self.y_mean = x_train.mean(0), y_train.mean(0)
        self.u, self.s, self.vt = np.linalg.svd(x_train - self.x_mean, full_matrices=False)
        self.uty = self.u.T @ (y_train - self.y_mean)  # [k, targets]

    def ridge_shrink(self, alpha: float) -> np.ndarray:
        # A null direction (s = 0) gets no weight, also at alpha 0 (the pseudo-inverse).
        return np.divide(self.s, self.s ** 2 + alpha, out=np.zeros_like(self.s), where=self.s > 0)

    def coefficients(self, shrink: np.ndarray) -> np.ndarray:
        """Weights [F, targets] for per-component factors `shrink` (on 1/s)."""
        return self.vt.T @ (shrink[:, None] * self.uty)

    def intercept(self, coef: np.ndarray) -> np.ndarray:
        return self.y_mean - self.x_mean @ coef

    def predict(self, x, coef: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) - self.x_mean) @ coef + self.y_mean


def choose(svd: CentredSvd, shrinks: Sequence[np.ndarray], x_valid, y_valid,
           score: Score = variance_explained) -> int:
    """Index of the shrink whose validation `score` is highest (the first of ties)."""
    x_valid, y_valid = np.asarray(x_valid, np.float64), np.asarray(y_valid, np.float64)
    if len(shrinks) == 1:
        return 0
    if x_valid.shape[0] == 0:
        raise ValueError("no validation rows to choose the regularisation on")
    scores = np.array([score(svd.predict(x_valid, svd.coefficients(s)), y_valid) for s in shrinks],
                      dtype=np.float64)
    if np.isnan(scores).all():
        raise ValueError("every validation score is NaN")
    return int(np.nanargmax(scores))


def ridge_fit(x_train, y_train, x_valid, y_valid, alphas: Sequence[float],
              score: Score = variance_explained) -> tuple[np.ndarray, np.ndarray, float]:
    """(weights [F, R], intercept [R], alpha): ridge on the training rows at the alpha of
    `alphas` whose predictions of the validation rows score highest. One alpha: no
    validation rows needed."""
    alphas = np.asarray(alphas, np.float64).reshape(-1)
    if alphas.size == 0 or (alphas < 0).any():
        raise ValueError(f"alphas must be a non-empty list of non-negative values, got {alphas}")
    svd = CentredSvd(x_train, y_train)
    shrinks = [svd.ridge_shrink(alpha) for alpha in alphas]
    best = choose(svd, shrinks, x_valid, y_valid, score)
    coef = svd.coefficients(shrinks[best])
    return coef, svd.intercept(coef), float(alphas[best])
