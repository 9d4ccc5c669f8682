"""Hooks shared by the families that train one model on the engine (TranscriptionNet, TFNet).

A family subclasses `EngineFamily` and supplies `build_network`, `network_dims`, `loss_fn`,
`predict_fn`, `train_rows` and `validation_metrics`; `fit` and `restore` are written once.
A plug-in network (`model._target_=mypkg.mod.MyNet`) replaces the built-in one: it is built
as `MyNet(**network_dims, **model.options, rngs=nnx.Rngs(seed))` and must take the same
call arguments as the family's built-in network.
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from pathlib import Path

from flax import nnx

from tfnet_jax.schemas.typed import RunConfig
from tfnet_jax.tasks.base import Fitted, import_object
from tfnet_jax.train.engine import Trainer

TRAIN_SUMMARY = ("step", "best_step", "best_score")
# Model-config keys about which network to build, not arguments of the built-in network.
PLUGIN_KEYS = ("name", "family", "_target_", "options")


def model_options(cfg: RunConfig) -> dict:
    """The built-in network's hyperparameters: the model config minus the plug-in keys."""
    return {k: v for k, v in dataclasses.asdict(cfg.model).items() if k not in PLUGIN_KEYS}


class EngineFamily(ABC):
    name = "engine"

    # ------------------------------------------------------------ hooks a family supplies
    @abstractmethod
    def build_network(self, cfg: RunConfig, prepared) -> nnx.Module:
        """The family's built-in network, from the model config and the prepared data."""

    @abstractmethod
    def network_dims(self, prepared) -> dict:
        """Shape arguments a plug-in network is built with (e.g. num_inputs, num_outputs)."""

    @abstractmethod
    def loss_fn(self, cfg: RunConfig):
        """loss_fn(model, batch, context, key) -> (loss, aux metrics) for the engine."""

    @abstractmethod
    def predict_fn(self, model, batch, context, *encoded):
        """Predictions of one batch (`encoded`: encode_fn's output, when the family has one)."""

    def encode_fn(self, model):
        """Work every prediction shares, done once per parameter state (None: none)."""
        return None

    def context_specs(self, prepared):
        """PartitionSpecs for the context over the data mesh (None: all replicated)."""
        return None

    def train_rows(self, prepared) -> dict:
        return prepared.rows("train")

    @abstractmethod
    def validation_metrics(self, trainer: Trainer, prepared) -> dict[str, float]:
        """The valid/<metric> scores that drive early stopping and the best checkpoint."""

    # ------------------------------------------------------------ written once
    def build_model(self, cfg: RunConfig, prepared) -> nnx.Module:
        target = cfg.model._target_
        if not target:
            return self.build_network(cfg, prepared)
        network = import_object(str(target), "model._target_")
        return network(**self.network_dims(prepared), **cfg.model.options, rngs=nnx.Rngs(cfg.seed))

    def make_trainer(self, cfg: RunConfig, prepared, run_dir: Path | None, model=None,
                     **train_overrides) -> Trainer:
        """A trainer for `model` (default: a fresh one from the config)."""
        model = self.build_model(cfg, prepared) if model is None else model
        train_cfg = dataclasses.replace(cfg.train, **train_overrides)
        return Trainer(model, train_cfg, loss_fn=self.loss_fn(cfg), predict_fn=self.predict_fn,
                       context=prepared.context, run_dir=run_dir, encode_fn=self.encode_fn(model),
                       context_specs=self.context_specs(prepared))

    def fit(self, cfg: RunConfig, prepared, run_dir: Path | None, on_eval=None) -> Fitted:
        trainer = self.make_trainer(cfg, prepared, run_dir)
        meta = trainer.fit(self.train_rows(prepared),
                           lambda tr: self.validation_metrics(tr, prepared), on_eval=on_eval)
        return Fitted(trainer, {k: meta[k] for k in TRAIN_SUMMARY})

    def restore(self, cfg: RunConfig, prepared, run_dir: Path, which: str = "best") -> Fitted:
        trainer = self.make_trainer(cfg, prepared, run_dir=None, progress=False)
        meta = trainer.restore(Path(run_dir) / "checkpoints", which=which)
        return Fitted(trainer, {k: meta.get(k) for k in TRAIN_SUMMARY})

    def summary_lines(self, metrics: dict) -> list[str]:
        return []
