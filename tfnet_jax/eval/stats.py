"""The package's statistics: paired tests, t intervals, multiple-testing adjustment
(row-wise Pearson r and its test are in `tfnet_jax.maths`, shared with the models).

`paired_test` is THE paired comparison (per seed in experiment tables, per gene in GenoNet's): mean difference
and its t interval, fractions better / tied / worse (within an optional tolerance), paired t and
Wilcoxon signed-rank p-values. `bh_adjust` is the
Benjamini-Hochberg step-up adjustment of a family of p-values; `with_bh` adds it beside
each p-value column of a table.

Experiment tables are the tidy results of `tfnet_jax.experiments.collect` (columns `arm`,
`seed`, `pert_type`, `method`, `metric`, `value`). Seeds are the unit of replication: each
seed is one split of the perturbed genes and one initialisation, shared by every arm, so
arms are compared PAIRED by seed.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

# Below this many pairs the exact two-sided Wilcoxon signed-rank p-value cannot go under
# 0.05 (n=5 gives at least 2/32 = 0.0625), so it is reported as NaN rather than as noise.
WILCOXON_MIN_PAIRS = 6
KEYS = ["pert_type", "method", "metric"]


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and its `level` confidence interval from the t distribution (NaN bounds if n < 2)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return np.nan, np.nan, np.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, np.nan, np.nan
    half = stats.t.ppf(0.5 + level / 2, df=x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return mean, mean - half, mean + half


def summarise(table: pd.DataFrame, by=("arm",), level: float = 0.95) -> pd.DataFrame:
    """One row per `by` x type x method x metric: n seeds, mean, ci_low, ci_high."""
    rows = []
    for key, group in table.groupby(list(by) + KEYS, sort=False):
        mean, low, high = mean_ci(group["value"], level)
        rows.append((*key, int(group["value"].notna().sum()), mean, low, high))
    return pd.DataFrame(rows, columns=list(by) + KEYS + ["n", "mean", "ci_low", "ci_high"])


def paired_test(a, b, wilcoxon_min_pairs: int = WILCOXON_MIN_PAIRS, tolerance: float = 0.0,
                level: float = 0.95) -> dict:
    """Paired comparison of a vs b (same units, same order); pairs with a NaN are dropped.

    n pairs, diff = mean(a - b) with its `level` t interval (diff_ci_low, diff_ci_high:
    `mean_ci` of the differences); frac_better / frac_tied / frac_worse = share of pairs with
    a - b > tolerance, |a - b| <= tolerance, a - b < -tolerance; paired t-test for n >= 2;
    Wilcoxon signed-rank (two-sided) for n >= wilcoxon_min_pairs with some nonzero difference.
    Undefined values are NaN.
    """
    a, b = np.asarray(a, dtype=float).reshape(-1), np.asarray(b, dtype=float).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired test: a has {a.size} values but b {b.size}")
    if not tolerance >= 0:
        raise ValueError(f"paired test: tolerance must be >= 0, not {tolerance}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    diff = a - b
    share = (lambda hit: float(np.mean(hit))) if diff.size else (lambda hit: np.nan)
    _, low, high = mean_ci(diff, level)
    out = {"n": int(diff.size), "diff": float(diff.mean()) if diff.size else np.nan,
           "diff_ci_low": low, "diff_ci_high": high,
           "frac_better": share(diff > tolerance), "frac_tied": share(np.abs(diff) <= tolerance),
           "frac_worse": share(diff < -tolerance), "t_p": np.nan, "wilcoxon_p": np.nan}
    if diff.size >= 2:
        # Identical arms: no evidence of a difference (scipy would give NaN from 0/0).
        out["t_p"] = 1.0 if np.all(diff == 0) else float(stats.ttest_rel(a, b).pvalue)
    if diff.size >= max(wilcoxon_min_pairs, 1) and np.any(diff != 0):
        out["wilcoxon_p"] = float(stats.wilcoxon(a, b).pvalue)
    return out


def bh_adjust(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (step-up, monotone), same order as the input.

    The family is every finite p-value given (m of them); NaN stays NaN and is not counted.
    With p_(1) <= ... <= p_(m): q_(i) = min(1, min_{k >= i} p_(k) m / k).
    """
    p = np.asarray(p_values, dtype=float).reshape(-1)
    finite = np.isfinite(p)
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    q = np.full(p.shape, np.nan)
    m = int(finite.sum())
    if m:
        order = np.argsort(p[finite], kind="stable")
        scaled = p[finite][order] * m / np.arange(1, m + 1)
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
        q[finite] = adjusted
    return q


BH_SUFFIX = "_bh"


def with_bh(table: pd.DataFrame, columns=("t_p", "wilcoxon_p")) -> pd.DataFrame:
    """`table` with COLUMN + BH_SUFFIX (Benjamini-Hochberg over all of that column's tests in
    the table) right after each raw p-value COLUMN present."""
    out = table.copy()
    for column in columns:
        if column in out:
            out.insert(out.columns.get_loc(column) + 1, column + BH_SUFFIX, bh_adjust(out[column]))
    return out


def paired_against(table: pd.DataFrame, factor: str, reference: str,
                   within=("arm",)) -> pd.DataFrame:
    """Each level of `factor` vs `reference`, paired by seed, per type x method x metric.

    E.g. factor="arm" compares ablation arms (for the model); factor="method", within=("arm",)
    compares every baseline with the model inside each arm.
    """
    group_keys = [k for k in list(within) + KEYS if k != factor]
    rows = []
    for key, group in table.groupby(group_keys, sort=False):
        wide = group.pivot_table(index="seed", columns=factor, values="value", aggfunc="mean")
        if reference not in wide:
            continue
        for level in dict.fromkeys(group[factor]):  # table order, not pivot's sorted order
            if level == reference or level not in wide:
                continue
            pair = wide[[level, reference]].dropna()
            result = paired_test(pair[level], pair[reference])
            rows.append({**dict(zip(group_keys, key)), factor: level, "reference": reference,
                         **result})
    columns = group_keys + [factor, "reference", "n", "diff", "t_p", "wilcoxon_p"]
    return pd.DataFrame(rows, columns=columns)
