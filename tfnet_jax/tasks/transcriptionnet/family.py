"""TranscriptionNet family: perturbation data -> split by perturbed gene -> train -> test tables.

Writes, in the run dir: `splits.csv`, `predictions_test.parquet` and `truth_test.parquet`
(with `predictions.write`); predicts genes x perturbation types for any gene of the graph.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
from jax.sharding import PartitionSpec as P

from tfnet_jax.atomic import atomic_write_with
from tfnet_jax.data.genes import GeneTable, gene_indices
from tfnet_jax.data.load import DATA_SOURCES, load_perturbation_data, pert_types_of
from tfnet_jax.data.perturbation.cmap import PERT_TYPE_CODES
from tfnet_jax.data.perturbation.container import GENE_TABLE, PerturbationData
from tfnet_jax.data.splits import assign_splits, split_counts
from tfnet_jax.errors import ConfigError, DataError
from tfnet_jax.eval.metrics import CEILING_KEY
from tfnet_jax.models.baseline_suite import fit_predict_baselines
from tfnet_jax.models.transcriptionnet import TranscriptionNetContext
from tfnet_jax.tasks.transcriptionnet import guard
from tfnet_jax.tasks.transcriptionnet import prepare as task
from tfnet_jax.data.splits import UNSEEN
from tfnet_jax.tasks.base import Fitted, PredictionChunk
from tfnet_jax.schemas.typed import RunConfig
from tfnet_jax.tasks.engine_family import EngineFamily
from tfnet_jax.train.engine import DATA_AXIS, make_data_mesh


def resolve_ablation(ablation: str, names: list[str]) -> list[str]:
    """`network.ablation` -> layer names: `all`, `only_<i>` or `drop_<i>` (i: index in `names`).

    Indices, not names, so one ablation experiment runs on any data's layers.
    """
    match = re.fullmatch(r"(only|drop)_(\d+)", str(ablation))
    if ablation == "all":
        return list(names)
    if match is None:
        raise ConfigError(f"config: network.ablation={ablation!r}: expected all, only_<i> or drop_<i>")
    i = int(match.group(2))
    if i >= len(names):
        raise DataError(f"network.ablation={ablation}: layer index {i} out of range; the data has "
                        f"{len(names)} layer(s) {names} (indices 0-{len(names) - 1})")
    if match.group(1) == "only":
        return [names[i]]
    if len(names) == 1:
        raise DataError(f"network.ablation={ablation}: dropping the only layer {names} leaves none")
    return names[:i] + names[i + 1:]


def gene_splits(prepared: task.PreparedData, pert_type: str) -> np.ndarray:
    """Every graph gene's role for `pert_type` in the run's split (train / valid / test), or
    unseen where the data has no signature of it in that type."""
    data = prepared.data
    split = np.full(data.num_genes, UNSEEN, dtype=object)
    split[data.signatures[pert_type].pert_index] = prepared.splits[pert_type]
    return split


def per_type_monitor(monitor: str, types: list[str] | None) -> bool:
    """valid/<TYPE>/<metric>: a signature metric of one perturbation type of the run."""
    from tfnet_jax.eval.metrics import METRIC_NAMES
    parts = monitor.split("/")
    return (len(parts) == 3 and parts[0] == "valid" and parts[2] in METRIC_NAMES
            and (types is None or parts[1] in types))


def find_gene_table(data: PerturbationData, explicit: str | None) -> GeneTable | None:
    """The gene table for symbols: `gene_table=PATH`, else the data's own (ROOT/gene_meta*.csv[.gz]
    of a data dir)."""
    path = explicit or data.extras.get(GENE_TABLE)
    return GeneTable.from_file(path) if path else None


def check_guard(options: dict | None) -> None:
    """model.guard: quantiles in [0, 1], shrinkages in [0, 1) (a positive factor keeps each
    prediction's direction), folds >= 2. A run dir written before the guard has none."""
    from tfnet_jax.schemas.checks import fail, positive_int
    if options is None:
        return
    if not isinstance(options.get("enabled"), bool):
        fail("model.guard.enabled", options.get("enabled"), "must be true or false")
    positive_int(options, "model.guard", "folds", minimum=2)
    for key, high_open in (("quantiles", False), ("shrinks", True)):
        values = options.get(key)
        if not isinstance(values, (list, tuple)) or not values:
            fail(f"model.guard.{key}", values, "must be a non-empty list of numbers")
        for i, value in enumerate(values):
            if (not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0
                    or value > 1 or (high_open and value == 1)):
                fail(f"model.guard.{key}[{i}]", value,
                     f"must lie in [0, 1{')' if high_open else ']'}")


NODE_INPUTS = ("auto", "features", "embedding", "both")
FUSIONS = ("attention", "mean")
SKIP_INITS = ("zeros", "ridge")
ENCODERS = ("gat", "sign")


class TranscriptionNetFamily(EngineFamily):
    name = "transcriptionnet"
    data_sources = DATA_SOURCES
    split_fields = ("seed", "valid_frac", "test_frac", "min_train", "scenario", "mode")

    # ------------------------------------------------------------ config
    def check_config(self, groups: dict) -> None:
        from tfnet_jax.schemas.checks import check_monitor, number_in, one_of, positive_int
        model = groups.get("model") or {}
        if not model.get("_target_"):  # a plug-in network's options are its own
            positive_int(model, "model", "hidden", "heads", "fusion_dim", "head_hidden", "head_blocks")
            positive_int(model, "model", "gat_layers", minimum=0)
            one_of(model, "model", "node_input", NODE_INPUTS)
            one_of(model, "model", "fusion", FUSIONS)
            one_of(model, "model", "skip_init", SKIP_INITS)
            # A run dir written before model.encoder existed has neither key: GAT, as it ran.
            if "encoder" in model:
                one_of(model, "model", "encoder", ENCODERS)
            if "hops" in model:
                positive_int(model, "model", "hops")
            if model.get("encoder") == "sign":
                from tfnet_jax.schemas.checks import fail
                if model.get("node_input") == "embedding":
                    fail("model.encoder", "sign", "it propagates node features, and "
                         "model.node_input=embedding uses none (use auto, features or both)")
                if (groups.get("data") or {}).get("node_features") is False:
                    fail("model.encoder", "sign", "it propagates node features, and "
                         "data.node_features=false drops them")
            refine = model.get("refine") or {}
            positive_int(refine, "model.refine", "dim", "heads", "blocks", "inducing", "recycles")
        number_in(model, "model", "beta", 0.0, 1.0)
        check_guard(model.get("guard"))
        if "train" in groups:
            # valid/<TYPE>/<metric> too, for the run's types (any type name for a data dir).
            types = pert_types_of(groups.get("data") or {})
            check_monitor(groups["train"], [f"valid/{m}" for m in task.MEAN_VALID_METRICS], self.name,
                          f"valid/<{'|'.join(types) if types else 'TYPE'}>/<metric>",
                          lambda m: per_type_monitor(m, types))

    # ------------------------------------------------------------ data
    def load(self, cfg: RunConfig, data=None) -> PerturbationData:
        if data is None:
            data = load_perturbation_data(cfg.data)
        elif not isinstance(data, PerturbationData):
            raise DataError(f"data: expected a PerturbationData for TranscriptionNet, got "
                            f"{type(data).__name__}")
        layers = cfg.network.layers
        data = data.select_layers(None if layers is None else list(layers))
        ablation = cfg.network.ablation
        if ablation != "all":
            data = data.select_layers(resolve_ablation(ablation, [layer.name for layer in data.layers]))
        return data

    def split(self, cfg: RunConfig, data: PerturbationData) -> dict[str, np.ndarray]:
        s = cfg.split
        return assign_splits(data, seed=s.seed, valid_frac=s.valid_frac, test_frac=s.test_frac,
                             min_train=s.min_train, scenario=s.scenario, mode=s.mode)

    def prepare(self, cfg: RunConfig, data: PerturbationData, split) -> task.PreparedData:
        sign = not cfg.model._target_ and cfg.model.encoder == "sign"
        # One receiver shard per device of the run's mesh (the trainer's: made once, cached).
        shards = make_data_mesh(cfg.train.num_devices).devices.size
        return task.prepare(data, split, hops=cfg.model.hops if sign else None, num_shards=shards)

    # ------------------------------------------------------------ model
    def build_network(self, cfg: RunConfig, prepared: task.PreparedData):
        return task.build_model(cfg.model, prepared, seed=cfg.seed)

    def network_dims(self, prepared: task.PreparedData) -> dict:
        features = prepared.features
        return {"num_nodes": prepared.data.num_genes + 1, "num_layers": len(prepared.graphs),
                "num_types": len(prepared.types), "num_readouts": len(prepared.data.readout_genes),
                "feature_dim": None if features is None else features.shape[1]}

    def loss_fn(self, cfg: RunConfig):
        return task.make_loss_fn(cfg.model.beta)

    def predict_fn(self, model, batch, context, *encoded):
        return task.predict_fn(model, batch, context, *encoded)

    def encode_fn(self, model):
        # The multiplex graph encoder dominates: run it once per parameter state, not per batch
        # (a plug-in network without `embed`/`decode` is called whole).
        return task.encode_fn if hasattr(model, "embed") and hasattr(model, "decode") else None

    def context_specs(self, prepared: task.PreparedData):
        # The context's structure with a PartitionSpec per field: each device holds its receiver
        # shard of every graph (see tfnet_jax.graph.attention), the rest is replicated.
        specs = {f.name: P() for f in dataclasses.fields(TranscriptionNetContext)}
        return TranscriptionNetContext(**{**specs, "graphs": P(DATA_AXIS)})

    def validation_metrics(self, trainer, prepared):
        return task.validation_metrics(trainer, prepared)

    # ------------------------------------------------------------ results
    def restore(self, cfg: RunConfig, prepared, run_dir: Path, which: str = "best") -> Fitted:
        fitted = super().restore(cfg, prepared, run_dir, which)
        state = guard.load_state(run_dir)
        if state is not None:
            fitted.results["guard"] = state
        return fitted

    def score(self, cfg: RunConfig, prepared: task.PreparedData, fitted: Fitted) -> dict:
        model_test = task.predict_split(fitted.predictor, prepared, "test")
        baselines = fit_predict_baselines(prepared.data, prepared.splits, query_split="test")
        options = cfg.model.guard
        report = None
        if options.enabled and prepared.features is not None:
            guarded_names = [name for name in guard.GUARDED_BASELINES if name in baselines]
            valid_baselines = fit_predict_baselines(prepared.data, prepared.splits, query_split="valid",
                                                    names=guarded_names)
            test = {"model": model_test, **{name: baselines[name] for name in guarded_names}}
            valid = {"model": task.predict_split(fitted.predictor, prepared, "valid"),
                     **{name: valid_baselines[name] for name in guarded_names}}
            guarded, choices = guard.guard_split(prepared, options, valid, test)
            report = {"applied_to": list(test), "choices": choices,
                      "unguarded": {name: task.score_predictions(prepared, test[name], "test")
                                    for name in test}}
            model_test = guarded.pop("model")
            baselines.update(guarded)
            fitted.results["guard"] = guard.model_state(choices)
        metrics = {"model": task.score_predictions(prepared, model_test, "test"),
                   "baselines": {name: task.score_predictions(prepared, per_type, "test")
                                 for name, per_type in baselines.items()}}
        if report is not None:
            metrics["guard"] = report
        oracle = task.oracle_metrics(prepared, "test")
        if oracle is not None:
            metrics["oracle"] = oracle
        ceiling = task.replicate_ceiling_metrics(prepared, "test")
        if ceiling is not None:
            metrics[CEILING_KEY] = ceiling
        model = fitted.predictor.model
        if hasattr(model, "embed"):  # the built-in network's fusion attention per layer
            metrics["fusion_weights"] = task.fusion_weights(model, prepared)
        metrics["split_sizes"] = split_counts(prepared.splits)
        metrics["layers"] = [layer.name for layer in prepared.data.layers]
        return metrics

    def write_outputs(self, cfg: RunConfig, prepared: task.PreparedData, fitted: Fitted, metrics, run_dir: Path):
        data = prepared.data
        frame = pd.concat([pd.DataFrame({"pert_type": t, "pert_gene": data.signatures[t].pert_genes,
                                         "split": prepared.splits[t]}) for t in data.pert_types])
        atomic_write_with(run_dir / "splits.csv", lambda tmp: frame.to_csv(tmp, index=False))
        state = fitted.results.get("guard")
        if state is not None:
            guard.save_state(run_dir, state)
        if not cfg.predictions.write:
            return
        distances = {}
        trainer = fitted.predictor
        readouts = data.readout_genes.tolist()
        predicted, observed = [], []
        for t in prepared.types:
            table = data.signatures[t]
            chosen = prepared.splits[t] == "test"
            meta = pd.DataFrame({"pert_type": t, "pert_gene": table.pert_genes[chosen]})
            pred = prepared.unscale(trainer.predict(prepared.query(table.pert_index[chosen], t)), t)
            if state is not None:
                pred = guard.guard_query(prepared, state, distances, table.pert_index[chosen], t, pred)
            predicted.append(pd.concat([meta, pd.DataFrame(pred, columns=readouts)], axis=1))
            observed.append(pd.concat([meta, pd.DataFrame(table.values[chosen], columns=readouts)], axis=1))
        for name, frames in (("predictions_test", predicted), ("truth_test", observed)):
            result = pd.concat(frames, ignore_index=True)
            atomic_write_with(run_dir / f"{name}.parquet",
                              lambda tmp, result=result: result.to_parquet(tmp, index=False))

    def summary_lines(self, metrics: dict) -> list[str]:
        lines = guard.summary_lines(metrics.get("guard") or {})
        if "oracle" in metrics:
            ceiling = ", ".join(f"{t} {m['pearson_delta']:.3f}" for t, m in metrics["oracle"].items())
            lines.append(f"oracle (planted truth, no noise) pearson_delta: {ceiling}")
        if metrics.get("fusion_weights"):
            weights = ", ".join(f"{k} {v:.2f}" for k, v in metrics["fusion_weights"].items())
            lines.append(f"fusion attention per layer: {weights}")
        return lines

    # ------------------------------------------------------------ prediction
    def predict(self, cfg: RunConfig, prepared: task.PreparedData, fitted: Fitted, inputs=None,
                pert_types=None, chunk_size: int = 1024, gene_table=None, **_):
        """Signatures of `inputs` (gene IDs, or a file of them; None: every gene of the graph)
        for each of `pert_types` (None: the run's types), in chunks of `chunk_size` genes, with
        gene symbols where a gene table is known (`gene_table=`, or ROOT/gene_meta*.csv*) and
        each (gene, type)'s split (`gene_splits`). GCTX metadata uses CMap's pert_type codes
        and pert_iname (the symbol, else the gene ID)."""
        if int(chunk_size) <= 0:
            raise ConfigError(f"config: chunk_size={chunk_size}: must be a positive integer")
        types = list(pert_types) if pert_types is not None else prepared.types
        unknown = [t for t in types if t not in prepared.types]
        if unknown:
            raise DataError(f"pert_types: unknown type(s) {unknown}; the run has {prepared.types}")
        data = prepared.data
        index = (np.arange(data.num_genes, dtype=np.int32) if inputs is None
                 else gene_indices(inputs, data.gene_position()))
        splits = {t: gene_splits(prepared, t) for t in types}
        readouts = data.readout_genes.tolist()
        table = find_gene_table(data, gene_table)
        symbol = dict(zip(data.genes.tolist(), table.to_symbols(data.genes)[0])) if table else {}
        readout_symbols = [symbol.get(g) for g in readouts] if table else None
        state, distances = fitted.results.get("guard"), {}
        for t in types:
            for start in range(0, len(index), int(chunk_size)):
                chunk = index[start:start + int(chunk_size)]
                pred = prepared.unscale(fitted.predictor.predict(prepared.query(chunk, t)), t)
                if state is not None:  # the run's guard, fitted on its validation genes
                    pred = guard.guard_query(prepared, state, distances, chunk, t, pred)
                genes = data.genes[chunk]
                symbols = [symbol.get(g) for g in genes.tolist()]
                meta = pd.DataFrame({"pert_type": t, "pert_gene": genes, "pert_symbol": symbols,
                                     "split": splits[t][chunk]})
                cmap = pd.DataFrame({"pert_type": PERT_TYPE_CODES.get(t, t), "pert_gene": genes,
                                     "pert_iname": [s or g for s, g in zip(symbols, genes.tolist())],
                                     "split": meta["split"]})
                yield PredictionChunk(meta, pred.astype(np.float32), readouts, readout_symbols,
                                      id_columns=["pert_type", "pert_gene"], gctx_meta=cmap)

