"""Out-of-distribution guard: shrink predictions for inputs unlike the training inputs.

A feature-based predictor (a network reading node features, ridge) extrapolates for an input
far from its training inputs, and its prediction can land far from any real signature. The
guard scores each input by its ridge-regularised Mahalanobis distance from the training
inputs,

    score(x) = (x - mu)^T (C + lam I)^-1 (x - mu),   lam = trace(C) / F,

(mu, C: mean and covariance of the F training features) and shrinks only the predictions of
inputs scoring above a threshold t towards the training mean m:

    pred' = m + (1 - s * [score(x) > t]) * (pred - m).

t is the q-quantile of the training inputs' *cross-fitted* scores (each training input scored
by a fit on the other folds, so it is as new to the fit as a held-out input; in-sample
scores are far smaller when F approaches the number of inputs). q and s come from small
grids, chosen by the validation MSE (ties: the smallest s, then the largest q). With s < 1 the
factor stays positive, so a prediction's direction from the training mean, and every metric
of that direction alone (pearson_delta, retrieval), is unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FeatureDistance:
    """score(x) for F features fitted on n rows. With F > n (e.g. thousands of GO terms) the
    F x F inverse is never formed: C has rank < n, so by Woodbury
    (C + lam I)^-1 = (I - U^T (m lam I + U U^T)^-1 U) / lam   (U: the centred rows, m = n - 1),
    an n x n solve instead of an F x F one (the same scores to rounding)."""
    centre: np.ndarray     # [F]
    lam: float
    precision: np.ndarray | None = None  # [F, F] (C + lam I)^-1, when F <= n
    rows: np.ndarray | None = None       # [n, F] centred training rows U, when F > n
    inner: np.ndarray | None = None      # [n, n] (m lam I + U U^T)^-1, when F > n

    @classmethod
    def fit(cls, x) -> "FeatureDistance":
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"FeatureDistance.fit needs >= 2 rows [n, F], got shape {x.shape}")
        centre = x.mean(axis=0)
        centred = x - centre
        m, features = x.shape[0] - 1, x.shape[1]
        lam = max(float(np.einsum("ij,ij->", centred, centred)) / (m * features), 1e-12)
        if features <= x.shape[0]:
            cov = centred.T @ centred / m
            return cls(centre, lam, precision=np.linalg.inv(cov + lam * np.eye(features)))
        gram = centred @ centred.T
        return cls(centre, lam, rows=centred,
                   inner=np.linalg.inv(gram + m * lam * np.eye(gram.shape[0])))

    def score(self, x) -> np.ndarray:
        d = np.asarray(x, np.float64) - self.centre
        if self.precision is not None:
            return np.einsum("ij,jk,ik->i", d, self.precision, d)
        projected = d @ self.rows.T  # [q, n]
        return (np.einsum("ij,ij->i", d, d)
                - np.einsum("ij,jk,ik->i", projected, self.inner, projected)) / self.lam


def reference_scores(x, folds: int = 5) -> np.ndarray:
    """Each row of `x` scored by a FeatureDistance fitted on the other folds (row i in fold
    i mod k, k = min(folds, rows - 2) so every fit keeps >= 2 rows)."""
    x = np.asarray(x, np.float64)
    k = min(int(folds), x.shape[0] - 2)
    if k < 2:
        raise ValueError(f"reference_scores needs >= 4 rows, got {x.shape[0]}")
    fold = np.arange(x.shape[0]) % k
    scores = np.empty(x.shape[0])
    for f in range(k):
        held = fold == f
        scores[held] = FeatureDistance.fit(x[~held]).score(x[held])
    return scores


def shrink_factors(scores, threshold: float, shrink: float) -> np.ndarray:
    """Per row, the factor on (pred - mean): 1 - shrink where score > threshold, else 1."""
    return np.where(np.asarray(scores) > threshold, 1.0 - float(shrink), 1.0)


def apply_shrink(pred, mean, factors) -> np.ndarray:
    """mean + factor * (pred - mean) per row; rows with factor 1 are returned bit for bit."""
    pred = np.asarray(pred)
    mean = np.asarray(mean, pred.dtype)
    factors = np.asarray(factors)[:, None]
    shrunk = mean + factors.astype(pred.dtype) * (pred - mean)
    return np.where(factors < 1, shrunk, pred).astype(pred.dtype)


@dataclass
class GuardChoice:
    quantile: float
    threshold: float
    shrink: float
    valid_mse: float
    unguarded_valid_mse: float

    def factors(self, scores) -> np.ndarray:
        return shrink_factors(scores, self.threshold, self.shrink)


def choose(pred, true, mean, scores, reference, quantiles, shrinks) -> GuardChoice:
    """The (quantile, shrink) of the grids with the lowest MSE of the guarded `pred` on `true`
    (validation rows; `scores` their guard scores, `reference` the training reference scores).
    Without validation rows: no shrinkage."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    mean = np.asarray(mean, np.float64)
    thresholds = {float(q): float(np.quantile(reference, q)) for q in quantiles}
    top_q = max(thresholds)
    if len(pred) == 0:
        return GuardChoice(top_q, thresholds[top_q], 0.0, float("nan"), float("nan"))
    unguarded = float(np.mean((pred - true) ** 2))
    best = None
    for s in sorted(float(v) for v in shrinks):
        for q in sorted(thresholds, reverse=True):
            factors = shrink_factors(scores, thresholds[q], s)
            mse = float(np.mean((apply_shrink(pred, mean, factors) - true) ** 2))
            if best is None or mse < best.valid_mse * (1 - 1e-9):
                best = GuardChoice(q, thresholds[q], s, mse, unguarded)
    return best
