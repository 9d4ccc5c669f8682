"""TranscriptionNet (arXiv 2403.02724), stage 1: multiplex graph attention -> signatures.

Per network layer a stack of graph-attention layers turns node inputs into
network-specific gene features; a semantic attention fuses the layers into one gene
embedding (per-gene, per-layer weights that can be read out); one FunDNN-style residual
MLP head per perturbation type maps the perturbed gene's embedding to its readout vector.
Outputs are in the standardised target space of each type.

Two optional parts go beyond the paper's first stage: an on-target term (a learned
per-type shift of the perturbed gene's own readout column, when it is a readout) and the
GenSAN cross-type refinement (`tfnet_jax.models.gensan`), trained jointly.

`model.encoder` picks the per-layer graph encoder: `gat` (graph attention over the edges at
every step) or `sign` (SIGN/SGC style: one Linear per hop over node features propagated
X, ÂX, ..., Â^k X once before training, so a step's cost does not grow with the edge count).

The context (`TranscriptionNetContext`, a pytree) holds what every example shares:
`features` [N+1, F] (or None), `graphs` (one `tfnet_jax.graph.attention.GraphBlocks` per layer,
over M >= N+1 padded node slots split into one receiver shard per device), `propagated`
[L, K+1, N+1, F] (encoder=sign only), and for the optional parts `readout_col` [N+1] (the
readout column of each gene, -1 if none) and `observed` [T, M, R] / `observed_mask` [T, M] /
`observed_slot` [N+1] (observed training signatures by gene slot, standardised).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx, struct

from tfnet_jax.graph.attention import aggregate
from tfnet_jax.graph.blocks import (GraphBlocks, SubGraph, field_capacities, receptive_field,
                                    restrict)
from tfnet_jax.models.gensan import CrossTypeRefiner, RefinerConfig


class GraphAttention(nnx.Module):
    """Multi-head GAT layer whose attention logits are biased by log edge weight.

    x [M, D] over the graph's M padded node slots (row-sharded across devices when the graph
    has one shard per device), or over a SubGraph's input rows; the aggregation is
    `tfnet_jax.graph.attention.aggregate`.
    """

    def __init__(self, dim: int, heads: int, dropout: float, *, rngs: nnx.Rngs):
        if dim % heads:
            raise ValueError(f"model.hidden ({dim}) must be divisible by model.heads ({heads})")
        self.heads, self.head_dim = heads, dim // heads
        self.proj = nnx.Linear(dim, dim, use_bias=False, rngs=rngs)
        init = nnx.initializers.glorot_uniform()
        self.att_src = nnx.Param(init(rngs.params(), (heads, self.head_dim)))
        self.att_dst = nnx.Param(init(rngs.params(), (heads, self.head_dim)))
        self.norm = nnx.LayerNorm(dim, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)

    def __call__(self, x, graph: GraphBlocks | SubGraph, active=None, *, deterministic: bool,
                 rngs=None):
        """-> [M, D], or [C, D] at a SubGraph's receivers. `active` [M] (optional): the rows
        whose output must be exact (the others are skipped)."""
        h = self.proj(x).reshape(x.shape[0], self.heads, self.head_dim)
        score_src = jnp.sum(h * self.att_src[...], axis=-1)
        if isinstance(graph, SubGraph):  # the receivers are some of the input rows
            x, h_dst = x[graph.receivers], h[graph.receivers]
        else:
            h_dst = h
        score_dst = jnp.sum(h_dst * self.att_dst[...], axis=-1)
        out = aggregate(h, score_src, score_dst, graph, active)
        out = jax.nn.elu(out.reshape(x.shape[0], -1))
        out = self.dropout(out, deterministic=deterministic, rngs=rngs)
        return self.norm(x + out)


class LayerFusion(nnx.Module):
    """Semantic attention across network layers (or a plain mean, for ablation)."""

    def __init__(self, dim: int, attention_dim: int, mode: str, *, rngs: nnx.Rngs):
        if mode not in ("attention", "mean"):
            raise ValueError(f"model.fusion must be 'attention' or 'mean', got {mode!r}")
        self.mode = mode
        self.proj = nnx.Linear(dim, attention_dim, rngs=rngs)
        self.query = nnx.Param(nnx.initializers.normal(0.1)(rngs.params(), (attention_dim,)))

    def __call__(self, per_layer):  # [L, N, D] -> ([N, D], weights [L, N])
        if self.mode == "mean":
            weights = jnp.full(per_layer.shape[:2], 1.0 / per_layer.shape[0])
        else:
            scores = jnp.tanh(self.proj(per_layer)) @ self.query[...]
            weights = jax.nn.softmax(scores, axis=0)
        return jnp.einsum("ln,lnd->nd", weights, per_layer), weights


class ResidualBlock(nnx.Module):
    def __init__(self, dim: int, dropout: float, *, rngs: nnx.Rngs):
        self.norm = nnx.LayerNorm(dim, rngs=rngs)
        self.inner = nnx.Linear(dim, dim, rngs=rngs)
        self.outer = nnx.Linear(dim, dim, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)

    def __call__(self, x, *, deterministic: bool, rngs=None):
        h = jax.nn.gelu(self.inner(self.norm(x)))
        return x + self.outer(self.dropout(h, deterministic=deterministic, rngs=rngs))


class FunDNNHead(nnx.Module):
    """Residual MLP from a gene embedding to one perturbation type's readout vector."""

    def __init__(self, in_dim: int, hidden: int, blocks: int, out_dim: int, dropout: float,
                 *, rngs: nnx.Rngs):
        self.inp = nnx.Linear(in_dim, hidden, rngs=rngs)
        self.blocks = nnx.List([ResidualBlock(hidden, dropout, rngs=rngs) for _ in range(blocks)])
        self.norm = nnx.LayerNorm(hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, out_dim, rngs=rngs)

    def __call__(self, x, *, deterministic: bool, rngs=None):
        h = jax.nn.gelu(self.inp(x))
        for block in self.blocks:
            h = block(h, deterministic=deterministic, rngs=rngs)
        return self.out(self.norm(h))


class SignEncoder(nnx.Module):
    """One network layer's SIGN encoder: sum over hops of Linear_k(Â^k X), then ELU, dropout
    and LayerNorm -> [N, D]. (A sum of per-hop Linears is a Linear over their concatenation.)"""

    def __init__(self, feature_dim: int, hops: int, dim: int, dropout: float, *, rngs: nnx.Rngs):
        self.hops = nnx.List([nnx.Linear(feature_dim, dim, use_bias=k == 0, rngs=rngs)
                              for k in range(hops + 1)])
        self.dropout = nnx.Dropout(dropout)
        self.norm = nnx.LayerNorm(dim, rngs=rngs)

    def __call__(self, propagated, extra=None, *, deterministic: bool, rngs=None):  # [K+1, N, F]
        h = sum(linear(propagated[k]) for k, linear in enumerate(self.hops))
        if extra is not None:
            h = h + extra
        h = self.dropout(jax.nn.elu(h), deterministic=deterministic, rngs=rngs)
        return self.norm(h)


@struct.dataclass
class TranscriptionNetContext:
    """What every example shares (see the module docstring); None: not used by this run."""
    features: Any  # [N+1, F] or None
    graphs: Any  # list of GraphBlocks, one per network layer
    propagated: Any = None
    readout_col: Any = None
    observed: Any = None
    observed_mask: Any = None
    observed_slot: Any = None


@dataclasses.dataclass(frozen=True)
class TranscriptionNetModelConfig:
    num_nodes: int
    num_layers: int
    num_types: int
    num_readouts: int
    feature_dim: int | None
    node_input: str = "auto"
    hidden: int = 64
    gat_layers: int = 3
    heads: int = 4
    fusion: str = "attention"
    fusion_dim: int = 32
    head_hidden: int = 256
    head_blocks: int = 2
    dropout: float = 0.2
    on_target: bool = False
    on_target_init: tuple[float, ...] | None = None  # per type; None: zeros
    linear_skip: bool = False
    refine: RefinerConfig | None = None
    encoder: str = "gat"
    hops: int = 2


class TranscriptionNet(nnx.Module):
    def __init__(self, config: TranscriptionNetModelConfig, *, rngs: nnx.Rngs):
        c = config
        node_input, feature_dim, hidden = c.node_input, c.feature_dim, c.hidden
        if c.encoder not in ("gat", "sign"):
            raise ValueError(f"model.encoder must be 'gat' or 'sign', got {c.encoder!r}")
        if node_input == "auto":
            node_input = "features" if feature_dim else "embedding"
        if node_input not in ("features", "embedding", "both"):
            raise ValueError(f"model.node_input must be auto/features/embedding/both, got {node_input!r}")
        if node_input in ("features", "both") and not feature_dim:
            raise ValueError(f"model.node_input={node_input!r} needs node features, and the data has none")
        self.node_input, self.encoder = node_input, c.encoder
        if c.encoder == "sign":
            if node_input == "embedding":
                raise ValueError("model.encoder=sign propagates node features; model.node_input="
                                 "embedding (or data without node features) leaves none")
            if c.hops < 1:
                raise ValueError(f"model.hops must be >= 1, got {c.hops}")
            # Hop 0 is the features' own projection; `both` adds the learned table to it.
            self.feature_proj = None
            self.embedding = (nnx.Embed(c.num_nodes, hidden, rngs=rngs)
                              if node_input == "both" else None)
            self.sign = nnx.List([SignEncoder(feature_dim, c.hops, hidden, c.dropout, rngs=rngs)
                                  for _ in range(c.num_layers)])
            self.gat = None
        else:
            self.feature_proj = (nnx.Linear(feature_dim, hidden, rngs=rngs)
                                 if node_input in ("features", "both") else None)
            self.embedding = (nnx.Embed(c.num_nodes, hidden, rngs=rngs)
                              if node_input in ("embedding", "both") else None)
            self.gat = nnx.List([
                nnx.List([GraphAttention(hidden, c.heads, c.dropout, rngs=rngs) for _ in range(c.gat_layers)])
                for _ in range(c.num_layers)])
            self.sign = None
        self.fusion = LayerFusion(hidden, c.fusion_dim, c.fusion, rngs=rngs)
        self.heads = nnx.List([
            FunDNNHead(hidden, c.head_hidden, c.head_blocks, c.num_readouts, c.dropout, rngs=rngs)
            for _ in range(c.num_types)])
        # Started at a data estimate (when given): Adam moves a zero start only ~lr per step.
        start = jnp.zeros((c.num_types,)) if c.on_target_init is None else jnp.asarray(c.on_target_init)
        self.on_target = nnx.Param(start.astype(jnp.float32)) if c.on_target else None
        if c.linear_skip and not feature_dim:
            raise ValueError("model.linear_skip needs node features, and the data has none")
        # A ridge-like linear path from the perturbed gene's features, per type.
        self.skip = (nnx.List([nnx.Linear(feature_dim, c.num_readouts, kernel_init=nnx.initializers.zeros,
                                          rngs=rngs) for _ in range(c.num_types)])
                     if c.linear_skip else None)
        if c.refine is not None and (c.refine.num_types, c.refine.num_readouts) != (c.num_types,
                                                                                    c.num_readouts):
            raise ValueError(f"model.refine: {c.refine.num_types} types x {c.refine.num_readouts} "
                             f"readouts, the model has {c.num_types} x {c.num_readouts}")
        self.refiner = CrossTypeRefiner(c.refine, rngs=rngs) if c.refine is not None else None

    def init_linear_start(self, weights) -> None:
        """Start at per-type linear maps from the perturbed gene's features (e.g. ridge):
        `weights` [(kernel [F, R], bias [R])] per type go into the skip path and each head's
        last layer is zeroed, so training starts from them (+ on-target) and learns only what
        improves on them."""
        if self.skip is None:
            raise ValueError("model.skip_init=ridge needs model.linear_skip=true")
        for skip, head, (kernel, bias) in zip(self.skip, self.heads, weights, strict=True):
            skip.kernel[...] = jnp.asarray(kernel)
            skip.bias[...] = jnp.asarray(bias)
            head.out.kernel[...] = jnp.zeros_like(head.out.kernel[...])

    def node_inputs(self, features):
        parts = []
        if self.feature_proj is not None:
            parts.append(self.feature_proj(features))
        if self.embedding is not None:
            parts.append(self.embedding.embedding[...])
        return sum(parts)

    def embed(self, features, graphs, propagated=None, queried=None, *, deterministic: bool = True,
              rngs=None):
        """Fused gene embeddings [M, D] and per-layer fusion weights [L, M] (M >= N + 1 node
        slots: the graphs' padded count, or N + 1 for encoder=sign); with `queried` node ids
        [B], the embeddings [B, D] of those genes and weights [L, B] (encoder=gat computes
        only their receptive field: a training step's saving).

        encoder=sign reads `propagated` [L, K+1, N, F] (the context's) instead of the graphs."""
        if self.sign is not None:
            if propagated is None:
                raise ValueError("model.encoder=sign needs the context's 'propagated' features "
                                 "(tfnet_jax.tasks.transcriptionnet.prepare.prepare(..., hops=K))")
            extra = None if self.embedding is None else self.embedding.embedding[...]
            per_layer = jnp.stack([encoder(propagated[i], extra, deterministic=deterministic,
                                           rngs=rngs) for i, encoder in enumerate(self.sign)])
            return self.fusion(per_layer if queried is None else per_layer[:, queried])
        x = self.node_inputs(features)
        # Up to the graphs' padded node slots (a multiple of the device count).
        x = jnp.pad(x, ((0, graphs[0].padded_nodes - x.shape[0]), (0, 0)))
        per_layer = [self._run_stack(stack, x, graph, queried, deterministic, rngs)
                     for stack, graph in zip(self.gat, graphs)]
        return self.fusion(jnp.stack(per_layer))

    @staticmethod
    def _run_stack(stack, x, graph: GraphBlocks, queried, deterministic, rngs):
        """One network layer's GAT stack -> [M, D], or [B, D] at the `queried` genes (then
        each layer computes only its receptive field: over every row, skipping the others,
        while that field is large, then on a SubGraph of its rows)."""
        if queried is None:
            for layer in stack:
                x = layer(x, graph, deterministic=deterministic, rngs=rngs)
            return x
        num_nodes = graph.padded_nodes
        position = None  # None: x holds every node's row; else the row of each node id in x
        for layer, mask, capacity in zip(stack, receptive_field(graph, queried, len(stack)),
                                         field_capacities(graph, queried.shape[0], len(stack))):
            if capacity is None:
                x = layer(x, graph, mask, deterministic=deterministic, rngs=rngs)
                continue
            rows = jnp.nonzero(mask, size=capacity, fill_value=num_nodes)[0]
            inputs = jnp.arange(num_nodes, dtype=jnp.int32) if position is None else position
            sub = restrict(graph, rows, jnp.sum(mask), inputs)
            x = layer(x, sub, deterministic=deterministic, rngs=rngs)
            position = jnp.zeros(num_nodes, jnp.int32).at[rows].set(
                jnp.arange(capacity, dtype=jnp.int32), mode="drop")
        return x[queried] if position is None else x[position[queried]]

    def __call__(self, context: TranscriptionNetContext, pert_index, pert_type, *,
                 deterministic: bool = True, rngs=None):
        genes, _ = self.embed(context.features, context.graphs, context.propagated,
                              queried=pert_index, deterministic=deterministic, rngs=rngs)
        return self.decode_genes(context, genes, pert_index, pert_type,
                                 deterministic=deterministic, rngs=rngs)

    def decode(self, context: TranscriptionNetContext, embedding, pert_index, pert_type, *,
               deterministic: bool = True, rngs=None):
        """Signatures of the queried genes from the gene embeddings [N, D] (`embed`'s output):
        prediction encodes the graph once per parameter state and decodes every batch from it."""
        return self.decode_genes(context, embedding[pert_index], pert_index, pert_type,
                                 deterministic=deterministic, rngs=rngs)

    def decode_genes(self, context: TranscriptionNetContext, genes, pert_index, pert_type, *,
                     deterministic: bool = True, rngs=None):
        """Signatures [B, R] from the queried genes' own embeddings [B, D]."""
        outputs = jnp.stack([head(genes, deterministic=deterministic, rngs=rngs)
                             for head in self.heads])  # [T, B, R]
        if self.skip is not None:
            own_features = context.features[pert_index]
            outputs = outputs + jnp.stack([skip(own_features) for skip in self.skip])
        if self.on_target is not None:
            own_column = jax.nn.one_hot(context.readout_col[pert_index], outputs.shape[-1],
                                        dtype=outputs.dtype)  # all zeros for col -1
            outputs = outputs + self.on_target[...][:, None, None] * own_column[None]
        if self.refiner is not None:
            slot = context.observed_slot[pert_index]
            return self.refiner(outputs, context.observed[:, slot], context.observed_mask[:, slot],
                                pert_type)
        chooser = jax.nn.one_hot(pert_type, len(self.heads), dtype=outputs.dtype)  # [B, T]
        return jnp.einsum("bt,tbr->br", chooser, outputs)
