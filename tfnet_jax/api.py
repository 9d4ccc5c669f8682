"""The Python API: train, reload and predict with any family, without the command line.

    import tfnet_jax
    run = tfnet_jax.fit("tfnet", train={"max_steps": 200}, run_dir="runs/tfnet_demo")
    run.metrics                      # tidy table: method, group, metric, value
    tfnet_jax.load_run("runs/tfnet_demo").predict(new_samples)   # a DataFrame

Configs come from the packaged Hydra configs (one definition of every default); keyword
arguments become overrides (`train={"max_steps": 200}` -> `train.max_steps=200`). Data may be
passed in memory (`data=` a family's data object) or named by config (`data={"name": ...}`).
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf, open_dict

from tfnet_jax.errors import RunDirError
from tfnet_jax.schemas.typed import typed_config
from tfnet_jax.tasks.base import Fitted, Pipeline, execute, family_spec, get_family, tidy_metrics

log = logging.getLogger(__name__)


@functools.cache
def dict_fields() -> frozenset[str]:
    """Names of the schemas' free-keyed dict fields (`type_map`, `options`); read once."""
    import dataclasses
    import typing

    from tfnet_jax import schemas
    return frozenset(f.name for obj in vars(schemas).values() if dataclasses.is_dataclass(obj)
                     for f in dataclasses.fields(obj)
                     if typing.get_origin(typing.get_type_hints(obj)[f.name]) is dict)


def config_overrides(prefix: str, value: Any) -> list[str]:
    """Nested keyword arguments -> Hydra overrides (`train={"max_steps": 5}` -> train.max_steps=5).

    A group's `name` selects the group option first (`data={"name": "expression", ...}` ->
    `data=expression`); strings are quoted, so paths with commas or brackets stay strings. Keys
    of a free-keyed dict field are new keys to Hydra, so they take `++` (`data.type_map`).
    """
    if isinstance(value, dict) and value:
        value = dict(value)
        head = [f"{prefix}={value.pop('name')}"] if "." not in prefix and "name" in value else []
        if "." in prefix and prefix.rpartition(".")[2] in dict_fields():
            return head + [f"++{o}" for k, v in value.items()
                           for o in config_overrides(f"{prefix}.{k}", v)]
        return head + [o for k, v in value.items() for o in config_overrides(f"{prefix}.{k}", v)]
    if isinstance(value, str):
        return [f"{prefix}='{value.replace(chr(92), chr(92) * 2).replace(chr(39), chr(92) + chr(39))}'"]
    if isinstance(value, Path):
        return config_overrides(prefix, str(value))
    return [f"{prefix}={json.dumps(value)}"]


def compose(overrides: list[str]) -> DictConfig:
    """The resolved, validated config for `overrides` (the CLI's config, built without it)."""
    from tfnet_jax import config
    return config.compose(list(overrides))


def data_fingerprint(data: Any) -> str:
    """A content hash of in-memory data, so run identity covers data passed by object."""
    digest = hashlib.sha256()

    def feed(obj, depth=0):
        if depth > 6:
            return
        if isinstance(obj, np.ndarray):
            digest.update(str((obj.dtype, obj.shape)).encode())
            digest.update(np.ascontiguousarray(obj).tobytes() if obj.dtype != object
                          else "\x1f".join(map(str, obj.ravel())).encode())
        elif isinstance(obj, pd.DataFrame):
            feed(obj.columns.to_numpy(str), depth + 1)
            feed(obj.index.to_numpy(str), depth + 1)
            for column in obj.columns:
                feed(obj[column].to_numpy(), depth + 1)
        elif isinstance(obj, dict):
            for key in sorted(obj, key=str):
                digest.update(str(key).encode())
                feed(obj[key], depth + 1)
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                feed(item, depth + 1)
        elif hasattr(obj, "__dataclass_fields__"):
            for name in obj.__dataclass_fields__:
                digest.update(name.encode())
                feed(getattr(obj, name), depth + 1)
        else:
            digest.update(repr(obj).encode())
    feed(data)
    return digest.hexdigest()[:16]


class Run:
    """A run dir: its config, metrics, and (loaded on first use) data, model and predictions."""

    def __init__(self, run_dir: str | Path, cfg: DictConfig | None = None, data: Any = None,
                 which: str = "best", pipeline: Pipeline | None = None, fitted: Fitted | None = None):
        """pipeline / fitted: those of a run just trained in this process (None: rebuilt from
        the run dir on first use)."""
        self.run_dir = Path(run_dir)
        config_file = self.run_dir / ".hydra" / "config.yaml"
        if cfg is None:
            if not config_file.exists():
                raise RunDirError(f"run_dir={self.run_dir}: no run config at {config_file}")
            cfg = OmegaConf.load(config_file)
        self.config = cfg
        self.typed_config = typed_config(cfg)  # what the family's hooks receive
        self.family = get_family(family_spec(cfg))
        self._data = data
        self.which = which
        self._pipeline, self._fitted = pipeline, fitted

    def __repr__(self) -> str:
        return f"Run({str(self.run_dir)!r}, family={self.family.name!r})"

    # ------------------------------------------------------------ results on disk
    @property
    def metrics_json(self) -> dict:
        path = self.run_dir / "metrics.json"
        if not path.exists():
            raise RunDirError(f"run_dir={self.run_dir}: not finished (no metrics.json)")
        return json.loads(path.read_text())

    @property
    def metrics(self) -> pd.DataFrame:
        """Test metrics as a tidy table: one row per method x row group x metric."""
        return tidy_metrics(self.metrics_json)

    # ------------------------------------------------------------ the model
    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            if self.config.get("data_fingerprint") and self._data is None:
                raise RunDirError(f"run_dir={self.run_dir}: trained on data passed in memory; "
                                  f"pass it again: load_run(run_dir, data=...)")
            self._pipeline = Pipeline.build(self.typed_config, self.family, self._data)
        return self._pipeline

    @property
    def prepared(self):
        return self.pipeline.prepared

    @property
    def fitted(self) -> Fitted:
        if self._fitted is None:
            self.metrics_json  # a run that has not finished has no best model yet
            self._fitted = self.family.restore(self.typed_config, self.prepared, self.run_dir, self.which)
        return self._fitted

    @property
    def trainer(self):
        return self.fitted.predictor

    def predict_chunks(self, inputs: Any = None, **options):
        return self.family.predict(self.typed_config, self.prepared, self.fitted, inputs, **options)

    def predict(self, inputs: Any = None, **options) -> pd.DataFrame:
        """Predictions as one DataFrame: identifying columns, then one column per output.

        TranscriptionNet: `inputs` = gene IDs (or a file of them; None: every gene of the
        graph), `pert_types=`; TFNet: new samples' TF levels (DataFrame / AnnData / matrix
        file); GenoNet: new genotypes (a PLINK prefix or a dosage table).
        """
        frames = [chunk.frame() for chunk in self.predict_chunks(inputs, **options)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def write_predictions(self, inputs: Any = None, **options) -> list[Path]:
        """Predictions streamed to files (`PredictOptions`: format=parquet|csv|gctx|h5ad or a
        list of them, output=STEM, default RUN/predictions; the family's own options, e.g.
        pert_types, pass through); returns the paths written."""
        from tfnet_jax.data.io.prediction_files import sinks_for, write_predictions
        from tfnet_jax.schemas.commands import PredictOptions, make_options

        opts = make_options(PredictOptions, {"inputs": inputs, **options})
        opts.check()
        stem = Path(opts.output) if opts.output else self.run_dir / "predictions"
        family_options = {k: v for k, v in vars(opts).items()
                          if k not in ("inputs", "genes", "format", "output") and v is not None}
        sinks = sinks_for(stem, opts.formats)
        query = opts.inputs if opts.inputs is not None else opts.genes
        rows = write_predictions(sinks, self.predict_chunks(query, **family_options))
        paths = [sink.path for sink in sinks]
        log.info("wrote %d predictions of the %s run %s to %s", rows, self.family.name, self.run_dir,
                 ", ".join(map(str, paths)))
        return paths


def fit(family: str, data: Any = None, *, run_dir: str | Path | None = None,
        overrides: list[str] | tuple[str, ...] = (), **config) -> Run:
    """Train (or resume, or reuse the finished run of the same config) one model.

    family: transcriptionnet | tfnet | genonet. data: an in-memory data object of that family,
    or a dict of `data` config fields (None: the config's `data`). config: config groups as
    keyword arguments, e.g.
    `train={"max_steps": 100}`, `seed=1`, `data={"num_samples": 500}`; `overrides` takes
    Hydra-style strings too (`["data=expression", "data.path=x.h5ad"]`).
    run_dir: default `outputs/api/<family>-<config hash>`.
    """
    from tfnet_jax.tasks.identity import config_hash
    if isinstance(data, dict):  # data={"num_genes": 500}: the data config, not a data object
        data, config = None, {**config, "data": data}
    args = [f"model={family}", *overrides]
    for key, value in config.items():
        args += config_overrides(key, value)
    cfg = compose(args)
    if data is not None:
        with open_dict(cfg):
            cfg.data_fingerprint = data_fingerprint(data)
    run_dir = Path(run_dir) if run_dir is not None else Path("outputs/api") / f"{family}-{config_hash(cfg)}"
    outcome = execute(cfg, run_dir, data, overrides=args)
    return Run(run_dir, cfg, data, pipeline=outcome.pipeline, fitted=outcome.fitted)


def load_run(run_dir: str | Path, data: Any = None, *, family: str | None = None,
             which: str = "best") -> Run:
    """A finished run, ready to report and predict.

    data: the in-memory data it was fit on (if any); family: the family an analysis needs
    (an error names the run's own family otherwise); which: best | latest checkpoint.
    """
    run = Run(run_dir, data=data, which=which)
    recorded = run.config.get("data_fingerprint")
    if data is not None and recorded != data_fingerprint(data):
        raise RunDirError(f"run_dir={run.run_dir}: the data passed is not the data it was trained "
                          f"on (fingerprint {data_fingerprint(data)} vs {recorded})")
    if family is not None and run.family.name != family:
        raise RunDirError(f"run_dir={run.run_dir}: a {run.family.name} run; this needs a {family} run")
    return run
