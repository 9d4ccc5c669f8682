"""Graph layouts the attention layers run on, and a training step's receptive field.

`GraphBlocks` holds one network layer's directed edges (both directions of every
undirected edge plus self-loops, built by `tfnet_jax.graph.multiplex`) split by receiver
into S equal node ranges, one per device of the training mesh: shard s owns receivers
[s*n, (s+1)*n) as CSR rows and their incoming edges (senders are global node ids).

A training step needs the gene embeddings only at its batch's genes. With K stacked layers,
layer K must be exact at those genes, layer K-1 at their in-neighbours, and so on
(`receptive_field`). Where that field is small (`field_capacities`), a layer runs on a
`SubGraph` (`restrict`): only the field's rows as receivers, senders renumbered into the
previous layer's rows, in static shapes bounded by the graph's largest in-degrees (so the
bound always holds and jit compiles once per batch size).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# `top_degree_sums` is sampled at sizes ceil(2^(i / STEPS_PER_OCTAVE)): bounds ~19% loose at most.
STEPS_PER_OCTAVE = 4


def bound_sizes(num_rows: int) -> list[int]:
    """The row counts at which `GraphBlocks.top_degree_sums` is sampled (the last is num_rows)."""
    sizes, i = [], 0
    while not sizes or sizes[-1] < num_rows:
        sizes.append(min(num_rows, math.ceil(2 ** (i / STEPS_PER_OCTAVE))))
        i += 1
    return sorted(set(sizes))


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class GraphBlocks:
    """One network layer's edges in S receiver shards of n nodes each (a jax pytree)."""
    indptr: np.ndarray       # [S, n + 1] int32: CSR row pointers of each shard's receivers
    senders: np.ndarray      # [S, E] int32: global sender ids (padding: 0)
    receivers: np.ndarray    # [S, E] int32: shard-local receiver ids (padding: n)
    log_weights: np.ndarray  # [S, E] float32: log of the receiver-normalised weight (padding: 0)
    # Static: the sum of the k largest in-degrees at k = bound_sizes(padded_nodes).
    top_degree_sums: tuple = field(default=(), metadata=dict(static=True))

    @property
    def num_shards(self) -> int:
        return self.indptr.shape[0]

    @property
    def shard_nodes(self) -> int:
        return self.indptr.shape[1] - 1

    @property
    def padded_nodes(self) -> int:
        return self.num_shards * self.shard_nodes

    @property
    def num_edges(self) -> int:
        """Real (unpadded) directed edges, self-loops included."""
        return int(np.asarray(self.indptr)[:, -1].sum())

    def edge_bound(self, rows: int) -> int:
        """At most how many edges point into `rows` distinct receivers (so also at most how
        many distinct senders they have)."""
        for size, total in zip(bound_sizes(self.padded_nodes), self.top_degree_sums):
            if size >= rows:
                return total
        return self.top_degree_sums[-1]


class SubGraph(NamedTuple):
    """A layer's edges into a few receiver rows, senders renumbered into the input rows."""
    receivers: jax.Array    # [C] int32: each receiver's position among the input rows
    indptr: jax.Array       # [C + 1] int32: CSR row pointers (padding rows: no edges)
    senders: jax.Array      # [E] int32: each edge's sender position among the input rows (padding 0)
    edge_rows: jax.Array    # [E] int32: each edge's receiver row (padding: C)
    log_weights: jax.Array  # [E] float32 (padding: 0)


def receptive_field(graph: GraphBlocks, queried, depth: int) -> list:
    """Masks [M] int32 of the receivers each of `depth` stacked layers must compute so that
    the last layer's output is exact at the `queried` node ids (masks[-1]); layer k - 1 needs
    the in-neighbours of layer k's (self-loops keep each node in its own field)."""
    mask = jnp.zeros(graph.padded_nodes, jnp.int32).at[queried].set(1)
    masks = [mask]
    senders = jnp.asarray(graph.senders).reshape(-1)
    for _ in range(depth - 1):
        # Per edge: is its receiver needed? (the padding receiver n never is)
        local = jnp.pad(mask.reshape(graph.num_shards, -1), ((0, 0), (0, 1)))
        edge_needed = jnp.take_along_axis(local, jnp.asarray(graph.receivers), axis=1)
        mask = jnp.zeros_like(mask).at[senders].max(edge_needed.reshape(-1))
        masks.append(mask)
    return masks[::-1]


def field_capacities(graph: GraphBlocks, num_queried: int, depth: int) -> list:
    """Per stacked layer, a static bound on its receptive field's rows when that is small
    enough (at most half the nodes) to run the layer on a `SubGraph`, else None (the layer
    runs over every row, skipping the rows outside the field)."""
    rows = [min(num_queried, graph.padded_nodes)]
    for _ in range(depth - 1):
        rows.append(min(graph.padded_nodes, graph.edge_bound(rows[-1])))
    return [r if r <= graph.padded_nodes // 2 else None for r in rows[::-1]]


def restrict(graph: GraphBlocks, rows, count, position) -> SubGraph:
    """The edges into `rows` [C] (global ids; the first `count` are real, the rest padding),
    with senders given as `position[global id]` (their row in the layer's input)."""
    capacity = rows.shape[0]
    edge_capacity = max(1, graph.edge_bound(capacity))
    indptr = jnp.asarray(graph.indptr)
    n, width = graph.shard_nodes, graph.senders.shape[1]
    real_row = jnp.arange(capacity) < count
    safe = jnp.where(real_row, rows, 0)
    shard, local = safe // n, safe % n
    start = indptr[shard, local]
    degree = jnp.where(real_row, indptr[shard, local + 1] - start, 0)
    sub_indptr = jnp.concatenate([jnp.zeros(1, jnp.int32), jnp.cumsum(degree, dtype=jnp.int32)])
    edge = jnp.arange(edge_capacity, dtype=jnp.int32)
    real = edge < sub_indptr[-1]
    row = jnp.clip(jnp.searchsorted(sub_indptr, edge, side="right") - 1, 0, capacity - 1)
    flat = jnp.where(real, shard[row] * width + start[row] + edge - sub_indptr[row], 0)
    senders = jnp.asarray(graph.senders).reshape(-1)[flat]
    log_weights = jnp.asarray(graph.log_weights).reshape(-1)[flat]
    return SubGraph(receivers=position[safe], indptr=sub_indptr,
                    senders=jnp.where(real, position[senders], 0),
                    edge_rows=jnp.where(real, row, capacity).astype(jnp.int32),
                    log_weights=jnp.where(real, log_weights, 0.0))
