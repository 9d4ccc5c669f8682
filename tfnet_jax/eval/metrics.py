"""Signature-prediction metrics and result tables (numpy / pandas only).

All metrics compare predicted and observed signatures row by row (one row per
perturbed gene). `pearson_delta` and retrieval work on signatures centred on the
TRAINING mean, so that merely reproducing the average response earns nothing.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from tfnet_jax.eval.regression import GENES_SCORED_KEY
# row_pearson lives in eval.stats (the one Pearson); kept importable from here too.
from tfnet_jax.eval.stats import row_pearson, unit_rows  # noqa: F401

METRIC_NAMES = ("pearson", "pearson_delta", "mse", "retrieval_top1", "retrieval_top10")
# Per-gene regression metrics (tfnet_jax.eval.regression), shown after the signature ones.
REGRESSION_NAMES = ("r2_median", "r2_mean", "frac_r2_above_0.5", "variance_explained",
                    "r2_grand_mean_paper")
HIGHER_IS_BETTER = {
    "pearson": True,
    "pearson_delta": True,
    "mse": False,
    "retrieval_top1": True,
    "retrieval_top10": True,
    # per-gene regression metrics (tfnet_jax.eval.regression)
    "r2_median": True,
    "r2_mean": True,
    "frac_r2_above_0.5": True,
    "variance_explained": True,
    "r2_grand_mean_paper": True,
}
# `signature_metrics` also returns this row count; it is reported, never ranked.
COUNT_KEY = "n"
COUNT_KEYS = (COUNT_KEY, GENES_SCORED_KEY)

# Pearson scores within this distance of s_ii count as ties in retrieval: the same
# correlation computed through different BLAS paths can differ in the last bits.
_TIE_TOL = 1e-10
# |pred - train_mean| below this (relative) counts as exactly the training mean.
_MEAN_TOL = 1e-5
# Rows of pred scored per block in retrieval, so memory stays O(block * n).
_RETRIEVAL_BLOCK = 1024


def _as_2d(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [n, R], got shape {arr.shape}")
    return arr


def _check_pair(a, b, names=("pred", "true")) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_2d(a, names[0]), _as_2d(b, names[1])
    if a.shape != b.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, got {a.shape} and {b.shape}")
    return a, b


def retrieval_hits(pred, true, k: int) -> np.ndarray:
    """Per row i, the chance that true_i ranks within the top k of Pearson(pred_i, true_j).

    Ties are broken uniformly at random in expectation: with g = #{j != i: s_ij > s_ii}
    and t = #{j != i: s_ij == s_ii}, the value is clip((k - g) / (t + 1), 0, 1). A constant
    predictor thus scores exactly k / n and a perfect one 1.
    """
    pred, true = _check_pair(pred, true)
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    n = pred.shape[0]
    zp, zt = unit_rows(pred), unit_rows(true)
    hits = np.empty(n, dtype=np.float64)
    for start in range(0, n, _RETRIEVAL_BLOCK):
        rows = np.arange(start, min(start + _RETRIEVAL_BLOCK, n))
        scores = zp[rows] @ zt.T  # [block, n]
        own = np.sum(zp[rows] * zt[rows], axis=1)[:, None]
        # The diagonal is taken from the same formula as row_pearson, and excluded
        # from the counts below, so s_ii never competes with itself.
        scores[np.arange(rows.size), rows] = np.nan
        greater = np.sum(scores > own + _TIE_TOL, axis=1)
        ties = np.sum(np.abs(scores - own) <= _TIE_TOL, axis=1)
        hits[rows] = np.clip((k - greater) / (ties + 1.0), 0.0, 1.0)
    return hits


def signature_metrics(pred, true, train_mean) -> dict[str, float]:
    """Every metric of METRIC_NAMES for one perturbation type, plus the row count `n`.

    `train_mean` [R] is the mean training signature; `pearson_delta` and retrieval use
    pred - train_mean vs true - train_mean. With no rows, metrics are NaN and n = 0.
    """
    pred, true = _check_pair(pred, true)
    mean = np.asarray(train_mean, dtype=np.float64).reshape(-1)
    if mean.shape[0] != pred.shape[1]:
        raise ValueError(
            f"train_mean must have one value per readout ({pred.shape[1]}), got shape "
            f"{np.shape(train_mean)}")
    n = pred.shape[0]
    if n == 0:
        return {**{name: float("nan") for name in METRIC_NAMES}, COUNT_KEY: 0.0}
    pred_delta, true_delta = pred - mean, true - mean
    # A prediction equal to the training mean up to float rounding (float32 vs float64
    # means) carries no signal: its rounding noise must not be scored as a direction.
    scale = max(1.0, float(np.abs(mean).max(initial=0.0)))
    pred_delta[np.abs(pred_delta).max(axis=1) <= _MEAN_TOL * scale] = 0.0
    return {
        "pearson": float(np.mean(row_pearson(pred, true))),
        "pearson_delta": float(np.mean(row_pearson(pred_delta, true_delta))),
        "mse": float(np.mean((pred - true) ** 2)),
        "retrieval_top1": float(np.mean(retrieval_hits(pred_delta, true_delta, 1))),
        "retrieval_top10": float(np.mean(retrieval_hits(pred_delta, true_delta, 10))),
        COUNT_KEY: float(n),
    }


def results_table(metrics: dict) -> pd.DataFrame:
    """Tidy long frame (method, pert_type, metric, value) from a nested results dict.

    Input: {"model": {TYPE: {METRIC: v}}, "baselines": {NAME: {TYPE: {METRIC: v}}}};
    either key may be missing. The model's rows get method "model".
    """
    unknown = set(metrics) - {"model", "baselines"}
    if unknown:
        raise ValueError(f"results dict: unexpected key(s) {sorted(unknown)}; "
                         "expected 'model' and/or 'baselines'")
    methods = {}
    if "model" in metrics:
        methods["model"] = metrics["model"]
    methods.update(metrics.get("baselines", {}))
    records = [
        (method, pert_type, metric, float(value))
        for method, by_type in methods.items()
        for pert_type, by_metric in by_type.items()
        for metric, value in by_metric.items()
    ]
    return pd.DataFrame.from_records(records, columns=["method", "pert_type", "metric", "value"])


def _best_mask(wide: pd.DataFrame) -> pd.DataFrame:
    """True where a value is the best of its pert_type for that metric (ties all marked)."""
    mask = pd.DataFrame(False, index=wide.index, columns=wide.columns)
    for metric in wide.columns:
        if metric not in HIGHER_IS_BETTER:
            continue
        column = wide[metric]
        grouped = column.groupby(level="pert_type", sort=False)
        best = grouped.transform("max" if HIGHER_IS_BETTER[metric] else "min")
        mask[metric] = np.isclose(column.to_numpy(float), best.to_numpy(float), rtol=0, atol=1e-12)
    return mask


def format_results_table(metrics: dict) -> str:
    """Wide text table: rows pert_type x method, columns metrics, best per type marked *."""
    long = results_table(metrics)
    if long.empty:
        return "(no results)"
    # Keep first-seen order for types and methods (model first), known metrics first.
    types = list(dict.fromkeys(long["pert_type"]))
    methods = list(dict.fromkeys(long["method"]))
    seen = list(dict.fromkeys(long["metric"]))
    known = METRIC_NAMES + REGRESSION_NAMES
    columns = [m for m in known if m in seen] + [m for m in seen if m not in known]
    wide = (long.groupby(["pert_type", "method", "metric"], sort=False)["value"]
            .first().unstack("metric"))
    order = pd.MultiIndex.from_tuples(
        [(t, m) for t in types for m in methods if (t, m) in wide.index],
        names=["pert_type", "method"])
    wide = wide.reindex(index=order, columns=columns)
    best = _best_mask(wide)

    def cell(value: float, metric: str, is_best: bool) -> str:
        if np.isnan(value):
            return "-"
        if metric in COUNT_KEYS:
            return f"{value:.0f}"
        return f"{value:.3f}" + ("*" if is_best else " ")

    text = pd.DataFrame(
        {metric: [cell(v, metric, b) for v, b in zip(wide[metric], best[metric])]
         for metric in columns},
        index=wide.index).reset_index()
    legend = "* best per row group (mse: lowest; others: highest)"
    return text.to_string(index=False) + "\n" + legend
