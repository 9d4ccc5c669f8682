"""The out-of-distribution guard (tfnet_jax/models/ood_guard.py) on TranscriptionNet runs.

Per perturbation type, the guard scores genes by their node features as the model reads them
(`PreparedData.features`: standardised on training genes) against that type's TRAINING genes.
Its quantile and shrinkage are chosen on the VALIDATION rows, separately for the model and for
each feature-based baseline (`GUARDED_BASELINES`); the test rows are guarded with the choice.
The model's choice is kept in RUN/guard.json, so tfnet-predict guards unseen genes alike.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tfnet_jax.atomic import atomic_write_json
from tfnet_jax.errors import RunDirError
from tfnet_jax.models.ood_guard import (
    FeatureDistance,
    apply_shrink,
    choose,
    reference_scores,
    shrink_factors,
)
from tfnet_jax.schemas.models import GuardConfig

# The baselines that read the model's node features, the space the guard measures distance in;
# go_ridge, go_forest and embedding_ridge read GO terms or the graph instead, so a distance in
# node-feature space says nothing about how far they extrapolate: they stay unguarded.
GUARDED_BASELINES = ("ridge", "linear")
STATE_FILE = "guard.json"


def _train_index(prepared, pert_type: str) -> np.ndarray:
    table = prepared.data.signatures[pert_type]
    return table.pert_index[prepared.splits[pert_type] == "train"]


def type_distance(prepared, pert_type: str) -> FeatureDistance:
    return FeatureDistance.fit(prepared.features[_train_index(prepared, pert_type)])


def split_scores(prepared, distance: FeatureDistance, pert_type: str, split: str) -> np.ndarray:
    table = prepared.data.signatures[pert_type]
    return distance.score(prepared.features[table.pert_index[prepared.splits[pert_type] == split]])


def guard_split(prepared, options: GuardConfig, valid: dict, test: dict) -> tuple[dict, dict]:
    """Guarded test predictions and the report.

    `valid` / `test`: {method: {type: predictions of that split's rows}}. Returns
    ({method: {type: guarded test predictions}}, {method: {type: choice and counts}}).
    """
    guarded, report = {}, {}
    for t_id, t in enumerate(prepared.types):
        distance = type_distance(prepared, t)
        reference = reference_scores(prepared.features[_train_index(prepared, t)],
                                     options.folds)
        scores = {split: split_scores(prepared, distance, t, split) for split in ("valid", "test")}
        table = prepared.data.signatures[t]
        truth = table.values[prepared.splits[t] == "valid"]
        mean = prepared.target_mean[t_id]
        for method in test:
            if t not in test[method]:
                continue
            valid_pred = valid[method].get(t, np.zeros((0, truth.shape[1])))
            choice = choose(valid_pred, truth, mean, scores["valid"], reference,
                            options.quantiles, options.shrinks)
            factors = choice.factors(scores["test"])
            guarded.setdefault(method, {})[t] = apply_shrink(test[method][t], mean, factors)
            report.setdefault(method, {})[t] = {
                "quantile": choice.quantile, "threshold": choice.threshold, "shrink": choice.shrink,
                # flagged: scored above the threshold (shrunk by `shrink`, when it is above 0)
                "valid_flagged": int((scores["valid"] > choice.threshold).sum()),
                "valid_n": int(len(scores["valid"])),
                "test_flagged": int((scores["test"] > choice.threshold).sum()),
                "test_n": int(len(factors)),
                "test_mean_shrink": float(np.mean(1 - factors)) if len(factors) else 0.0,
                "valid_mse": choice.valid_mse, "valid_mse_unguarded": choice.unguarded_valid_mse}
    return guarded, report


def model_state(report: dict) -> dict:
    """What tfnet-predict needs to guard the model: per type its threshold and shrinkage."""
    return {t: {k: r[k] for k in ("quantile", "threshold", "shrink")}
            for t, r in report.get("model", {}).items()}


def save_state(run_dir: Path, state: dict) -> None:
    atomic_write_json(Path(run_dir) / STATE_FILE, {"types": state})


def load_state(run_dir: Path) -> dict | None:
    path = Path(run_dir) / STATE_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())["types"]
    except (ValueError, KeyError, TypeError):
        raise RunDirError(f"{path}: unreadable guard state; delete it to predict unguarded") from None


def guard_query(prepared, state: dict, distances: dict, gene_index, pert_type: str, pred):
    """Model predictions for genes `gene_index` of `pert_type`, guarded with `state`
    (the type's training genes are never shrunk). `distances` caches each type's fit."""
    choice = state.get(pert_type)
    if choice is None or prepared.features is None:
        return pred
    if pert_type not in distances:
        distances[pert_type] = type_distance(prepared, pert_type)
    gene_index = np.asarray(gene_index)
    factors = shrink_factors(distances[pert_type].score(prepared.features[gene_index]),
                             choice["threshold"], choice["shrink"])
    factors[np.isin(gene_index, _train_index(prepared, pert_type))] = 1.0
    mean = prepared.target_mean[prepared.types.index(pert_type)]
    return apply_shrink(pred, mean, factors)


def summary_lines(guard: dict) -> list[str]:
    """One log line per guarded method: per type the choice and the flagged test genes."""
    lines = []
    for method, per_type in guard.get("choices", {}).items():
        parts = [f"{t} q={r['quantile']:g} s={r['shrink']:g} flagged valid {r['valid_flagged']}/"
                 f"{r['valid_n']}, test {r['test_flagged']}/{r['test_n']} (mean shrink "
                 f"{r['test_mean_shrink']:.2f})" for t, r in per_type.items()]
        lines.append(f"guard ({method}): " + "; ".join(parts))
    return lines
