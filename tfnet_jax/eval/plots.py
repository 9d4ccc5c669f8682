"""Matplotlib figures for experiment reports, written as PNG files (no display needed).

Figures are `matplotlib.figure.Figure` objects, not pyplot ones, so neither importing this
module nor plotting changes the user's matplotlib backend.

Every function takes plain tables and a path, writes one PNG atomically and returns the path.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tfnet_jax.atomic import atomic_write_with


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    return Path(path)


def bars_with_ci(summary: pd.DataFrame, factor: str, path: Path, title: str,
                 metric: str = "pearson_delta") -> Path:
    """Grouped bars: one group per perturbation type, one bar per `factor` level, 95% CI."""
    frame = summary[summary["metric"] == metric]
    levels = list(dict.fromkeys(frame[factor]))
    types = list(dict.fromkeys(frame["pert_type"]))
    width = 0.8 / max(len(levels), 1)
    fig = Figure(figsize=(min(12, 3 + 0.3 * len(types) * len(levels)), 3.6))
    ax = fig.subplots()
    for i, level in enumerate(levels):
        rows = frame[frame[factor] == level].set_index("pert_type").reindex(types)
        mean = rows["mean"].to_numpy(float)
        err = np.vstack([mean - rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float) - mean])
        ax.bar(np.arange(len(types)) + (i - (len(levels) - 1) / 2) * width, mean, width,
               yerr=np.nan_to_num(err), capsize=2, label=str(level))
    ax.set_xticks(np.arange(len(types)), types)
    ax.set_ylabel(f"test {metric} (mean, 95% CI)")
    ax.set_title(title)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    return _save(fig, path)


def predicted_vs_true(pred: pd.DataFrame, truth: pd.DataFrame, path: Path, n: int = 4) -> Path:
    """Scatter of predicted vs observed readouts for the first `n` test perturbations."""
    keys = ["pert_type", "pert_gene"]
    merged = pred.merge(truth, on=keys, suffixes=("", "@true"))
    readouts = [c for c in pred.columns if c not in keys]
    rows = merged.head(n)
    fig = Figure(figsize=(3 * len(rows), 3))
    axes = fig.subplots(1, len(rows), squeeze=False)
    for ax, (_, row) in zip(axes[0], rows.iterrows()):
        x = row[[f"{c}@true" for c in readouts]].to_numpy(float)
        y = row[readouts].to_numpy(float)
        ax.scatter(x, y, s=5, alpha=0.6)
        lim = [min(x.min(), y.min()), max(x.max(), y.max())]
        ax.plot(lim, lim, color="grey", lw=0.8)
        ax.set_title(f"{row['pert_type']} {row['pert_gene']} (r={np.corrcoef(x, y)[0, 1]:.2f})",
                     fontsize=8)
        ax.set_xlabel("observed")
    axes[0, 0].set_ylabel("predicted")
    return _save(fig, path)


def learning_curves(curves: dict[str, pd.DataFrame], path: Path,
                    metric: str = "valid/pearson_delta") -> Path:
    """Training loss and a validation metric against step, one line per run label."""
    fig = Figure(figsize=(9, 3.4))
    left, right = fig.subplots(1, 2)
    for label, log in curves.items():
        for ax, column in ((left, "train/loss"), (right, metric)):
            if column in log:
                rows = log.dropna(subset=[column])
                ax.plot(rows["step"], rows[column], label=label, lw=1)
    left.set_ylabel("train/loss")
    right.set_ylabel(metric)
    for ax in (left, right):
        ax.set_xlabel("step")
    right.legend(fontsize=7, frameon=False)
    return _save(fig, path)


def fusion_weights(weights: pd.DataFrame, path: Path) -> Path:
    """Mean fusion attention per layer and arm (columns `arm`, `layer`, `weight`)."""
    table = weights.pivot_table(index="arm", columns="layer", values="weight", aggfunc="mean",
                                sort=False)
    fig = Figure(figsize=(max(5, 0.8 * len(table) + 2), 3.4))
    ax = fig.subplots()
    width = 0.8 / max(table.shape[1], 1)
    for i, layer in enumerate(table.columns):  # not DataFrame.plot: it goes through pyplot
        ax.bar(np.arange(len(table)) + (i - (table.shape[1] - 1) / 2) * width,
               table[layer].to_numpy(float), width, label=str(layer))
    ax.set_xticks(np.arange(len(table)), table.index, rotation=30)
    ax.set_ylabel("mean fusion attention")
    ax.legend(fontsize=7, frameon=False)
    return _save(fig, path)


def core_tf_curve(table: pd.DataFrame, path: Path) -> Path:
    """Held-out variance explained against the number of TFs kept (backward elimination)."""
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.subplots()
    for split, style in (("valid", "o-"), ("test", "s--")):
        ax.plot(table["n_tfs"], table[f"{split}_variance_explained"], style, label=split, ms=4)
    full = table["valid_variance_explained"].iloc[0]
    for share in (0.8, 0.95):
        ax.axhline(share * full, color="grey", lw=0.8, ls=":")
        ax.text(table["n_tfs"].max(), share * full, f"{share:.0%} of full", va="bottom", ha="right",
                fontsize=8, color="grey")
    ax.set_xscale("log")
    ax.set_xlabel("TFs kept")
    ax.set_ylabel("held-out variance explained")
    ax.legend()
    return _save(fig, path)
