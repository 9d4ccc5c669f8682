"""THE orchestration: every model family is a set of hooks; the run order exists once, here.

    load -> split -> prepare (scalers fitted on training rows only) -> fit (train or resume)
    -> score (model, baselines and oracle in one metrics schema) -> write outputs -> metrics.json

A family is found by name in `FAMILIES` or by import path (`model.family=mypkg.mod:MyFamily`),
so a family defined outside the package plugs in without editing this file. Nothing here
branches on a family's name.
"""
from __future__ import annotations

import importlib
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from tfnet_jax.atomic import atomic_write_json
from tfnet_jax.errors import ConfigError
from tfnet_jax.eval.metrics import CEILING_KEY, format_results_table
from tfnet_jax.schemas.typed import RunConfig, typed_config

log = logging.getLogger(__name__)

FAMILIES = {"transcriptionnet": "tfnet_jax.tasks.transcriptionnet.family:TranscriptionNetFamily",
            "tfnet": "tfnet_jax.tasks.tfnet.family:TFNetFamily",
            "genonet": "tfnet_jax.tasks.genonet.family:GenoNetFamily"}
# Keys of metrics.json that hold method tables: {method: {row group: {metric: value}}}.
METHOD_KEYS = ("model", "baselines", "oracle", CEILING_KEY)


@dataclass
class Fitted:
    """A trained predictor, its training summary (step, best_step, best_score, ...) and what
    `score` computed that `write_outputs` reuses (e.g. test predictions)."""
    predictor: Any
    train: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)


@dataclass
class PredictionChunk:
    """Rows of predictions: identifying columns (`meta`, ending with `split`, one of
    `data.splits.PREDICTION_SPLITS`) and `values` [rows, len(columns)]."""
    meta: pd.DataFrame
    values: np.ndarray
    columns: list[str]
    column_symbols: list | None = None  # e.g. readout gene symbols, for GCTX row metadata
    id_columns: list[str] | None = None  # meta columns naming a prediction (None: all of them)
    gctx_meta: pd.DataFrame | None = None  # GCTX column metadata in CMap's vocabulary (None: meta)

    def ids(self) -> list[str]:
        """One id per row: the identifying values joined by ':' (TranscriptionNet: TYPE:GENE)."""
        meta = self.meta[self.id_columns or list(self.meta.columns)].astype(str)
        return meta.apply(lambda row: ":".join(row), axis=1).tolist()

    def frame(self) -> pd.DataFrame:
        return pd.concat([self.meta.reset_index(drop=True),
                          pd.DataFrame(self.values, columns=self.columns)], axis=1)


class Family(Protocol):
    """The hooks of one model family. Each hook is pure of files except where it says; `cfg` is
    the run's typed config (`tfnet_jax.schemas.typed.RunConfig`: every default from its schema)."""

    name: str
    data_sources: tuple[str, ...]  # the `data=` sources it reads
    split_fields: tuple[str, ...]  # the `split.*` fields it reads (others set are an error)

    def check_config(self, groups: dict) -> None:
        """Its own range / choice checks of the resolved groups (model fields, train.monitor);
        ConfigError naming the field. Called by tfnet_jax.config.validate."""

    def load(self, cfg: RunConfig, data: Any = None) -> Any:
        """The family's data object: `data` (in memory) if given, else read from `cfg.data`."""

    def split(self, cfg: RunConfig, data: Any) -> Any:
        """Held-out design from `cfg.split` (by perturbed gene / sample / individual)."""

    def prepare(self, cfg: RunConfig, data: Any, split: Any) -> Any:
        """Model-ready arrays; every scaler fitted on training rows only."""

    def fit(self, cfg: RunConfig, prepared: Any, run_dir: Path | None, on_eval=None) -> Fitted:
        """Train, resuming from `run_dir` where it holds checkpoints. `on_eval(step, metrics)`,
        when given, sees every validation evaluation (a sweep's pruner); it is only passed
        when set, so a family without the argument still trains."""

    def restore(self, cfg: RunConfig, prepared: Any, run_dir: Path, which: str = "best") -> Fitted:
        """The finished run's best (or latest) model, without training."""

    def score(self, cfg: RunConfig, prepared: Any, fitted: Fitted) -> dict:
        """Test metrics: {'model': T, 'baselines': {name: T}, 'oracle': T?,
        'replicate_ceiling': T?, ...extras},
        T = {row group: {metric: value}}."""

    def write_outputs(self, cfg: RunConfig, prepared: Any, fitted: Fitted, metrics: dict,
                      run_dir: Path) -> None:
        """Splits, predictions and other tables, written atomically into `run_dir`."""

    def predict(self, cfg: RunConfig, prepared: Any, fitted: Fitted, inputs: Any = None,
                **options) -> Iterator[PredictionChunk]:
        """Predictions for new inputs (None: the family's default query), chunk by chunk."""

    def summary_lines(self, metrics: dict) -> list[str]:
        """Lines logged under the results table (oracle ceiling, fusion weights, ...)."""


def family_spec(cfg: DictConfig) -> str:
    model = cfg.model
    return str(model.get("family") or model.get("name"))  # a DictConfig: plug-in families too


def import_object(path: str, field: str):
    """`pkg.module.Name` or `pkg.module:Name` -> the object (ConfigError naming `field`)."""
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(f"config: {field}={path!r}: cannot import it ({err})") from None


def get_family(spec: str) -> Family:
    """A family by registered name or by import path `module:Class` / `module.Class`."""
    if spec not in FAMILIES and not any(sep in spec for sep in ".:"):
        raise ConfigError(f"config: model.family={spec!r}: expected one of {sorted(FAMILIES)} "
                          f"or an import path module:Class")
    return import_object(FAMILIES.get(spec, spec), "model.family")()


def method_label(cfg: RunConfig, family: Family) -> str:
    """The model's name in result tables: `model` for the family's built-in network; a plug-in
    network (`model._target_`) is named by `model.name`, else by its class name."""
    target = cfg.model._target_
    if not target:
        return "model"
    name = str(cfg.model.name or "")
    return name if name and name != family.name else str(target).replace(":", ".").rsplit(".", 1)[-1]


@dataclass
class Pipeline:
    """One family's objects for one config: what `run` builds and `api.Run` keeps. `cfg` is
    the typed config the hooks receive."""
    family: Family
    cfg: RunConfig
    data: Any
    prepared: Any

    @classmethod
    def build(cls, cfg: RunConfig, family: Family, data: Any = None) -> "Pipeline":
        data = family.load(cfg, data)
        prepared = family.prepare(cfg, data, family.split(cfg, data))
        return cls(family, cfg, data, prepared)


@dataclass
class Outcome:
    """What one run produced: its metrics and, when it trained here (not skipped as finished),
    the pipeline and the fitted model, so a caller can predict without rebuilding either."""
    metrics: dict
    pipeline: Pipeline | None = None
    fitted: Fitted | None = None


def run(cfg: DictConfig, run_dir: str | Path, data: Any = None,
        overrides: list[str] | None = None, on_eval=None) -> dict:
    """Train (or resume) one run and score it; returns its metrics (see `execute`)."""
    return execute(cfg, run_dir, data, overrides, on_eval).metrics


def execute(cfg: DictConfig, run_dir: str | Path, data: Any = None,
            overrides: list[str] | None = None, on_eval=None) -> Outcome:
    """Train (or resume) one run and score it; metrics.json last, as the mark of a finished run.

    One writer per run dir: the run holds RUN/.lock throughout (a second run into the dir
    stops at once, naming the first). `on_eval(step, validation metrics)`: see `Family.fit`
    (not called for a finished run)."""
    from tfnet_jax.train.run_lock import RunLock
    from tfnet_jax.tasks import identity
    from tfnet_jax.train import distributed

    # The config as typed objects and the run's identity, each made once for the whole run.
    typed = typed_config(cfg)
    run_identity = identity.Identity.of(cfg)
    # Every process runs all of this (predictions are collective); process 0 writes the files.
    distributed.initialize(vars(typed.distributed))
    primary = distributed.is_primary()
    run_dir = Path(run_dir)
    if typed.train.num_devices is not None:  # before the run dir is read or claimed, or data loaded
        from tfnet_jax.train.engine import check_num_devices
        check_num_devices(typed.train.num_devices)
    if identity.finished(run_dir, run_identity):  # lets a re-run sweep finish only its missing arms
        log.info("Skipped %s: already finished (metrics.json present)", run_dir)
        return Outcome(identity.read_metrics(run_dir))
    with RunLock(run_dir, owner=primary):  # process 0 holds it for every process of the run
        return _execute_locked(typed, run_identity, run_dir, data, overrides, on_eval, primary)


def _execute_locked(cfg: RunConfig, run_identity, run_dir: Path, data: Any,
                    overrides: list[str] | None, on_eval, primary: bool) -> Outcome:
    from tfnet_jax.train.run_info import run_info
    from tfnet_jax.tasks import identity
    from tfnet_jax.train import distributed

    if primary:  # claim checks first; the others check alike, so a refused dir stops them all
        identity.claim(run_dir, run_identity, overrides)
        atomic_write_json(run_dir / "run_info.json", {"seed": cfg.seed, **run_info()})
    else:
        identity.check(run_dir, run_identity)
    distributed.barrier("run dir claimed")  # nobody reads or trains in a half-claimed dir

    pipeline = Pipeline.build(cfg, get_family(family_spec(run_identity.cfg)), data)
    family, prepared = pipeline.family, pipeline.prepared
    fitted = family.fit(cfg, prepared, run_dir, **({"on_eval": on_eval} if on_eval else {}))
    metrics = family.score(cfg, prepared, fitted)
    metrics["method"] = method_label(cfg, family)
    metrics["train"] = fitted.train
    metrics["identity"] = run_identity.hash
    if primary:
        family.write_outputs(cfg, prepared, fitted, metrics, run_dir)
        atomic_write_json(run_dir / "metrics.json", metrics)  # last: marks the run done
    else:
        with tempfile.TemporaryDirectory() as scratch:  # same collective predictions, files dropped
            family.write_outputs(cfg, prepared, fitted, metrics, Path(scratch))
    distributed.barrier("run finished")

    log.info("Test-set results (%s):\n%s", run_dir, format_results_table(
        {k: metrics[k] for k in ("model", "baselines", CEILING_KEY) if k in metrics}))
    for line in family.summary_lines(metrics):
        log.info("%s", line)
    return Outcome(metrics, pipeline, fitted)


def tidy_metrics(metrics: dict) -> pd.DataFrame:
    """metrics.json's method tables as rows: method, group, metric, value (the model's rows
    carry its label: `model`, or a plug-in network's name)."""
    rows = []
    for key in METHOD_KEYS:
        tables = metrics.get(key)
        if not tables:
            continue
        single = {"model": metrics.get("method", "model"), "oracle": "oracle",
                  CEILING_KEY: CEILING_KEY}
        named = {single[key]: tables} if key in single else tables
        for method, groups in named.items():
            for group, values in groups.items():
                for metric, value in values.items():
                    if isinstance(value, (int, float, np.floating, np.integer)):
                        rows.append((method, group, metric, float(value)))
    return pd.DataFrame(rows, columns=["method", "group", "metric", "value"])
