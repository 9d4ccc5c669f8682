"""Multiplex -> one padded jraph.GraphsTuple per layer over the shared node index (and, for
the SIGN encoder, multi-hop propagated node features computed once).

Each layer becomes a directed graph holding both directions of every undirected edge plus
a self-loop per node (so isolated genes keep their own state). Edge weights are
normalised per receiving node to sum to 1, which puts dense and sparse layers on one
scale. Node and edge counts are padded with jraph.pad_with_graphs to static budgets
(one padding node; edge counts rounded up) so jit compiles once per budget. Edges are
sorted by receiver (padding edges, which point at the padding node, come last).
"""
from __future__ import annotations

import jraph
import numpy as np

from tfnet_jax.data.dataset import NetworkLayer


def _round_up(value: int, multiple: int) -> int:
    return int(-(-value // multiple) * multiple)


def layer_to_graph(layer: NetworkLayer, num_nodes: int, edge_multiple: int = 1024) -> jraph.GraphsTuple:
    """Symmetric, self-looped, receiver-normalised, padded GraphsTuple of one layer.

    Padded size: `num_nodes + 1` nodes and edges rounded up to `edge_multiple`. The
    graph's `edges` are the normalised weights, shape [E_pad]; padding edges weigh 0.
    """
    loops = np.arange(num_nodes, dtype=np.int32)
    # A node's self-loop weighs as much as its strongest edge (1 when isolated).
    strongest = np.zeros(num_nodes, dtype=np.float32)
    np.maximum.at(strongest, layer.senders, layer.weights)
    np.maximum.at(strongest, layer.receivers, layer.weights)
    loop_weights = np.where(strongest > 0, strongest, 1.0).astype(np.float32)

    senders = np.concatenate([layer.senders, layer.receivers, loops]).astype(np.int32)
    receivers = np.concatenate([layer.receivers, layer.senders, loops]).astype(np.int32)
    weights = np.concatenate([layer.weights, layer.weights, loop_weights]).astype(np.float32)
    incoming = np.zeros(num_nodes, dtype=np.float64)
    np.add.at(incoming, receivers, weights)
    weights = (weights / incoming[receivers]).astype(np.float32)
    # Receiver-sorted edges let segment sums run as sorted reductions (much faster on CPU).
    order = np.lexsort((senders, receivers))
    senders, receivers, weights = senders[order], receivers[order], weights[order]

    graph = jraph.GraphsTuple(
        nodes=None, edges=weights, senders=senders, receivers=receivers,
        n_node=np.array([num_nodes], dtype=np.int32),
        n_edge=np.array([len(senders)], dtype=np.int32), globals=None)
    edge_budget = _round_up(len(senders) + 1, edge_multiple)
    return jraph.pad_with_graphs(graph, n_node=num_nodes + 1, n_edge=edge_budget, n_graph=2)


def multiplex_graphs(layers: list[NetworkLayer], num_nodes: int,
                     edge_multiple: int = 1024) -> list[jraph.GraphsTuple]:
    """One padded GraphsTuple per layer, all over the same `num_nodes + 1` node slots."""
    return [layer_to_graph(layer, num_nodes, edge_multiple) for layer in layers]


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
