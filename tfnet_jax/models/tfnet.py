"""TFNet (Magnusson et al., npj Syst Biol Appl 2022): TF levels -> every target's level.

A dense network from standardised TF levels to standardised target levels (the paper:
two hidden layers of 250 ELU units). `input_mask` [num_tfs] multiplies the inputs, so a
removed TF sits at its training mean (0 after standardisation): core-TF selection
switches TFs off without changing shapes, and so without recompiling.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

ACTIVATIONS = {"elu": jax.nn.elu, "relu": jax.nn.relu, "gelu": jax.nn.gelu,
               "tanh": jnp.tanh, "silu": jax.nn.silu}


@dataclasses.dataclass(frozen=True)
class TFNetModelConfig:
    num_tfs: int
    num_targets: int
    hidden: tuple[int, ...] = (250, 250)
    activation: str = "elu"
    dropout: float = 0.0
    input_dropout: float = 0.0
    linear_skip: bool = False
    skip_trainable: bool = True


class TFNet(nnx.Module):
    def __init__(self, config: TFNetModelConfig, *, rngs: nnx.Rngs):
        c = config
        if c.activation not in ACTIVATIONS:
            raise ValueError(f"model.activation={c.activation!r}; known: {sorted(ACTIVATIONS)}")
        self.activation = ACTIVATIONS[c.activation]
        sizes = [c.num_tfs, *c.hidden]
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        self.out = nnx.Linear(sizes[-1], c.num_targets, rngs=rngs)
        self.dropout = nnx.Dropout(c.dropout)
        self.input_dropout = nnx.Dropout(c.input_dropout)
        self.input_mask = nnx.Variable(jnp.ones(c.num_tfs))
        # Optional linear path TF -> target beside the MLP: the MLP then models what is not
        # linear. Frozen (a non-Param variable), it stays at its initial fit, e.g. ridge.
        kind = nnx.Param if c.skip_trainable else nnx.Variable
        self.skip = kind(jnp.zeros((c.num_tfs, c.num_targets))) if c.linear_skip else None

    def init_linear_start(self, coef, intercept) -> None:
        """Start at a linear fit (e.g. ridge): skip = coef [tfs, targets], the MLP's output
        layer zero with bias = intercept [targets], so the model starts at x @ coef + intercept
        and training only has to learn what the linear map misses."""
        if self.skip is None:
            raise ValueError("a linear start needs model.linear_skip=true")
        self.skip[...] = jnp.asarray(coef, jnp.float32)
        self.out.kernel[...] = jnp.zeros_like(self.out.kernel[...])
        self.out.bias[...] = jnp.asarray(intercept, jnp.float32)

    def __call__(self, x, *, deterministic: bool = True, rngs: nnx.Rngs | None = None):
        x = self.input_dropout(x * self.input_mask[...], deterministic=deterministic, rngs=rngs)
        h = x
        for layer in self.layers:
            h = self.dropout(self.activation(layer(h)), deterministic=deterministic, rngs=rngs)
        return self.out(h) if self.skip is None else self.out(h) + x @ self.skip[...]
