"""Multiplex -> one `GraphBlocks` per layer over the shared node index (and, for the SIGN
encoder, multi-hop propagated node features computed once).

Each layer becomes a directed graph holding both directions of every undirected edge plus
a self-loop per node (so isolated genes keep their own state). Edge weights are
normalised per receiving node to sum to 1, which puts dense and sparse layers on one
scale. Edges are sorted by receiver (then sender) and split into `num_shards` equal
receiver ranges (one per device; see tfnet_jax.graph.attention); every shard's edge list
is padded to one static length (rounded up to `edge_multiple`) so jit compiles once.

`Multiplex` converts the multiplex to and from jraph `GraphsTuple`s, the interchange format
(the optional extra `tfnet_jax[jraph]`); compute never runs on them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tfnet_jax.data.networks import NetworkLayer
from tfnet_jax.errors import ConfigError, DataError
from tfnet_jax.graph.blocks import GraphBlocks, bound_sizes

if TYPE_CHECKING:
    import jraph


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


def _import_jraph():
    # jraph is an optional extra: imported only where a conversion needs it.
    try:
        import jraph
    except ModuleNotFoundError as err:
        if err.name != "jraph":  # jraph is there but broken: show its own error
            raise
        raise ConfigError("jraph is not installed: pip install tfnet_jax[jraph]") from None
    return jraph


def _layer_from_graph(name: str, graph, num_genes: int) -> NetworkLayer:
    """Check one single-graph `GraphsTuple` over `num_genes` nodes; return its canonical layer."""
    where = f"jraph layer '{name}'"
    n_node = np.asarray([] if graph.n_node is None else graph.n_node).reshape(-1)
    if n_node.size != 1:
        raise DataError(f"{where}: holds {n_node.size} graphs (n_node={n_node.tolist()}); "
                        f"expected one graph per layer")
    if int(n_node[0]) != num_genes:
        raise DataError(f"{where}: n_node is {int(n_node[0])}; expected {num_genes} (one node "
                        f"per gene)")
    ends = {}
    for field in ("senders", "receivers"):
        index = np.asarray(getattr(graph, field))
        if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
            raise DataError(f"{where}: {field} must be a 1-D integer array (got {index.dtype} "
                            f"{list(index.shape)})")
        bad = index[(index < 0) | (index >= num_genes)]
        if bad.size:
            raise DataError(f"{where}: {field[:-1]} index {int(bad[0])} out of range for "
                            f"{num_genes} genes")
        ends[field] = index.astype(np.int64)
    senders, receivers = ends["senders"], ends["receivers"]
    num_edges = senders.size
    if receivers.size != num_edges:
        raise DataError(f"{where}: {num_edges} senders but {receivers.size} receivers")
    if graph.n_edge is not None and np.asarray(graph.n_edge).reshape(-1).tolist() != [num_edges]:
        raise DataError(f"{where}: n_edge is {np.asarray(graph.n_edge).tolist()} but it holds "
                        f"{num_edges} edges")
    if graph.edges is None:
        weights = np.ones(num_edges, dtype=np.float32)
    else:
        weights = np.asarray(graph.edges)
        if weights.shape != (num_edges,) or not np.issubdtype(weights.dtype, np.number):
            raise DataError(f"{where}: edges must be the weights, numeric of shape "
                            f"[{num_edges}] (got {weights.dtype} {list(weights.shape)})")
        weights = weights.astype(np.float32)
        bad = weights[~(np.isfinite(weights) & (weights > 0))]
        if bad.size:
            raise DataError(f"{where}: edge weight {bad[0]} is not finite and > 0")
    # One undirected edge per pair (max weight over its copies), no self-loops,
    # senders < receivers, sorted by (sender, receiver): the NetworkLayer convention.
    keep = senders != receivers
    senders, receivers, weights = senders[keep], receivers[keep], weights[keep]
    pair = np.minimum(senders, receivers) * num_genes + np.maximum(senders, receivers)
    order = np.lexsort((weights, pair))  # the last row of each pair holds its max weight
    pair, weights = pair[order], weights[order]
    last = np.append(pair[1:] != pair[:-1], True) if pair.size else np.zeros(0, dtype=bool)
    pair = pair[last]
    return NetworkLayer(name=name, senders=(pair // num_genes).astype(np.int32),
                        receivers=(pair % num_genes).astype(np.int32), weights=weights[last])


# eq=False: field-wise == would compare numpy arrays, which is ambiguous.
@dataclass(frozen=True, eq=False)
class Multiplex:
    """The multiplex gene graph: one undirected `NetworkLayer` per network over one shared
    node index `genes` (str [N]); jraph `GraphsTuple`s are its interchange format.

    jraph convention (both directions): one `GraphsTuple` per layer, each a single graph over
    all N genes in `genes` order (isolated genes included): n_node=[N], n_edge=[E],
    senders/receivers int32 [E] with each undirected edge stored once (senders < receivers,
    no self-loops), edges = float32 weights [E] (> 0), nodes = the optional node features
    [N, F] or None, globals = None. Arrays are numpy (no device transfer).
    """

    genes: np.ndarray  # str [N]
    layers: tuple[NetworkLayer, ...]

    @classmethod
    def from_data(cls, data) -> "Multiplex":
        """The multiplex of a `PerturbationData` (its `genes` and `layers`)."""
        return cls(genes=np.asarray(data.genes), layers=tuple(data.layers))

    def to_graphs_tuple(self, node_features: np.ndarray | None = None
                        ) -> dict[str, "jraph.GraphsTuple"]:
        """Layer name -> `GraphsTuple`, in layer order (see the class docstring)."""
        jraph = _import_jraph()
        num_genes = len(self.genes)
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise DataError(f"jraph export: layer names must be unique (got {names})")
        if node_features is not None:
            node_features = np.asarray(node_features)
            if node_features.ndim != 2 or node_features.shape[0] != num_genes:
                raise DataError(f"jraph export: node_features must be [{num_genes}, F] (got "
                                f"{list(node_features.shape)})")
        return {layer.name: jraph.GraphsTuple(
                    nodes=node_features, edges=np.asarray(layer.weights, dtype=np.float32),
                    senders=np.asarray(layer.senders, dtype=np.int32),
                    receivers=np.asarray(layer.receivers, dtype=np.int32),
                    n_node=np.array([num_genes], dtype=np.int32),
                    n_edge=np.array([layer.num_edges], dtype=np.int32), globals=None)
                for layer in self.layers}

    @classmethod
    def from_graphs_tuple(cls, graphs, genes, names: Sequence[str] | None = None) -> "Multiplex":
        """A multiplex from `GraphsTuple`s over `genes`: a dict name -> GraphsTuple, or a
        sequence of them (named by `names`, else layer0, layer1, ...).

        Edges may come in either or both directions, repeated, or as self-loops: each pair
        becomes one undirected edge with its largest weight; self-loops are dropped. `edges`
        None means weight 1. `nodes` and `globals` are ignored.
        """
        jraph = _import_jraph()
        genes = np.asarray(genes)
        if isinstance(graphs, jraph.GraphsTuple):  # a NamedTuple, so also a Sequence
            graphs = [graphs]
        if isinstance(graphs, Mapping):
            if names is not None:
                raise ConfigError("Multiplex.from_graphs_tuple: names= is only for a sequence "
                                  "of GraphsTuples (a dict is keyed by name)")
            names, graphs = [str(k) for k in graphs], list(graphs.values())
        else:
            graphs = list(graphs)
            names = [f"layer{i}" for i in range(len(graphs))] if names is None else list(names)
            if len(names) != len(graphs) or len(set(names)) != len(names):
                raise DataError(f"jraph import: {len(graphs)} graphs need as many unique names "
                                f"(got {names})")
        return cls(genes=genes, layers=tuple(_layer_from_graph(name, graph, len(genes))
                                             for name, graph in zip(names, graphs)))
