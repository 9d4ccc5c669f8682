"""Per-gene regression metrics for TFNet and GenoNet: R^2 with each gene's own mean.

`per_gene_r2` divides each gene's SSE by its own sum of squares around its own mean.
The TFNet paper's code divided by squares around ONE grand mean over all genes, which
credits a model for merely knowing that genes differ in level; `r2_grand_mean_paper`
reports that variant so the two can be compared, labelled as such.

One constant-gene convention everywhere: a gene constant on the evaluated rows has no
variance to explain, so its R^2 is undefined (NaN, never 0); every summary ignores NaN
genes and reports how many were scored (`n_genes`).
"""
from __future__ import annotations

import numpy as np

from tfnet_jax.maths import paired_arrays, per_gene_r2

# Count of genes with a defined R^2; reported beside the summaries, never ranked.
GENES_SCORED_KEY = "n_genes"


def r2_summary(r2) -> dict[str, float]:
    """Mean, median and share above 0.5 of the scored (finite) genes, and how many there are."""
    r2 = np.asarray(r2, np.float64)
    finite = r2[np.isfinite(r2)]
    if not finite.size:
        return {"r2_median": float("nan"), "r2_mean": float("nan"),
                "frac_r2_above_0.5": float("nan"), GENES_SCORED_KEY: 0.0}
    return {"r2_median": float(np.median(finite)), "r2_mean": float(finite.mean()),
            "frac_r2_above_0.5": float((finite > 0.5).mean()), GENES_SCORED_KEY: float(finite.size)}


def expression_metrics(pred, true) -> dict[str, float]:
    """Summary of held-out fit over genes (samples x genes arrays, original units)."""
    pred, true = paired_arrays(pred, true)
    sse = ((true - pred) ** 2).sum()
    sst_own = ((true - true.mean(axis=0)) ** 2).sum()
    sst_grand = ((true - true.mean()) ** 2).sum()
    return {
        **r2_summary(per_gene_r2(pred, true)),
        "variance_explained": float(1.0 - sse / sst_own) if sst_own > 0 else float("nan"),
        "r2_grand_mean_paper": float(1.0 - sse / sst_grand) if sst_grand > 0 else float("nan"),
        "mse": float(((true - pred) ** 2).mean()),
        "n": float(true.shape[0]),
    }
