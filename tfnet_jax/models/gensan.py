"""GenSAN-style cross-type refinement (TranscriptionNet's second stage).

For each perturbed gene the refiner sees a [T, R] matrix of its per-type signatures: the
prediction for the target type and, for the other types, the observed signature where
the caller allows one (else the prediction). Axial self-attention blocks mix it along
the type axis (full attention over T tokens) and along the readout axis through K
learned inducing tokens (readouts -> K -> readouts, O(R*K) instead of O(R^2)). The
refined target row is added to the prediction as a residual; the whole refinement is
repeated `recycles` times, feeding each refined prediction back in.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx


def _attention(dim: int, heads: int, rngs: nnx.Rngs) -> nnx.MultiHeadAttention:
    return nnx.MultiHeadAttention(num_heads=heads, in_features=dim, decode=False, keep_rngs=False,
                                  rngs=rngs)


class AxialBlock(nnx.Module):
    def __init__(self, dim: int, heads: int, inducing: int, *, rngs: nnx.Rngs):
        self.type_attn = _attention(dim, heads, rngs)
        self.gather_attn = _attention(dim, heads, rngs)  # inducing tokens <- readouts
        self.scatter_attn = _attention(dim, heads, rngs)  # readouts <- inducing tokens
        self.inducing = nnx.Param(nnx.initializers.normal(0.1)(rngs.params(), (inducing, dim)))
        self.norms = nnx.List([nnx.LayerNorm(dim, rngs=rngs) for _ in range(3)])
        self.mlp_in = nnx.Linear(dim, 2 * dim, rngs=rngs)
        self.mlp_out = nnx.Linear(2 * dim, dim, rngs=rngs)

    def __call__(self, x):  # x [B, T, R, D]
        b, t, r, d = x.shape
        # Along types: each (gene, readout) cell attends over the T type tokens.
        h = self.norms[0](x).transpose(0, 2, 1, 3).reshape(b * r, t, d)
        x = x + self.type_attn(h, deterministic=True).reshape(b, r, t, d).transpose(0, 2, 1, 3)
        # Along readouts, factorised through K inducing tokens per (gene, type) row.
        h = self.norms[1](x).reshape(b * t, r, d)
        queries = jnp.broadcast_to(self.inducing[...], (b * t,) + self.inducing.shape)
        summary = self.gather_attn(queries, h, h, deterministic=True)
        x = x + self.scatter_attn(h, summary, summary, deterministic=True).reshape(b, t, r, d)
        return x + self.mlp_out(jax.nn.gelu(self.mlp_in(self.norms[2](x))))


@dataclasses.dataclass(frozen=True)
class RefinerConfig:
    num_types: int
    num_readouts: int
    dim: int = 16
    heads: int = 2
    blocks: int = 1
    inducing: int = 16  # readout axis factorised through this many tokens
    recycles: int = 1


class CrossTypeRefiner(nnx.Module):
    def __init__(self, config: RefinerConfig, *, rngs: nnx.Rngs):
        c = config
        init = nnx.initializers.normal(0.1)
        self.readout_embed = nnx.Param(init(rngs.params(), (c.num_readouts, c.dim)))
        self.type_embed = nnx.Param(init(rngs.params(), (c.num_types, c.dim)))
        self.role_embed = nnx.Param(init(rngs.params(), (3, c.dim)))  # target / observed / predicted
        self.value_proj = nnx.Linear(1, c.dim, rngs=rngs)
        self.blocks = nnx.List([AxialBlock(c.dim, c.heads, c.inducing, rngs=rngs) for _ in range(c.blocks)])
        self.out = nnx.Linear(c.dim, 1, kernel_init=nnx.initializers.zeros, rngs=rngs)
        self.recycles = c.recycles

    def __call__(self, predicted, observed, has_observed, target_type):
        """predicted, observed [T, B, R]; has_observed [T, B] bool; target_type [B] -> [B, R]."""
        num_types = predicted.shape[0]
        is_target = jnp.arange(num_types)[:, None] == target_type[None, :]  # [T, B]
        use_observed = has_observed & ~is_target
        role = jnp.where(is_target, 0, jnp.where(use_observed, 1, 2)).T  # [B, T]
        chooser = jax.nn.one_hot(target_type, num_types, dtype=predicted.dtype)  # [B, T]
        refined = jnp.einsum("bt,tbr->br", chooser, predicted)
        for _ in range(max(self.recycles, 1)):
            current = jnp.where(is_target[..., None], refined[None], predicted)
            matrix = jnp.where(use_observed[..., None], observed, current).transpose(1, 0, 2)  # [B,T,R]
            x = (self.value_proj(matrix[..., None]) + self.readout_embed[...][None, None]
                 + self.type_embed[...][None, :, None] + self.role_embed[...][role][:, :, None])
            for block in self.blocks:
                x = block(x)
            delta = self.out(x)[..., 0]  # [B, T, R]
            refined = refined + jnp.einsum("bt,btr->br", chooser, delta)
        return refined
