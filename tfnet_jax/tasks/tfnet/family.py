"""TFNet family: expression data -> split by sample (or group) -> train -> test tables.

Writes, in the run dir: `splits.csv` (sample, group, split), `per_gene_r2.csv` and, with
`predictions.write`, `predictions_test.parquet`. Predicts every target from new TF levels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tfnet_jax.atomic import atomic_write_with
from tfnet_jax.schemas.typed import RunConfig
from tfnet_jax.data.expression.container import ExpressionData
from tfnet_jax.data.expression.readers import tf_levels
from tfnet_jax.data.load import EXPRESSION_SOURCES, load_expression_data
from tfnet_jax.data.splits import split_samples
from tfnet_jax.errors import DataError
from tfnet_jax.eval.regression import expression_metrics
from tfnet_jax.maths import per_gene_r2
from tfnet_jax.tasks.tfnet import prepare as task
from tfnet_jax.data.splits import UNSEEN
from tfnet_jax.tasks.base import Fitted, PredictionChunk
from tfnet_jax.tasks.engine_family import EngineFamily

ROW_GROUP = "targets"  # the `pert_type` column of result tables for this family


class TFNetFamily(EngineFamily):
    name = "tfnet"
    data_sources = EXPRESSION_SOURCES
    split_fields = ("seed", "valid_frac", "test_frac", "min_train", "by")

    # ------------------------------------------------------------ config
    def check_config(self, groups: dict) -> None:
        from tfnet_jax.schemas.checks import check_monitor, fail, number_in, one_of
        from tfnet_jax.models.tfnet import ACTIVATIONS
        model = groups.get("model") or {}
        if not model.get("_target_"):  # a plug-in network's options are its own
            hidden = model.get("hidden")
            if not isinstance(hidden, list) or not all(
                    isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden):
                fail("model.hidden", hidden, "must be a list of positive integers, e.g. [250,250]")
            one_of(model, "model", "activation", sorted(ACTIVATIONS))
            number_in(model, "model", "input_dropout", 0.0, 1.0, high_open=True)
            one_of(model, "model", "skip_init", ("zeros", "ridge"))
        if "train" in groups:
            check_monitor(groups["train"], [f"valid/{m}" for m in task.valid_metric_names()], self.name)

    # ------------------------------------------------------------ data
    def load(self, cfg: RunConfig, data=None) -> ExpressionData:
        if data is None:
            return load_expression_data(cfg.data)
        if not isinstance(data, ExpressionData):
            raise DataError(f"data: expected an ExpressionData for TFNet, got {type(data).__name__}")
        return data

    def split(self, cfg: RunConfig, data: ExpressionData) -> np.ndarray:
        s = cfg.split
        return split_samples(data, seed=s.seed, valid_frac=s.valid_frac, test_frac=s.test_frac,
                             min_train=s.min_train, by=s.by)

    def prepare(self, cfg: RunConfig, data: ExpressionData, split) -> task.PreparedExpression:
        return task.prepare(data, split)

    # ------------------------------------------------------------ model
    def build_network(self, cfg: RunConfig, prepared: task.PreparedExpression):
        return task.build_model(cfg.model, prepared, cfg.seed)

    def network_dims(self, prepared: task.PreparedExpression) -> dict:
        return {"num_inputs": len(prepared.data.tf_genes), "num_outputs": len(prepared.data.target_genes)}

    def loss_fn(self, cfg: RunConfig):
        return task.loss_fn

    def predict_fn(self, model, batch, context, *encoded):
        return task.predict_fn(model, batch, context)

    def validation_metrics(self, trainer, prepared):
        return task.validation_metrics(trainer, prepared)

    # ------------------------------------------------------------ results
    def test_predictions(self, prepared, fitted: Fitted) -> tuple[dict, dict]:
        """Every method's test predictions (data units) and chosen baseline hyperparameters."""
        predictions = {"model": task.predict_split(fitted.predictor, prepared, "test")}
        baselines = task.baseline_predictions(prepared, "test")
        predictions.update({name: pred for name, (pred, _) in baselines.items()})
        oracle = task.oracle_predictions(prepared, "test")
        if oracle is not None:
            predictions["oracle"] = oracle
        return predictions, {name: hyper for name, (_, hyper) in baselines.items()}

    def score(self, cfg: RunConfig, prepared: task.PreparedExpression, fitted: Fitted) -> dict:
        truth = prepared.targets("test")
        predictions, hyper = self.test_predictions(prepared, fitted)
        tables = {name: {ROW_GROUP: expression_metrics(pred, truth)} for name, pred in predictions.items()}
        metrics = {"model": tables.pop("model"), "baselines": {}, "baseline_hyperparameters": hyper}
        if "oracle" in tables:
            metrics["oracle"] = tables.pop("oracle")
        metrics["baselines"] = tables
        metrics["split_sizes"] = {ROW_GROUP: {s: int((prepared.split == s).sum())
                                              for s in ("train", "valid", "test")}}
        metrics["num_tfs"] = len(prepared.data.tf_genes)
        metrics["num_targets"] = len(prepared.data.target_genes)
        fitted.results["test_predictions"] = predictions  # write_outputs reuses them
        return metrics

    def write_outputs(self, cfg: RunConfig, prepared: task.PreparedExpression, fitted: Fitted, metrics,
                      run_dir: Path):
        data = prepared.data
        splits = pd.DataFrame({"sample": data.samples, "split": prepared.split})
        if data.groups is not None:
            splits.insert(1, "group", data.groups)
        atomic_write_with(run_dir / "splits.csv", lambda tmp: splits.to_csv(tmp, index=False))
        predictions = (fitted.results.get("test_predictions")
                       or self.test_predictions(prepared, fitted)[0])
        truth = prepared.targets("test")
        per_gene = pd.DataFrame({"target": data.target_genes, **{
            f"r2_{name}": per_gene_r2(pred, truth) for name, pred in predictions.items()}})
        atomic_write_with(run_dir / "per_gene_r2.csv", lambda tmp: per_gene.to_csv(tmp, index=False))
        if cfg.predictions.write:
            frame = pd.DataFrame(predictions["model"].astype(np.float32),
                                 columns=data.target_genes.tolist())
            frame.insert(0, "sample", data.samples[prepared.split == "test"])
            atomic_write_with(run_dir / "predictions_test.parquet",
                              lambda tmp: frame.to_parquet(tmp, index=False))

    def summary_lines(self, metrics: dict) -> list[str]:
        if "oracle" not in metrics:
            return []
        oracle = metrics["oracle"][ROW_GROUP]
        return [f"oracle (planted truth, no noise): r2_median {oracle['r2_median']:.3f}, "
                f"variance_explained {oracle['variance_explained']:.3f}"]

    # ------------------------------------------------------------ prediction
    def predict(self, cfg: RunConfig, prepared: task.PreparedExpression, fitted: Fitted, inputs=None,
                chunk_size: int = 4096, **_):
        """Targets of new samples from their TF levels (`inputs`: a DataFrame samples x genes,
        an AnnData or a matrix file, in the units of the training data before `data.transform`;
        None: the run's test samples). `split`: a sample named like one of the run's samples
        has its split, any other is unseen."""
        data = prepared.data
        if inputs is None:
            samples = data.samples[prepared.split == "test"]
            levels = data.inputs()[prepared.split == "test"]
        else:
            samples, levels = tf_levels(inputs, data.tf_genes, data.transform, data.genes)
        known = dict(zip(np.asarray(data.samples, dtype=str).tolist(), prepared.split.tolist()))
        split = np.array([known.get(s, UNSEEN) for s in np.asarray(samples, dtype=str).tolist()],
                         dtype=object)
        x = ((levels - prepared.x_mean) / prepared.x_sd).astype(np.float32)
        for start in range(0, len(samples), int(chunk_size)):
            rows = slice(start, start + int(chunk_size))
            pred = prepared.unscale(fitted.predictor.predict({"x": x[rows]}))
            meta = pd.DataFrame({"sample": samples[rows], "split": split[rows]})
            yield PredictionChunk(meta, pred.astype(np.float32), data.target_genes.tolist(),
                                  id_columns=["sample"])
