"""Statistics over seeds for experiment tables: mean with a t interval, paired tests.

Input is the tidy results table of `tfnet_jax.experiments.collect` (columns `arm`, `seed`,
`pert_type`, `method`, `metric`, `value`). Seeds are the unit of replication: each seed is
one split of the perturbed genes and one initialisation, shared by every arm, so arms are
compared PAIRED by seed.
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


def paired_test(a, b) -> dict:
    """Paired comparison of a vs b (same seeds, same order): mean difference and p-values.

    Paired t-test for n >= 2 pairs; Wilcoxon signed-rank (two-sided) for n >= WILCOXON_MIN_PAIRS
    with some nonzero difference. Undefined tests give NaN.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = a - b
    out = {"n": int(diff.size), "diff": float(diff.mean()) if diff.size else np.nan,
           "t_p": np.nan, "wilcoxon_p": np.nan}
    if diff.size >= 2:
        # Identical arms: no evidence of a difference (scipy would give NaN from 0/0).
        out["t_p"] = 1.0 if np.all(diff == 0) else float(stats.ttest_rel(a, b).pvalue)
    if diff.size >= WILCOXON_MIN_PAIRS and np.any(diff != 0):
        out["wilcoxon_p"] = float(stats.wilcoxon(a, b).pvalue)
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
