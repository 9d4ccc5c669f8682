"""Reference predictors for TFNet: TF levels -> target levels, fitted on training samples.

`mean` (training mean of each target), `ridge` (linear TF -> target) and `pcr`
(regression on the leading principal components of the TFs). Inputs and outputs are
the standardised matrices of the task; both linear models come from one SVD of the
training inputs, and their hyperparameter (alpha / number of components) is chosen on
the validation samples by variance explained.
"""
from __future__ import annotations

import numpy as np

RIDGE_ALPHAS = np.logspace(-2, 5, 15)
PCR_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)


def _variance_explained(pred: np.ndarray, true: np.ndarray) -> float:
    return 1.0 - ((true - pred) ** 2).sum() / max(((true - true.mean(0)) ** 2).sum(), 1e-12)


class _Svd:
    """Thin SVD of centred training inputs, shared by ridge and PCR."""

    def __init__(self, x_train: np.ndarray, y_train: np.ndarray):
        self.x_mean, self.y_mean = x_train.mean(0), y_train.mean(0)
        self.u, self.s, self.vt = np.linalg.svd(x_train - self.x_mean, full_matrices=False)
        self.uty = self.u.T @ (y_train - self.y_mean)  # [k, targets]

    def coefficients(self, shrink: np.ndarray) -> np.ndarray:
        """Weights [tfs, targets] for per-component factors `shrink` (on 1/s)."""
        return self.vt.T @ (shrink[:, None] * self.uty)

    def predict(self, x: np.ndarray, coef: np.ndarray) -> np.ndarray:
        return (x - self.x_mean) @ coef + self.y_mean


def _choose(svd: _Svd, shrinks: list[np.ndarray], x_valid, y_valid) -> int:
    scores = [_variance_explained(svd.predict(x_valid, svd.coefficients(s)), y_valid) for s in shrinks]
    return int(np.nanargmax(scores))


def ridge_coefficients(x_train, y_train, x_valid, y_valid) -> tuple[np.ndarray, np.ndarray, float]:
    """(weights [tfs, targets], intercept [targets], alpha) of the validation-chosen ridge."""
    x_train, y_train = np.asarray(x_train, np.float64), np.asarray(y_train, np.float64)
    svd = _Svd(x_train, y_train)
    shrinks = [svd.s / (svd.s ** 2 + alpha) for alpha in RIDGE_ALPHAS]
    best = _choose(svd, shrinks, np.asarray(x_valid, np.float64), np.asarray(y_valid, np.float64))
    coef = svd.coefficients(shrinks[best])
    return coef, svd.y_mean - svd.x_mean @ coef, float(RIDGE_ALPHAS[best])


def fit_predict_expression_baselines(x_train, y_train, x_valid, y_valid, x_query) -> dict:
    """{name: (predictions for x_query, chosen hyperparameter)} for mean, ridge and pcr."""
    x_train, y_train = np.asarray(x_train, np.float64), np.asarray(y_train, np.float64)
    x_valid, y_valid = np.asarray(x_valid, np.float64), np.asarray(y_valid, np.float64)
    x_query = np.asarray(x_query, np.float64)
    svd = _Svd(x_train, y_train)
    s = svd.s
    safe = np.where(s > 1e-10 * s.max(), s, np.inf)

    ridge_shrinks = [s / (s ** 2 + alpha) for alpha in RIDGE_ALPHAS]
    best_ridge = _choose(svd, ridge_shrinks, x_valid, y_valid)
    rank = int((s > 1e-10 * s.max()).sum())
    counts = sorted({max(1, round(f * rank)) for f in PCR_FRACTIONS})
    pcr_shrinks = [np.where(np.arange(len(s)) < k, 1.0 / safe, 0.0) for k in counts]
    best_pcr = _choose(svd, pcr_shrinks, x_valid, y_valid)
    return {
        "mean": (np.tile(svd.y_mean, (len(x_query), 1)), None),
        "ridge": (svd.predict(x_query, svd.coefficients(ridge_shrinks[best_ridge])),
                  float(RIDGE_ALPHAS[best_ridge])),
        "pcr": (svd.predict(x_query, svd.coefficients(pcr_shrinks[best_pcr])), int(counts[best_pcr])),
    }
