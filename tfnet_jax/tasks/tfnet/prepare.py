"""TF -> target expression task: connects ExpressionData, TFNet and the engine.

Samples are split by a seeded hash of their id (or whole groups are held out, to test
generalisation across studies / tissues). Every standardiser is fitted on the training
samples only; the model sees standardised TFs and predicts standardised targets, and
all metrics are computed back in the data's own units.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from flax import nnx

from tfnet_jax.data.expression.container import ExpressionData
from tfnet_jax.data.scaling import Standardiser
from tfnet_jax.eval.metrics import COUNT_KEYS
from tfnet_jax.eval.regression import expression_metrics
from tfnet_jax.models.expression_baselines import (
    fit_predict_expression_baselines,
    ridge_coefficients,
)
from tfnet_jax.models.tfnet import TFNet, TFNetModelConfig
from tfnet_jax.schemas.models import TFNetConfig
from tfnet_jax.train.losses import masked_mean


@dataclass
class PreparedExpression:
    data: ExpressionData
    split: np.ndarray  # str [samples]
    x_scaler: Standardiser  # TFs [tfs], fitted on training samples only
    y_scaler: Standardiser  # targets [targets], fitted on training samples only

    @property
    def x_mean(self) -> np.ndarray:
        return self.x_scaler.mean

    @property
    def x_sd(self) -> np.ndarray:
        return self.x_scaler.sd

    @property
    def y_mean(self) -> np.ndarray:
        return self.y_scaler.mean

    @property
    def y_sd(self) -> np.ndarray:
        return self.y_scaler.sd

    @property
    def context(self) -> dict:
        return {}

    def inputs(self, split: str | None = None) -> np.ndarray:
        x = self.data.inputs() if split is None else self.data.inputs()[self.split == split]
        return self.x_scaler.transform(x).astype(np.float32)

    def targets(self, split: str) -> np.ndarray:
        """Targets of `split` in the data's own units."""
        return self.data.targets()[self.split == split]

    def rows(self, split: str) -> dict[str, np.ndarray]:
        y = self.y_scaler.transform(self.targets(split))
        return {"x": self.inputs(split), "target": y.astype(np.float32)}

    def unscale(self, pred: np.ndarray) -> np.ndarray:
        return self.y_scaler.inverse(pred)


def prepare(data: ExpressionData, split: np.ndarray) -> PreparedExpression:
    train = split == "train"
    return PreparedExpression(data, split, Standardiser.fit(data.inputs(), train, "TF inputs"),
                              Standardiser.fit(data.targets(), train, "targets"))


def build_model(model_cfg: TFNetConfig, prepared: PreparedExpression, seed: int) -> TFNet:
    m = model_cfg
    model = TFNet(TFNetModelConfig(
        num_tfs=len(prepared.data.tf_genes), num_targets=len(prepared.data.target_genes),
        hidden=tuple(m.hidden), activation=m.activation, dropout=m.dropout,
        input_dropout=m.input_dropout, linear_skip=m.linear_skip, skip_trainable=m.skip_trainable),
        rngs=nnx.Rngs(seed))
    if m.skip_init not in ("zeros", "ridge"):
        raise ValueError(f"model.skip_init={m.skip_init!r}; expected zeros or ridge")
    if model.skip is not None and m.skip_init == "ridge":
        # Start at the validation-chosen ridge fit (fitted here: data work; installed by the model).
        train, valid = prepared.rows("train"), prepared.rows("valid")
        coef, intercept, _ = ridge_coefficients(train["x"], train["target"], valid["x"], valid["target"])
        model.init_linear_start(coef, intercept)
    return model


def loss_fn(model, batch, context, key):
    pred = model(batch["x"], deterministic=False, rngs=nnx.Rngs(dropout=key))
    mse = masked_mean(jnp.mean((pred - batch["target"]) ** 2, axis=-1), batch["mask"])
    return mse, {"mse": mse}


def predict_fn(model, batch, context):
    return model(batch["x"], deterministic=True)


def predict_split(trainer, prepared: PreparedExpression, split: str) -> np.ndarray:
    """Model predictions for the samples of `split`, in the data's units."""
    return prepared.unscale(trainer.predict({"x": prepared.inputs(split)}))


def valid_metric_names() -> list[str]:
    """The `valid/<name>` metrics `validation_metrics` reports (read off a tiny call)."""
    true = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
    return [k for k in expression_metrics(true + 0.1, true) if k not in COUNT_KEYS]


def validation_metrics(trainer, prepared: PreparedExpression) -> dict[str, float]:
    metrics = expression_metrics(predict_split(trainer, prepared, "valid"), prepared.targets("valid"))
    return {f"valid/{k}": v for k, v in metrics.items() if k not in COUNT_KEYS}


def baseline_predictions(prepared: PreparedExpression, split: str = "test") -> dict:
    """{name: (predictions in data units, chosen hyperparameter)} fitted on training samples."""
    rows = {s: prepared.rows(s) for s in ("train", "valid")}
    fitted = fit_predict_expression_baselines(rows["train"]["x"], rows["train"]["target"],
                                              rows["valid"]["x"], rows["valid"]["target"],
                                              prepared.inputs(split))
    return {name: (prepared.unscale(pred), hyper) for name, (pred, hyper) in fitted.items()}


def oracle_predictions(prepared: PreparedExpression, split: str = "test") -> np.ndarray | None:
    """Noise-free planted targets (synthetic data only): the ceiling on held-out R^2."""
    clean = prepared.data.extras.get("clean_targets")
    return None if clean is None else np.asarray(clean)[prepared.split == split]
