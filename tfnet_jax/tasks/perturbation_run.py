"""TranscriptionNet family run: perturbation data -> split by gene -> train -> test tables.

Writes, in the run dir: `splits.csv`, `metrics.json` (model, baselines, oracle),
`predictions_test.parquet` and `truth_test.parquet`.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from tfnet_jax.atomic import atomic_write_json, atomic_write_with
from tfnet_jax.data.dataset import DataError
from tfnet_jax.data.load import load_perturbation_data
from tfnet_jax.data.splits import assign_splits
from tfnet_jax.eval.metrics import format_results_table
from tfnet_jax.tasks import perturbation as task
from tfnet_jax.train.engine import Trainer, TrainConfig

log = logging.getLogger(__name__)


def write_splits(path: Path, data, splits: dict[str, np.ndarray]) -> None:
    frame = pd.concat([pd.DataFrame({"pert_type": t, "pert_gene": data.signatures[t].pert_genes,
                                     "split": splits[t]}) for t in data.pert_types])
    atomic_write_with(path, lambda tmp: frame.to_csv(tmp, index=False))


def _write_test_table(path: Path, prepared: task.PreparedData, values) -> None:
    """One row per test gene of each type: `pert_type, pert_gene`, one column per readout."""
    frames = []
    for t in prepared.types:
        table = prepared.data.signatures[t]
        chosen = prepared.splits[t] == "test"
        frame = pd.DataFrame(values(t, table, chosen), columns=prepared.data.readout_genes.tolist())
        frame.insert(0, "pert_gene", table.pert_genes[chosen])
        frame.insert(0, "pert_type", t)
        frames.append(frame)
    result = pd.concat(frames, ignore_index=True)
    atomic_write_with(path, lambda tmp: result.to_parquet(tmp, index=False))


def write_test_predictions(run_dir: Path, trainer: Trainer, prepared: task.PreparedData) -> None:
    """`predictions_test.parquet` and, row for row, the observed `truth_test.parquet`."""
    _write_test_table(run_dir / "predictions_test.parquet", prepared, lambda t, table, chosen:
                      prepared.unscale(trainer.predict(prepared.query(table.pert_index[chosen], t)), t))
    _write_test_table(run_dir / "truth_test.parquet", prepared,
                      lambda t, table, chosen: table.values[chosen])


def resolve_ablation(ablation: str, names: list[str]) -> list[str]:
    """`network.ablation` -> layer names: `all`, `only_<i>` or `drop_<i>` (i: index in `names`).

    Indices, not names, so one ablation experiment runs on any data's layers.
    """
    match = re.fullmatch(r"(only|drop)_(\d+)", str(ablation))
    if ablation == "all":
        return list(names)
    if match is None:
        raise DataError(f"network.ablation={ablation!r}: expected all, only_<i> or drop_<i>")
    i = int(match.group(2))
    if i >= len(names):
        raise DataError(f"network.ablation={ablation}: layer index {i} out of range; the data has "
                        f"{len(names)} layer(s) {names} (indices 0-{len(names) - 1})")
    if match.group(1) == "only":
        return [names[i]]
    if len(names) == 1:
        raise DataError(f"network.ablation={ablation}: dropping the only layer {names} leaves none")
    return names[:i] + names[i + 1:]


def load_prepared(cfg: DictConfig) -> task.PreparedData:
    """Data -> chosen layers/types -> split by perturbed gene -> fitted scalers."""
    data = load_perturbation_data(OmegaConf.to_container(cfg.data, resolve=True))
    layers = cfg.network.layers
    data = data.select_layers(None if layers is None else list(layers))
    ablation = cfg.network.get("ablation", "all")
    if ablation != "all":
        data = data.select_layers(resolve_ablation(ablation, [layer.name for layer in data.layers]))
    splits = assign_splits(data, seed=cfg.split.seed, valid_frac=cfg.split.valid_frac,
                           test_frac=cfg.split.test_frac, min_train=cfg.split.min_train)
    return task.prepare(data, splits)


def build_trainer(cfg: DictConfig, prepared: task.PreparedData, run_dir: Path | None) -> Trainer:
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model = task.build_model(model_cfg, prepared, seed=cfg.seed)
    train_cfg = TrainConfig.from_dict(OmegaConf.to_container(cfg.train, resolve=True))
    return Trainer(model, train_cfg, loss_fn=task.make_loss_fn(model_cfg["beta"]),
                   predict_fn=task.predict_fn, context=prepared.context, run_dir=run_dir)


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Train (or resume), then score the model and every baseline on the test genes."""
    prepared = load_prepared(cfg)
    write_splits(run_dir / "splits.csv", prepared.data, prepared.splits)
    counts = {t: {s: int((prepared.splits[t] == s).sum()) for s in ("train", "valid", "test")}
              for t in prepared.types}
    log.info("data %s: %d genes, layers %s, split sizes %s", prepared.data.source,
             prepared.data.num_genes, [layer.name for layer in prepared.data.layers], counts)

    trainer = build_trainer(cfg, prepared, run_dir)
    meta = trainer.fit(prepared.rows("train"), lambda tr: task.validation_metrics(tr, prepared))

    metrics = {"model": task.evaluate_split(trainer, prepared, "test"),
               "baselines": task.baseline_metrics(prepared, "test")}
    oracle = task.oracle_metrics(prepared, "test")
    extras = {"fusion_weights": task.fusion_weights(trainer.model, prepared),
              "train": {k: meta[k] for k in ("step", "best_step", "best_score")},
              "split_sizes": counts, "layers": [layer.name for layer in prepared.data.layers]}
    if oracle is not None:
        extras["oracle"] = oracle
    if cfg.predictions.write:
        write_test_predictions(run_dir, trainer, prepared)
    # Last: metrics.json marks the run done (a re-run sweep skips it), so it follows the rest.
    atomic_write_json(run_dir / "metrics.json", {**metrics, **extras})

    print(f"\nTest-set results ({run_dir}):")
    print(format_results_table(metrics))
    if oracle is not None:
        ceiling = ", ".join(f"{t} {m['pearson_delta']:.3f}" for t, m in oracle.items())
        print(f"oracle (planted truth, no noise) pearson_delta: {ceiling}")
    weights = ", ".join(f"{k} {v:.2f}" for k, v in extras["fusion_weights"].items())
    print(f"fusion attention per layer: {weights}")
    return {**metrics, **extras}
