"""Core TFs by backward elimination: how few TFs keep most of the explained variance?

Each round scores the TFs still in play (mean |light-up| over targets, or mean |gradient|
at the training samples), switches off the least important `drop_fraction` of them (the
model's input mask: an off TF sits at its training mean) and retrains, warm-started from
the previous round's weights, through the shared engine. Held-out variance explained is
recorded against the number of TFs; the smallest sets keeping 80% and 95% of the full
model's are chosen on VALIDATION samples and reported on test samples.
"""
from __future__ import annotations

import logging
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from flax import nnx

from tfnet_jax.analysis import lightup as lu
from tfnet_jax.eval.regression import expression_metrics

log = logging.getLogger(__name__)
IMPORTANCE = ("lightup", "gradient")


def gradient_importance(model: nnx.Module, x: np.ndarray) -> np.ndarray:
    """Per TF: mean over samples and targets of |d target / d TF| (standardised units)."""
    forward, state = lu.pure_forward(model)

    @jax.jit
    def per_sample(state, x):
        f = lambda v: forward(state, v[None])[0]  # noqa: E731
        return jnp.abs(jax.vmap(jax.jacrev(f))(x)).mean(axis=(0, 1))

    chunks = [np.asarray(per_sample(state, jnp.asarray(x[i:i + 64]))) * len(x[i:i + 64])
              for i in range(0, len(x), 64)]
    return np.sum(chunks, axis=0) / len(x)


def tf_importance(model: nnx.Module, prepared, method: str) -> np.ndarray:
    """Importance of every TF (inactive TFs score 0 through the mask)."""
    if method == "lightup":
        deltas = lu.perturbation_sizes(prepared.x_sd, "sd", k=1.0)
        return lu.importance(lu.lightup_matrix(model, deltas, prepared.y_sd), prepared.y_sd)
    if method == "gradient":
        return gradient_importance(model, prepared.inputs("train")[:512])
    raise ValueError(f"importance={method!r}; expected one of {IMPORTANCE}")


def backward_elimination(trainer, prepared, retrain: Callable, *, importance: str = "lightup",
                         drop_fraction: float = 0.2, min_tfs: int = 5) -> pd.DataFrame:
    """One row per round: n_tfs, valid/test variance explained and R^2 median, the TFs kept.

    `trainer` holds the trained full model; `retrain(model) -> trainer` fine-tunes a model
    (whose input mask was just narrowed) and returns the trainer holding its best weights.
    """
    if not 0 < drop_fraction < 1:
        raise ValueError(f"drop_fraction={drop_fraction} must be in (0, 1)")
    tf_genes = np.asarray(prepared.data.tf_genes)
    active = np.ones(len(tf_genes), bool)
    rows = []
    while True:
        rows.append(_score_round(trainer, prepared, tf_genes, active))
        log.info("core TFs: %d TFs, valid variance explained %.3f", active.sum(),
                 rows[-1]["valid_variance_explained"])
        if active.sum() <= min_tfs:
            break
        scores = tf_importance(trainer.model, prepared, importance)
        ranked = np.flatnonzero(active)[np.argsort(scores[active], kind="stable")]
        n_drop = min(max(1, int(round(drop_fraction * active.sum()))), int(active.sum()) - min_tfs)
        active[ranked[:n_drop]] = False
        model = trainer.model
        model.input_mask[...] = jnp.asarray(active, jnp.float32)
        trainer = retrain(model)
    return pd.DataFrame(rows)


def _score_round(trainer, prepared, tf_genes, active) -> dict:
    row = {"n_tfs": int(active.sum())}
    for split in ("valid", "test"):
        pred = prepared.unscale(trainer.predict({"x": prepared.inputs(split)}))
        metrics = expression_metrics(pred, prepared.targets(split))
        row[f"{split}_variance_explained"] = metrics["variance_explained"]
        row[f"{split}_r2_median"] = metrics["r2_median"]
    row["tfs"] = ",".join(tf_genes[active].tolist())
    return row


def smallest_sets(table: pd.DataFrame, keep=(0.8, 0.95)) -> dict:
    """For each share in `keep`: the smallest set whose VALIDATION variance explained keeps
    that share of the full model's, with its test figures."""
    full = table.iloc[0]
    out = {}
    for share in keep:
        ok = table[table["valid_variance_explained"] >= share * full["valid_variance_explained"]]
        best = ok.loc[ok["n_tfs"].idxmin()]
        out[f"{int(round(share * 100))}%"] = {
            "n_tfs": int(best["n_tfs"]),
            "valid_share_of_full": float(best["valid_variance_explained"] / full["valid_variance_explained"]),
            "test_share_of_full": float(best["test_variance_explained"] / full["test_variance_explained"]),
            "tfs": best["tfs"].split(",")}
    return out
