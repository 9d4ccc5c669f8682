"""GenoNet (after Ramprasad, Ren & Pan, Genet Epidemiol 2025): cis genotypes -> expression.

One module holds a block of G genes, each padded to P variants (`vmask` [G, P] marks the
real ones). Per gene and variant:

    scale[g, v] = gate(annotations[g, v]) * r[g, v]

`r` is a per-gene learnable scale with an L1 penalty (sparsity); `gate` is a small network
shared by ALL genes (no gene axis), normalised to mean 1 over each gene's real variants, so
it can only move the penalty between variants: an annotation prior learned from every gene
(cheaper scales for variants whose annotations look causal). Without annotations gate = 1.

The scaled genotype (additive and dominance codings, both standardised on training rows)
goes through a 1-D convolution over variants in genomic order, GELU, masked max + mean
pooling and a small MLP; an optional linear path sum_v scale * dosage runs beside it, so
the additive part is an (adaptive) lasso and the network models what is not additive.

Padded variants are zeroed before anything else and excluded from pooling, so their dosages
never matter. All per-gene parameters carry a leading gene axis and genes never mix, so one
compiled program trains the whole block. `effective_params()` materialises the scale (gate
applied), and `forward(params, ...)` predicts from such a snapshot without the gate: the
per-gene early stopping keeps those snapshots.

With `linear_init="elastic_net"` the linear path is instead the elastic net fitted on the
same outer fold's training rows (weights on standardised additive dosages plus an offset,
handed in through the context (`GenoNetContext`) as `lin` [G, P] and `lin_b` [G]), frozen unless
`linear_trainable`; the network's output layer starts at zero, so training starts at the
elastic net's prediction and the network only fits the non-additive remainder (the TFNet
family's ridge-started frozen linear path).

Epistasis start (model.epistasis_variants = m > 0, with the elastic-net start): beside the
frozen additive path, a frozen path over the dominance codings of the gene's m strongest
start variants and their m(m-1)/2 pairwise products (centred dosages), weights from an
elastic net fitted by inner CV on the start's residuals on the same training rows
(`tasks/genotype.fit_epistasis`); a gene without such signal gets all-zero weights. Context
fields `epi_idx` [G, m] (variant positions), `epi_center` [G, m], `epi_w` [G, m + m(m-1)/2],
`epi_b` [G]; its value on training rows is part of the prescreened offset.

Variant screening (context `screen` [G, K], chosen per gene on training rows): the network
(its scales, gate, convolution and pooling) sees only K of a gene's P variants, so a step costs
O(K), not O(P); the elastic-net path still reads every variant.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct

PER_GENE = ("scale", "conv_w", "conv_b", "w1", "b1", "w2", "b2")
# The frozen start's arrays, handed in through the context (`linear_part`).
LINEAR_KEYS = ("lin", "lin_b", "epi_idx", "epi_center", "epi_w", "epi_b")


@struct.dataclass
class GenoNetContext:
    """What every step of one fold x gene block shares: `vmask` [G, P] (real variants), `mu`,
    `sd` [G, P, 2] (coding scalers, training rows), `active` [G] (genes still in the loss);
    optional: `annotations` [G, P, A], the elastic-net start (`LINEAR_KEYS`) and `screen` [G, K]."""
    vmask: Any
    mu: Any
    sd: Any
    active: Any
    annotations: Any = None
    lin: Any = None
    lin_b: Any = None
    epi_idx: Any = None
    epi_center: Any = None
    epi_w: Any = None
    epi_b: Any = None
    screen: Any = None


def linear_part(context: GenoNetContext) -> dict | None:
    """The frozen start's arrays in `context` (None without an elastic-net start)."""
    if context.lin is None:
        return None
    return {k: getattr(context, k) for k in LINEAR_KEYS if getattr(context, k) is not None}


def heterozygote(dosage):
    """The dominance coding of raw dosages (1 at one copy, 0 at none or two), numpy or JAX."""
    xp = jnp if isinstance(dosage, jax.Array) else np
    return xp.clip(1.0 - xp.abs(dosage - 1.0), 0.0, 1.0)


def encode(dosage, mu, sd, vmask):
    """Standardised additive and dominance (heterozygote) codings [B, G, P, 2], 0 at padding.

    dosage [B, G, P] raw A1 counts (imputed); mu, sd [G, P, 2] from training rows.
    """
    x = (jnp.stack([dosage, heterozygote(dosage)], -1) - mu) / sd
    return jnp.where(vmask[None, :, :, None], x, 0.0)


def screened(screen, *arrays):
    """Each array's variant axis (axis 1 of [G, P, ...]) gathered at `screen` [G, K]."""
    return [jnp.take_along_axis(a, screen.reshape(screen.shape + (1,) * (a.ndim - 2)), axis=1)
            for a in arrays]


def elastic_net_path(dosage, lin, mu, sd, vmask):
    """sum_v lin * (d - mu) / sd over every real variant [B, G], from raw dosages [B, G, P],
    without standardising them all (the start's additive fit; `prescreen` uses it too)."""
    w = jnp.where(vmask, lin / sd[..., 0], 0.0)
    return jnp.einsum("bgp,gp->bg", dosage, w) - jnp.sum(w * mu[..., 0], -1)


def epistasis_features(dosage, idx, center):
    """Dominance codings of the m chosen variants and the pairwise products of their centred
    dosages [B, G, m + m(m-1)/2] from raw dosages [B, G, P]; idx, center [G, m]. Works on numpy
    and JAX arrays alike (the fit and the model read the same features)."""
    xp = jnp if isinstance(dosage, jax.Array) else np
    d = xp.take_along_axis(dosage, idx[None], axis=2)
    c = d - center[None]
    first, second = np.triu_indices(idx.shape[-1], 1)
    return xp.concatenate([heterozygote(d), c[..., first] * c[..., second]], -1)


def epistasis_path(dosage, params):
    """The epistasis start's prediction [B, G] (standardised y units) from raw dosages."""
    feats = epistasis_features(dosage, params["epi_idx"], params["epi_center"])
    return jnp.einsum("bgf,gf->bg", feats, params["epi_w"]) + params["epi_b"]


def forward(params, dosage, mu, sd, vmask, *, linear_skip: bool, dropout: float = 0.0, key=None,
            offset=None):
    """Predictions [B, G] from per-gene parameters (`PER_GENE` names) and raw dosages [B, G, P].

    With params["screen"] [G, K] (the screened variants) the network sees only those K
    variants of each gene, while a frozen elastic-net path ("lin") still reads all P. Training
    passes them pre-screened instead: dosage [B, G, K] and `offset` [B, G], the elastic-net
    path's sum over all P (`prescreen`), so a step moves K, not P, variants per gene.
    """
    screen = params.get("screen")
    if screen is None:
        x = encode(dosage, mu, sd, vmask)
        net_mask = vmask
    else:
        net_mask, net_mu, net_sd = screened(screen, vmask, mu, sd)
        raw = dosage if offset is not None else jnp.take_along_axis(dosage, screen[None], axis=2)
        x = encode(raw, net_mu, net_sd, net_mask)
    out = _network(params, x, net_mask, dropout, key)
    if "lin" in params:  # elastic-net start: its additive fit plus offset, in y's standard units
        if offset is not None:
            out = out + offset
        elif screen is None:
            out = out + jnp.sum(x[..., 0] * params["lin"][None], axis=-1)
        else:
            out = out + elastic_net_path(dosage, params["lin"], mu, sd, vmask)
        if "epi_w" in params and offset is None:  # the offset already holds it
            out = out + epistasis_path(dosage, params)
        out = out + params["lin_b"]
    elif linear_skip:
        out = out + jnp.sum(x[..., 0] * params["scale"][None], axis=-1)  # additive x scale: a lasso
    return out


def _network(params, x, vmask, dropout, key):
    """The convolution, pooling and MLP over codings x [B, G, P, 2] -> [B, G]."""
    h = x * params["scale"][None, :, :, None]
    b, g, p, cin = h.shape
    k, _, c = params["conv_w"].shape[1:]
    # Convolution as one batched matmul per gene (im2col): on CPU this is ~10x faster than a
    # grouped convolution, and genes stay independent (gene g only meets its own kernel).
    hp = jnp.pad(h, ((0, 0), (0, 0), (k // 2, k - 1 - k // 2), (0, 0)))
    patches = jnp.concatenate([hp[:, :, i:i + p] for i in range(k)], -1)            # [B, G, P, K*Cin]
    patches = patches.transpose(1, 0, 2, 3).reshape(g, b * p, k * cin)
    z = jax.lax.batch_matmul(patches, params["conv_w"].reshape(g, k * cin, c))
    z = z.reshape(g, b, p, c).transpose(1, 0, 2, 3)
    z = jax.nn.gelu(z + params["conv_b"][None, :, None, :])
    m = vmask[None, :, :, None]
    n_real = jnp.maximum(vmask.sum(-1), 1.0)[None, :, None]
    pooled = jnp.concatenate([jnp.max(jnp.where(m, z, -1e9), axis=2) * (n_real > 0),
                              jnp.sum(z * m, axis=2) / n_real], -1)                    # [B, G, 2C]
    hidden = jax.nn.gelu(jnp.einsum("bgi,gih->bgh", pooled, params["w1"]) + params["b1"])
    if dropout > 0 and key is not None:
        keep = jax.random.bernoulli(key, 1.0 - dropout, hidden.shape)
        hidden = jnp.where(keep, hidden / (1.0 - dropout), 0.0)
    return jnp.einsum("bgh,gh->bg", hidden, params["w2"]) + params["b2"]


@dataclasses.dataclass(frozen=True)
class GenoNetModelConfig:
    num_genes: int
    num_variants: int
    num_annotations: int = 0
    channels: int = 8
    kernel: int = 7
    hidden: int = 16
    gate_hidden: int = 8
    dropout: float = 0.1
    init_scale: float = 0.05
    linear_skip: bool = True
    linear_init: str = "zeros"  # zeros | elastic_net
    linear_trainable: bool = False
    screen_width: int | None = None  # K: the network sees K screened variants (context `screen`)


class GenoNet(nnx.Module):
    def __init__(self, config: GenoNetModelConfig, *, rngs: nnx.Rngs):
        cfg = config
        if cfg.linear_init not in ("zeros", "elastic_net"):
            raise ValueError(f"linear_init={cfg.linear_init!r}: zeros | elastic_net")
        g, p, c = cfg.num_genes, cfg.num_variants, cfg.channels
        kernel, hidden = cfg.kernel, cfg.hidden
        key = rngs.params()
        k1, k2, k3 = jax.random.split(key, 3)
        # screen_width K: the network's scales r cover the K screened variants (context "screen").
        self.r = nnx.Param(jnp.full((g, cfg.screen_width or p), cfg.init_scale, jnp.float32))
        self.conv_w = nnx.Param(jax.random.normal(k1, (g, kernel, 2, c)) / jnp.sqrt(2.0 * kernel))
        self.conv_b = nnx.Param(jnp.zeros((g, c)))
        self.w1 = nnx.Param(jax.random.normal(k2, (g, 2 * c, hidden)) / jnp.sqrt(2.0 * c))
        self.b1 = nnx.Param(jnp.zeros((g, hidden)))
        # Elastic-net start: a zero output layer, so step 0 predicts exactly the elastic net.
        w2_scale = 0.0 if cfg.linear_init == "elastic_net" else 0.1
        self.w2 = nnx.Param(jax.random.normal(k3, (g, hidden)) * w2_scale / jnp.sqrt(hidden))
        self.b2 = nnx.Param(jnp.zeros((g,)))
        self.num_annotations = cfg.num_annotations
        if cfg.num_annotations:
            # The shared prior: no gene axis. Zero output layer -> gate 1 everywhere at start.
            self.gate_in = nnx.Linear(cfg.num_annotations, cfg.gate_hidden, rngs=rngs)
            self.gate_out = nnx.Linear(cfg.gate_hidden, 1, kernel_init=nnx.initializers.zeros, rngs=rngs)
        self.dropout = cfg.dropout
        self.linear_skip = cfg.linear_skip
        self.linear_init = cfg.linear_init
        if cfg.linear_init == "elastic_net" and cfg.linear_trainable:
            # Trainable: a correction to the context's elastic-net weights, starting at zero.
            self.lin_delta = nnx.Param(jnp.zeros((g, p)))
            self.lin_b_delta = nnx.Param(jnp.zeros((g,)))
        self.linear_trainable = cfg.linear_trainable

    def gate(self, annotations, vmask):
        """[G, P] >= 0, mean 1 over each gene's real variants (1 without annotations)."""
        if not self.num_annotations:
            return vmask.astype(jnp.float32)
        raw = jax.nn.softplus(self.gate_out(jax.nn.gelu(self.gate_in(annotations)))[..., 0])
        raw = jnp.where(vmask, raw, 0.0)
        return raw * jnp.maximum(vmask.sum(-1, keepdims=True), 1.0) / jnp.maximum(
            raw.sum(-1, keepdims=True), 1e-6)

    def effective_params(self, annotations, vmask, linear=None, screen=None) -> dict:
        """Per-gene parameters; `linear` = `linear_part(context)` (elastic-net start);
        `screen` [G, K]: the variants the network sees (its r, gate and scale are [G, K])."""
        net_mask = vmask
        if screen is not None:
            net_mask, = screened(screen, vmask)
            if annotations is not None:
                annotations, = screened(screen, annotations)
        scale = self.gate(annotations, net_mask) * self.r[...] * net_mask
        out = {"scale": scale, "conv_w": self.conv_w[...], "conv_b": self.conv_b[...],
               "w1": self.w1[...], "b1": self.b1[...], "w2": self.w2[...], "b2": self.b2[...]}
        if self.linear_init == "elastic_net":
            if linear is None:
                raise ValueError("linear_init='elastic_net' needs the context's lin and lin_b")
            lin, lin_b = linear["lin"], linear["lin_b"]
            if self.linear_trainable:
                lin, lin_b = lin + self.lin_delta[...], lin_b + self.lin_b_delta[...]
            out["lin"], out["lin_b"] = lin * vmask, lin_b
            out.update({k: v for k, v in linear.items() if k.startswith("epi_")})
        if screen is not None:
            out["screen"] = screen
        return out

    def linear_context(self, context: GenoNetContext):
        if self.linear_init != "elastic_net":
            return None
        return linear_part(context)

    def l1(self, vmask, screen=None):
        """Per-gene L1 norm of the residual scales r [G] (the gate sets its per-variant weight)."""
        if screen is not None:
            vmask, = screened(screen, vmask)
        return jnp.sum(jnp.abs(self.r[...]) * vmask, -1)

    def __call__(self, dosage, context: GenoNetContext, *, offset=None, deterministic: bool = True,
                 key=None):
        vmask = context.vmask
        params = self.effective_params(context.annotations, vmask, self.linear_context(context),
                                       context.screen)
        return forward(params, dosage, context.mu, context.sd, vmask, linear_skip=self.linear_skip,
                       dropout=0.0 if deterministic else self.dropout, key=key, offset=offset)
