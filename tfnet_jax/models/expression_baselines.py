"""Reference predictors for TFNet: TF levels -> target levels, fitted on training samples.

`mean` (training mean of each target), `ridge` (linear TF -> target) and `pcr`
(regression on the leading principal components of the TFs). Inputs and outputs are
the standardised matrices of the task; both linear models come from one SVD of the
training inputs (`tfnet_jax.models.linear`), and their hyperparameter (alpha / number of
components) is chosen on the validation samples by variance explained.
"""
from __future__ import annotations

import numpy as np

from tfnet_jax.models.linear import CentredSvd, choose, ridge_fit

RIDGE_ALPHAS = np.logspace(-2, 5, 15)
PCR_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)


def ridge_coefficients(x_train, y_train, x_valid, y_valid) -> tuple[np.ndarray, np.ndarray, float]:
    """(weights [tfs, targets], intercept [targets], alpha) of the validation-chosen ridge."""
    return ridge_fit(x_train, y_train, x_valid, y_valid, RIDGE_ALPHAS)


def fit_predict_expression_baselines(x_train, y_train, x_valid, y_valid, x_query) -> dict:
    """{name: (predictions for x_query, chosen hyperparameter)} for mean, ridge and pcr."""
    svd = CentredSvd(x_train, y_train)
    s = svd.s
    safe = np.where(s > 1e-10 * s.max(), s, np.inf)

    ridge_shrinks = [svd.ridge_shrink(alpha) for alpha in RIDGE_ALPHAS]
    best_ridge = choose(svd, ridge_shrinks, x_valid, y_valid)
    rank = int((s > 1e-10 * s.max()).sum())
    counts = sorted({max(1, round(f * rank)) for f in PCR_FRACTIONS})
    pcr_shrinks = [np.where(np.arange(len(s)) < k, 1.0 / safe, 0.0) for k in counts]
    best_pcr = choose(svd, pcr_shrinks, x_valid, y_valid)
    return {
        "mean": (np.tile(svd.y_mean, (len(x_query), 1)), None),
        "ridge": (svd.predict(x_query, svd.coefficients(ridge_shrinks[best_ridge])),
                  float(RIDGE_ALPHAS[best_ridge])),
        "pcr": (svd.predict(x_query, svd.coefficients(pcr_shrinks[best_pcr])), int(counts[best_pcr])),
    }
