"""Multiplex -> one padded jraph.GraphsTuple per layer over the shared node index.

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
