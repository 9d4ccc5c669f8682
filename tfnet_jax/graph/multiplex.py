"""Multiplex -> one `GraphBlocks` per layer over the shared node index (and, for the SIGN
encoder, multi-hop propagated node features computed once).

Each layer becomes a directed graph holding both directions of every undirected edge plus
a self-loop per node (so isolated genes keep their own state). Edge weights are
normalised per receiving node to sum to 1, which puts dense and sparse layers on one
scale. Edges are sorted by receiver (then sender) and split into `num_shards` equal
receiver ranges (one per device; see tfnet_jax.graph.attention); every shard's edge list
is padded to one static length (rounded up to `edge_multiple`) so jit compiles once.
"""
from __future__ import annotations

import numpy as np

from tfnet_jax.data.dataset import NetworkLayer
from tfnet_jax.graph.blocks import GraphBlocks, bound_sizes


def _round_up(value: int, multiple: int) -> int:
    return int(-(-value // multiple) * multiple)


def directed_edges(layer: NetworkLayer, num_nodes: int):
    """(senders, receivers, weights): symmetric, self-looped, receiver-normalised, sorted by
    (receiver, sender)."""
    loops = np.arange(num_nodes, dtype=np.int32)
    # A node's self-loop weighs as much as its strongest edge (1 when isolated).
    strongest = np.zeros(num_nodes, dtype=np.float32)
    np.maximum.at(strongest, layer.senders, layer.weights)
    np.maximum.at(strongest, layer.receivers, layer.weights)
    loop_weights = np.where(strongest > 0, strongest, 1.0).astype(np.float32)

    senders = np.concatenate([layer.senders, layer.receivers, loops]).astype(np.int32)
    receivers = np.concatenate([layer.receivers, layer.senders, loops]).astype(np.int32)
    weights = np.concatenate([layer.weights, layer.weights, loop_weights]).astype(np.float32)
    incoming = np.bincount(receivers, weights=weights, minlength=num_nodes)
    weights = (weights / incoming[receivers]).astype(np.float32)
    order = np.lexsort((senders, receivers))
    return senders[order], receivers[order], weights[order]


def layer_to_blocks(layer: NetworkLayer, num_nodes: int, num_shards: int = 1,
                    edge_multiple: int = 1024) -> GraphBlocks:
    """One layer's edges over `num_nodes + 1` node slots (the last is padding), padded up to a
    multiple of `num_shards` and split into that many receiver shards."""
    senders, receivers, weights = directed_edges(layer, num_nodes)
    shard_nodes = -(-(num_nodes + 1) // num_shards)
    bounds = np.searchsorted(receivers, np.arange(num_shards + 1) * shard_nodes)
    edge_budget = _round_up(int(np.diff(bounds).max()) + 1, edge_multiple)
    indptr = np.zeros((num_shards, shard_nodes + 1), dtype=np.int32)
    block_senders = np.zeros((num_shards, edge_budget), dtype=np.int32)
    block_receivers = np.full((num_shards, edge_budget), shard_nodes, dtype=np.int32)
    log_weights = np.zeros((num_shards, edge_budget), dtype=np.float32)
    for s in range(num_shards):
        lo, hi = bounds[s], bounds[s + 1]
        local = receivers[lo:hi] - s * shard_nodes
        indptr[s] = np.searchsorted(local, np.arange(shard_nodes + 1))
        block_senders[s, :hi - lo] = senders[lo:hi]
        block_receivers[s, :hi - lo] = local
        log_weights[s, :hi - lo] = np.log(weights[lo:hi] + np.float32(1e-9))
    # Receptive-field bounds (tfnet_jax.graph.blocks): the k largest in-degrees summed.
    top = np.cumsum(np.sort(np.bincount(receivers, minlength=shard_nodes * num_shards))[::-1])
    top_degree_sums = tuple(int(top[k - 1]) for k in bound_sizes(shard_nodes * num_shards))
    return GraphBlocks(indptr, block_senders, block_receivers, log_weights, top_degree_sums)


def multiplex_graphs(layers: list[NetworkLayer], num_nodes: int, num_shards: int = 1,
                     edge_multiple: int = 1024) -> list[GraphBlocks]:
    """One `GraphBlocks` per layer, all over the same padded node slots."""
    return [layer_to_blocks(layer, num_nodes, num_shards, edge_multiple) for layer in layers]


def normalised_adjacency(layer: NetworkLayer, num_nodes: int):
    """Â = D^-1/2 (A + I) D^-1/2 as a scipy CSR matrix [num_nodes, num_nodes] (GCN/SGC form).

    A holds each undirected edge's weight in both directions; D is the row sum of A + I.
    """
    import scipy.sparse as sp

    rows = np.concatenate([layer.senders, layer.receivers]).astype(np.int64)
    cols = np.concatenate([layer.receivers, layer.senders]).astype(np.int64)
    weights = np.concatenate([layer.weights, layer.weights]).astype(np.float64)
    adjacency = sp.coo_matrix((weights, (rows, cols)), shape=(num_nodes, num_nodes)).tocsr()
    adjacency = adjacency + sp.identity(num_nodes, dtype=np.float64, format="csr")
    scale = 1.0 / np.sqrt(np.asarray(adjacency.sum(axis=1)).ravel())
    return sp.diags(scale) @ adjacency @ sp.diags(scale)


def propagated_features(layers: list[NetworkLayer], features: np.ndarray, hops: int) -> np.ndarray:
    """SIGN/SGC inputs, computed once: [L, hops + 1, N + 1, F] = X, ÂX, ..., Â^hops X per layer.

    `features` is [N + 1, F] with a padding last row, which stays as given (zeros).
    """
    x = np.asarray(features, dtype=np.float64)
    num_nodes = x.shape[0] - 1
    out = np.empty((len(layers), hops + 1) + x.shape, dtype=np.float32)
    for i, layer in enumerate(layers):
        a_hat = normalised_adjacency(layer, num_nodes)
        h = x[:num_nodes]
        out[i, 0] = x
        for k in range(1, hops + 1):
            h = a_hat @ h
            out[i, k, :num_nodes], out[i, k, num_nodes] = h, x[num_nodes]
    return out
