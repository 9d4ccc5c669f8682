"""Signature-prediction metrics and result tables (numpy / pandas only).

All metrics compare predicted and observed signatures row by row (one row per
perturbed gene). `pearson_delta`, its top-20-DE variant, retrieval and `rank_score` work on
signatures centred on the TRAINING mean, so that merely reproducing the average response
earns nothing. Formulas: README, "Signature metrics".
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from tfnet_jax.eval.regression import GENES_SCORED_KEY
# row_pearson lives in eval.stats (the one Pearson); kept importable from here too.
from tfnet_jax.maths import row_pearson, unit_rows  # noqa: F401

METRIC_NAMES = ("pearson", "pearson_delta", "mse", "retrieval_top1", "retrieval_top10",
                "pearson_delta_top20de", "rank_score", "mse_de_weighted")
# Per-gene regression metrics (tfnet_jax.eval.regression), shown after the signature ones.
REGRESSION_NAMES = ("r2_median", "r2_mean", "frac_r2_above_0.5", "variance_explained",
                    "r2_grand_mean_paper")
HIGHER_IS_BETTER = {
    "pearson": True,
    "pearson_delta": True,
    "mse": False,
    "retrieval_top1": True,
    "retrieval_top10": True,
    "pearson_delta_top20de": True,
    "rank_score": True,
    "mse_de_weighted": False,
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
# metrics.json key (and table method) of the split-half replicate agreement: a reference
# ceiling shown beside the methods, never ranked against them.
CEILING_KEY = "replicate_ceiling"
# Readouts with the largest |observed - training mean| that `pearson_delta_top20de` scores.
TOP_DE = 20

# Pearson scores within this distance of s_ii count as ties in retrieval: the same
# correlation computed through different BLAS paths can differ in the last bits.
_TIE_TOL = 1e-10
# |pred - train_mean| below this (relative) counts as exactly the training mean.
_MEAN_TOL = 1e-5
# Rows of pred scored per block in retrieval and rank_score, so memory stays O(block * n).
_RETRIEVAL_BLOCK = 1024
# A unit-variance row whose variance left after dropping one readout is below this counts
# as constant there (Pearson 0): the subtraction 1 - k a^2 leaves rounding noise otherwise.
_DROP_VAR_TOL = 1e-12


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


def top_de_pearson(pred_delta, true_delta, k: int = TOP_DE) -> np.ndarray:
    """Per row, Pearson r of pred_delta vs true_delta over the k readouts with the largest
    |true_delta| (all readouts when there are at most k; equal |true_delta| in readout order)."""
    pred_delta, true_delta = _check_pair(pred_delta, true_delta)
    top = np.argsort(-np.abs(true_delta), axis=1, kind="stable")[:, :k]
    return row_pearson(np.take_along_axis(pred_delta, top, axis=1),
                       np.take_along_axis(true_delta, top, axis=1))


def de_weights(true_delta) -> np.ndarray:
    """Per row, w_j = |true_delta_j| / sum_k |true_delta_k|; uniform 1/R where all are 0."""
    size = np.abs(_as_2d(true_delta, "true_delta"))
    total = size.sum(axis=1, keepdims=True)
    uniform = np.full_like(size, 1.0 / max(size.shape[1], 1))
    return np.divide(size, total, out=uniform, where=total > 0)


def de_weighted_error(pred, true, train_mean) -> np.ndarray:
    """Per row, sum_j w_j (pred_j - true_j)^2 with w = de_weights(true - train_mean)."""
    pred, true = _check_pair(pred, true)
    weights = de_weights(true - np.asarray(train_mean, np.float64))
    return np.sum(weights * (pred - true) ** 2, axis=1)


def _own_columns(own_col, n: int, num_readouts: int) -> np.ndarray:
    if own_col is None:
        return np.full(n, -1, dtype=np.int64)
    own = np.asarray(own_col).reshape(-1)
    if own.shape[0] != n or not np.issubdtype(own.dtype, np.integer):
        raise ValueError(f"own_col must hold one integer per row ({n}), got {own.dtype} "
                         f"shape {np.shape(own_col)}")
    if own.size and (own.min() < -1 or own.max() >= num_readouts):
        raise ValueError(f"own_col values must be -1 (not a readout) or a readout column "
                         f"0..{num_readouts - 1}, got {own.min()}..{own.max()}")
    return own.astype(np.int64)


def rank_scores(pred, true, own_col=None) -> np.ndarray:
    """Per row i, 1 - r_i / (N - 1): r_i = #{j != i: d(pred_i, true_j) < d(pred_i, true_i)}
    plus half the ties, d = 1 - Pearson r (N = 1: NaN). 1 = perfect, 0.5 = chance.

    `own_col[i]` (-1: none) is row i's perturbed gene's readout column; it is left out of
    pred_i and of every true_j that pred_i is compared with, so the knocked-down gene's
    own large change cannot carry the ranking. Pearson without column c follows exactly
    from the unit rows (centred on all R, norm 1): with a = zp_ic, b = zt_jc, k = R/(R-1),
    r' = (zp_i . zt_j - k a b) / sqrt((1 - k a^2)(1 - k b^2)); nothing is copied per row.
    """
    pred, true = _check_pair(pred, true)
    n, num_readouts = pred.shape
    own = _own_columns(own_col, n, num_readouts)
    if n < 2:
        return np.full(n, np.nan)
    zp, zt = unit_rows(pred), unit_rows(true)
    has = own >= 0
    col = np.where(has, own, 0)
    k = num_readouts / max(num_readouts - 1, 1)
    a = np.where(has, zp[np.arange(n), col], 0.0)
    var_p = 1.0 - k * a ** 2

    def dropped_r(dot, a_, b_, var_p_):
        var_t = 1.0 - k * b_ ** 2
        ok = (var_p_ > _DROP_VAR_TOL) & (var_t > _DROP_VAR_TOL)
        denom = np.sqrt(np.where(ok, var_p_ * var_t, 1.0))
        return np.where(ok, (dot - k * a_ * b_) / denom, 0.0)

    scores = np.empty(n, dtype=np.float64)
    for start in range(0, n, _RETRIEVAL_BLOCK):
        rows = np.arange(start, min(start + _RETRIEVAL_BLOCK, n))
        b = np.where(has[rows, None], zt[:, col[rows]].T, 0.0)  # [block, n]: zt_j at c_i
        r = dropped_r(zp[rows] @ zt.T, a[rows, None], b, var_p[rows, None])
        # Own score by the elementwise formula (as retrieval_hits), the diagonal excluded.
        own_r = dropped_r(np.sum(zp[rows] * zt[rows], axis=1), a[rows],
                          b[np.arange(rows.size), rows], var_p[rows])[:, None]
        r[np.arange(rows.size), rows] = np.nan
        closer = np.sum(r > own_r + _TIE_TOL, axis=1)
        ties = np.sum(np.abs(r - own_r) <= _TIE_TOL, axis=1)
        scores[rows] = 1.0 - (closer + 0.5 * ties) / (n - 1)
    return scores


def signature_metrics(pred, true, train_mean, own_col=None) -> dict[str, float]:
    """Every metric of METRIC_NAMES for one perturbation type, plus the row count `n`.

    `train_mean` [R] is the mean training signature; `pearson_delta`, its top-20-DE variant,
    retrieval and `rank_score` use pred - train_mean vs true - train_mean. `own_col` [n]:
    each row's perturbed gene's readout column (-1: not a readout), left out by `rank_score`
    only (None: no row's). With no rows, metrics are NaN and n = 0.
    """
    pred, true = _check_pair(pred, true)
    mean = np.asarray(train_mean, dtype=np.float64).reshape(-1)
    if mean.shape[0] != pred.shape[1]:
        raise ValueError(
            f"train_mean must have one value per readout ({pred.shape[1]}), got shape "
            f"{np.shape(train_mean)}")
    own = _own_columns(own_col, pred.shape[0], pred.shape[1])
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
        "pearson_delta_top20de": float(np.mean(top_de_pearson(pred_delta, true_delta))),
        "rank_score": float(np.mean(rank_scores(pred_delta, true_delta, own))),
        "mse_de_weighted": float(np.mean(de_weighted_error(pred, true, mean))),
        COUNT_KEY: float(n),
    }


def results_table(metrics: dict) -> pd.DataFrame:
    """Tidy long frame (method, pert_type, metric, value) from a nested results dict.

    Input: {"model": {TYPE: {METRIC: v}}, "baselines": {NAME: {TYPE: {METRIC: v}}},
    CEILING_KEY: {TYPE: {METRIC: v}}}; any key may be missing. The model's rows get method
    "model", the ceiling's method CEILING_KEY.
    """
    unknown = set(metrics) - {"model", "baselines", CEILING_KEY}
    if unknown:
        raise ValueError(f"results dict: unexpected key(s) {sorted(unknown)}; "
                         f"expected 'model', 'baselines' and/or '{CEILING_KEY}'")
    methods = {}
    if "model" in metrics:
        methods["model"] = metrics["model"]
    methods.update(metrics.get("baselines", {}))
    if CEILING_KEY in metrics:
        methods[CEILING_KEY] = metrics[CEILING_KEY]
    records = [
        (method, pert_type, metric, float(value))
        for method, by_type in methods.items()
        for pert_type, by_metric in by_type.items()
        for metric, value in by_metric.items()
    ]
    return pd.DataFrame.from_records(records, columns=["method", "pert_type", "metric", "value"])


def _best_mask(wide: pd.DataFrame) -> pd.DataFrame:
    """True where a value is the best of its pert_type for that metric (ties all marked);
    the replicate ceiling is a reference, never ranked."""
    mask = pd.DataFrame(False, index=wide.index, columns=wide.columns)
    ranked = wide.index.get_level_values("method") != CEILING_KEY
    for metric in wide.columns:
        if metric not in HIGHER_IS_BETTER:
            continue
        column = wide[metric].where(ranked)
        grouped = column.groupby(level="pert_type", sort=False)
        best = grouped.transform("max" if HIGHER_IS_BETTER[metric] else "min")
        mask[metric] = ranked & np.isclose(column.to_numpy(float), best.to_numpy(float),
                                           rtol=0, atol=1e-12)
    return mask


# Printed tables wider than this are split into blocks of metric columns.
TABLE_WIDTH = 100


def _column_blocks(text: pd.DataFrame, keys: list[str], width: int) -> list[list[str]]:
    """Metric columns of `text` in greedy blocks that, after the `keys` columns, fit `width`."""
    def wide(column):
        return max(len(str(column)), int(text[column].astype(str).str.len().max())) + 2
    room = width - sum(wide(k) for k in keys)
    blocks, used = [[]], 0
    for column in (c for c in text.columns if c not in keys):
        if blocks[-1] and used + wide(column) > room:
            blocks.append([])
            used = 0
        blocks[-1].append(column)
        used += wide(column)
    return blocks


def format_results_table(metrics: dict, width: int = TABLE_WIDTH) -> str:
    """Wide text table: rows pert_type x method, columns metrics, best per type marked *;
    split into several tables of the same rows when wider than `width` characters."""
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
    keys = ["pert_type", "method"]
    tables = [text[keys + block].to_string(index=False)
              for block in _column_blocks(text, keys, width)]
    lowest = [m for m in columns if HIGHER_IS_BETTER.get(m) is False]
    legend = f"* best per row group ({', '.join(lowest) or 'mse'}: lowest; others: highest)"
    if CEILING_KEY in methods:
        legend += f"; {CEILING_KEY}: split-half replicate agreement, a reference (not ranked)"
    return "\n\n".join(tables) + "\n" + legend
