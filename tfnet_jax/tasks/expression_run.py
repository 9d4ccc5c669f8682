"""TFNet family run: expression data -> split by sample (or group) -> train -> test tables.

Writes, in the run dir: `splits.csv` (sample, group, split), `metrics.json` (model,
baselines and, on synthetic data, the oracle; one row group `targets`), `per_gene_r2.csv`
and, when `predictions.write`, `predictions_test.parquet`. `load_run(run_dir)` rebuilds a
finished run (data, split, scalers, best checkpoint) for the analyses.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from tfnet_jax.atomic import atomic_write_json, atomic_write_with
from tfnet_jax.data.dataset import DataError
from tfnet_jax.data.expression import ExpressionData, load_expression
from tfnet_jax.data.grn_synthetic import GRNConfig, make_grn
from tfnet_jax.eval.metrics import format_results_table
from tfnet_jax.eval.regression import expression_metrics, per_gene_r2
from tfnet_jax.tasks import expression as task
from tfnet_jax.train.engine import Trainer, TrainConfig

log = logging.getLogger(__name__)
ROW_GROUP = "targets"  # the `pert_type` column of result tables for this family
EXPRESSION_SOURCES = ("grn", "expression")


def load_expression_data(data_cfg: dict) -> ExpressionData:
    name = data_cfg.get("name")
    rest = {k: v for k, v in data_cfg.items() if k != "name"}
    if name == "grn":
        return make_grn(GRNConfig.from_dict(rest))
    if name == "expression":
        for key in ("path", "tf_list"):
            if rest.get(key) in (None, "???"):
                raise DataError(f"data.{key}: required for data=expression "
                                f"(data.path=MATRIX data.tf_list=TF_FILE)")
        return load_expression(rest)
    raise DataError(f"data.name={name!r}: model=tfnet reads data=grn (synthetic) or "
                    f"data=expression; choose one of {EXPRESSION_SOURCES}")


def load_prepared(cfg: DictConfig) -> task.PreparedExpression:
    data = load_expression_data(OmegaConf.to_container(cfg.data, resolve=True))
    split = task.split_samples(data, seed=cfg.split.seed, valid_frac=cfg.split.valid_frac,
                               test_frac=cfg.split.test_frac, min_train=cfg.split.min_train,
                               by=cfg.split.get("by", "sample"))
    return task.prepare(data, split)


def build_trainer(cfg: DictConfig, prepared: task.PreparedExpression, run_dir: Path | None,
                  model=None, **train_overrides) -> Trainer:
    """A trainer for `model` (default: a fresh TFNet from the config)."""
    if model is None:
        model = task.build_model(OmegaConf.to_container(cfg.model, resolve=True), prepared, cfg.seed)
    train_cfg = TrainConfig.from_dict({**OmegaConf.to_container(cfg.train, resolve=True),
                                       **train_overrides})
    return Trainer(model, train_cfg, loss_fn=task.loss_fn, predict_fn=task.predict_fn,
                   context=prepared.context, run_dir=run_dir)


def load_run(run_dir: str | Path, which: str = "best"):
    """(config, prepared data, trainer with restored weights) of a finished TFNet run."""
    run_dir = Path(run_dir)
    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.exists():
        raise DataError(f"run_dir={run_dir}: no training config at {config_file}")
    cfg = OmegaConf.load(config_file)
    if cfg.model.name != "tfnet":
        raise DataError(f"run_dir={run_dir}: a {cfg.model.name} run; this analysis needs model=tfnet")
    prepared = load_prepared(cfg)
    trainer = build_trainer(cfg, prepared, run_dir=None, progress=False)
    trainer.restore(run_dir / "checkpoints", which=which)
    return cfg, prepared, trainer


def score_test(trainer: Trainer, prepared: task.PreparedExpression) -> tuple[dict, dict[str, np.ndarray]]:
    """metrics.json's method tables and every method's test predictions (data units)."""
    truth = prepared.targets("test")
    predictions = {"model": task.predict_split(trainer, prepared, "test")}
    baselines = task.baseline_predictions(prepared, "test")
    predictions.update({name: pred for name, (pred, _) in baselines.items()})
    metrics = {"model": {ROW_GROUP: expression_metrics(predictions["model"], truth)},
               "baselines": {name: {ROW_GROUP: expression_metrics(pred, truth)}
                             for name, (pred, _) in baselines.items()},
               "baseline_hyperparameters": {name: hyper for name, (_, hyper) in baselines.items()}}
    oracle = task.oracle_predictions(prepared, "test")
    if oracle is not None:
        predictions["oracle"] = oracle
        metrics["oracle"] = {ROW_GROUP: expression_metrics(oracle, truth)}
    return metrics, predictions


def _write_tables(run_dir: Path, cfg: DictConfig, prepared: task.PreparedExpression,
                  predictions: dict[str, np.ndarray]) -> None:
    data = prepared.data
    splits = pd.DataFrame({"sample": data.samples, "split": prepared.split})
    if data.groups is not None:
        splits.insert(1, "group", data.groups)
    atomic_write_with(run_dir / "splits.csv", lambda tmp: splits.to_csv(tmp, index=False))
    truth = prepared.targets("test")
    per_gene = pd.DataFrame({"target": data.target_genes,
                             **{f"r2_{name}": per_gene_r2(pred, truth) for name, pred in predictions.items()}})
    atomic_write_with(run_dir / "per_gene_r2.csv", lambda tmp: per_gene.to_csv(tmp, index=False))
    if cfg.predictions.write:
        frame = pd.DataFrame(predictions["model"].astype(np.float32), columns=data.target_genes.tolist())
        frame.insert(0, "sample", data.samples[prepared.split == "test"])
        atomic_write_with(run_dir / "predictions_test.parquet", lambda tmp: frame.to_parquet(tmp, index=False))


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Train (or resume) TFNet, then score it and the baselines on the test samples."""
    prepared = load_prepared(cfg)
    counts = {s: int((prepared.split == s).sum()) for s in ("train", "valid", "test")}
    log.info("data %s: %d samples, %d TFs -> %d targets, split %s", prepared.data.source,
             prepared.data.num_samples, len(prepared.data.tf_genes), len(prepared.data.target_genes),
             counts)
    trainer = build_trainer(cfg, prepared, run_dir)
    meta = trainer.fit(prepared.rows("train"), lambda tr: task.validation_metrics(tr, prepared))
    metrics, predictions = score_test(trainer, prepared)
    extras = {"train": {k: meta[k] for k in ("step", "best_step", "best_score")},
              "split_sizes": {ROW_GROUP: counts},
              "num_tfs": len(prepared.data.tf_genes), "num_targets": len(prepared.data.target_genes)}
    _write_tables(run_dir, cfg, prepared, predictions)
    atomic_write_json(run_dir / "metrics.json", {**metrics, **extras})  # last: marks the run done

    table = {k: metrics[k] for k in ("model", "baselines")}
    print(f"\nTest-set results ({run_dir}), {counts['test']} held-out samples:")
    print(format_results_table(table))
    if "oracle" in metrics:
        oracle = metrics["oracle"][ROW_GROUP]
        print(f"oracle (planted truth, no noise): r2_median {oracle['r2_median']:.3f}, "
              f"variance_explained {oracle['variance_explained']:.3f}")
    return {**metrics, **extras}
