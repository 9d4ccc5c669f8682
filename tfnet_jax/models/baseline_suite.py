"""Every TranscriptionNet baseline, per perturbation type: those of models/baselines.py
(mean, neighbors, cross_type; ridge and linear on the node features) and, where their inputs
exist, those of models/prior_baselines.py (go_ridge, go_forest, embedding_ridge)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from tfnet_jax.data.scaling import standardise_blocks
from tfnet_jax.models.baselines import (
    cross_type_baseline,
    linear_baseline,
    mean_baseline,
    neighbor_baseline,
    ridge_baseline,
)
from tfnet_jax.models.prior_baselines import (
    PRIOR_BASELINES,
    predict_prior_baselines,
    prior_baseline_names,
)

if TYPE_CHECKING:
    from tfnet_jax.data.perturbation.container import PerturbationData


def node_feature_matrix(data: "PerturbationData", train_genes: np.ndarray) -> np.ndarray:
    """The ridge / linear baselines' gene features [N, F']: one table as it is, plus its presence
    column when some gene lacks it; several tables (data.node_feature_files) each standardised
    on the `train_genes` (bool [N]) that have it, plus a missing column per partial table."""
    blocks = data.blocks()
    if len(blocks) > 1:
        return standardise_blocks(data.node_features, blocks, train_genes)
    features = np.asarray(data.node_features, dtype=np.float64)
    if data.has_features is not None:
        # Lets ridge give featureless genes (all-zero rows) their own offset.
        features = np.column_stack([features, np.asarray(data.has_features, dtype=np.float64)])
    return features


BASELINES = ("mean", "neighbors", "cross_type", "ridge", "linear", *PRIOR_BASELINES)


def available_baselines(data: "PerturbationData") -> list[str]:
    """The baselines whose inputs `data` has, in BASELINES order."""
    names = ["mean", "neighbors"] + (["cross_type"] if len(data.signatures) > 1 else [])
    names += ["ridge", "linear"] if data.node_features is not None else []
    return names + prior_baseline_names(data)


def fit_predict_baselines(data: "PerturbationData", splits: dict[str, np.ndarray] | None,
                          query_split: str = "test", names: Sequence[str] | None = None
                          ) -> dict[str, dict[str, np.ndarray]]:
    """Predict the `query_split` rows of every perturbation type with each baseline.

    `splits[type]` labels each signature row "train", "valid" or "test" (None: use
    data.splits). Returns {"mean": {type: pred}, "neighbors": {...}}, "cross_type" when
    there are several types, "ridge" and "linear" when node features exist, then the prior
    baselines whose inputs exist (`prior_baseline_names`); prediction rows follow the query
    rows' table order. `names`: only those of them (e.g. the guarded ones).
    """
    splits = data.splits if splits is None else splits
    if splits is None:
        raise ValueError("no splits given and data.splits is None")
    unknown = sorted(set(names or ()) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; known: {list(BASELINES)}")
    chosen = [n for n in available_baselines(data) if names is None or n in names]
    out: dict[str, dict[str, np.ndarray]] = {name: {} for name in chosen}
    priors = [name for name in chosen if name in PRIOR_BASELINES]
    train_sets = {t: (np.asarray(tab.pert_index)[np.asarray(splits[t]).astype(str) == "train"],
                      np.asarray(tab.values)[np.asarray(splits[t]).astype(str) == "train"])
                  for t, tab in data.signatures.items() if t in splits}
    for pert_type, table in data.signatures.items():
        if pert_type not in splits:
            raise ValueError(f"splits has no entry for perturbation type {pert_type!r}")
        label = np.asarray(splits[pert_type]).astype(str)
        if label.shape != (table.num_perts,):
            raise ValueError(f"splits[{pert_type!r}] has shape {label.shape}, "
                             f"expected ({table.num_perts},)")
        train, valid, query = (label == "train"), (label == "valid"), (label == query_split)
        if not train.any():
            raise ValueError(f"perturbation type {pert_type!r} has no training rows")
        index = np.asarray(table.pert_index, dtype=np.int64)
        values = np.asarray(table.values)
        # Only train / valid values are ever read; query rows contribute indices only.
        y_tr, y_va = values[train], values[valid]

        if "mean" in out:
            out["mean"][pert_type] = mean_baseline(y_tr, int(query.sum()))
        if "neighbors" in out:
            out["neighbors"][pert_type] = neighbor_baseline(
                data.layers, data.num_genes, index[train], y_tr, index[query])
        if "cross_type" in out:
            sources = {t: v for t, v in train_sets.items() if t != pert_type}
            out["cross_type"][pert_type] = cross_type_baseline(y_tr, sources, index[train], index[query])
        if "ridge" in out or "linear" in out:
            train_genes = np.zeros(data.num_genes, dtype=bool)
            train_genes[index[train]] = True
            features = node_feature_matrix(data, train_genes)
            args = (features[index[train]], y_tr, features[index[valid]], y_va, features[index[query]])
            if "ridge" in out:
                out["ridge"][pert_type] = ridge_baseline(*args)
            if "linear" in out:
                out["linear"][pert_type] = linear_baseline(*args)
        predicted = predict_prior_baselines(data, priors, index, train, valid, query, values)
        for name, pred in predicted.items():
            out[name][pert_type] = pred
    return out
