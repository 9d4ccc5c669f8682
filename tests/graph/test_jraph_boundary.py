"""jraph as the multiplex's interchange format: export, import, canonicalisation, bad input."""
import subprocess
import sys

import numpy as np
import pytest

from tfnet_jax.data.networks import NetworkLayer
from tfnet_jax.data.perturbation.container import PerturbationData
from tfnet_jax.errors import ConfigError, DataError
from tfnet_jax.graph.multiplex import Multiplex, multiplex_graphs

GENES = np.array([f"g{i}" for i in range(8)])  # g7 is isolated in every layer


def _layer(name, edges):
    s, r, w = (np.array(c) for c in zip(*edges))
    return NetworkLayer(name=name, senders=s.astype(np.int32), receivers=r.astype(np.int32),
                        weights=w.astype(np.float32))


LAYERS = (_layer("ppi", [(0, 1, 0.5), (0, 3, 2.0), (1, 2, 1.25), (4, 6, 0.1)]),
          _layer("coexpr", [(2, 5, 3.0), (3, 4, 0.75)]),
          _layer("reg", [(0, 6, 1.0), (1, 5, 0.3), (2, 3, 0.9)]))


@pytest.fixture
def jraph():
    return pytest.importorskip("jraph")


def _graph(jraph, senders, receivers, edges=None, n_node=(8,), n_edge=None):
    senders, receivers = np.array(senders, np.int32), np.array(receivers, np.int32)
    return jraph.GraphsTuple(
        nodes=None, edges=None if edges is None else np.array(edges, np.float32),
        senders=senders, receivers=receivers, n_node=np.array(n_node, np.int32),
        n_edge=np.array([len(senders)] if n_edge is None else n_edge, np.int32), globals=None)


def _assert_layers_equal(got, want):
    assert [layer.name for layer in got] == [layer.name for layer in want]
    for a, b in zip(got, want):
        for field in ("senders", "receivers", "weights"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
            assert getattr(a, field).dtype == getattr(b, field).dtype


def test_round_trip_is_exact(jraph):
    data = PerturbationData(genes=GENES, layers=list(LAYERS), readout_genes=GENES[:2],
                            signatures={})
    graphs = Multiplex.from_data(data).to_graphs_tuple()
    assert list(graphs) == ["ppi", "coexpr", "reg"]
    ppi = graphs["ppi"]
    assert isinstance(ppi, jraph.GraphsTuple)
    assert ppi.n_node.tolist() == [8] and ppi.n_edge.tolist() == [4]
    assert ppi.senders.dtype == np.int32 and ppi.edges.dtype == np.float32
    assert ppi.nodes is None and ppi.globals is None
    back = Multiplex.from_graphs_tuple(graphs, GENES)
    assert back.genes.tolist() == GENES.tolist()
    _assert_layers_equal(back.layers, LAYERS)
    # The compute path sees the same blocks.
    for a, b in zip(multiplex_graphs(list(back.layers), 8, num_shards=2, edge_multiple=8),
                    multiplex_graphs(list(LAYERS), 8, num_shards=2, edge_multiple=8)):
        for field in ("indptr", "senders", "receivers", "log_weights"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        assert a.top_degree_sums == b.top_degree_sums


def test_node_features_ride_along(jraph):
    features = np.arange(16, dtype=np.float32).reshape(8, 2)
    graphs = Multiplex(GENES, LAYERS).to_graphs_tuple(node_features=features)
    np.testing.assert_array_equal(graphs["reg"].nodes, features)
    with pytest.raises(DataError, match=r"node_features must be \[8, F\]"):
        Multiplex(GENES, LAYERS).to_graphs_tuple(node_features=features[:7])


def test_hand_made_jraph_graph_is_canonicalised(jraph):
    # Both directions of (0,1) and (3,4) with different weights, (1,2) twice one way,
    # (2,5) only as 5->2, and a self-loop on 6.
    graph = _graph(jraph, senders=[1, 0, 4, 3, 1, 1, 5, 6],
                   receivers=[0, 1, 3, 4, 2, 2, 2, 6],
                   edges=[0.5, 0.25, 1.0, 4.0, 0.7, 0.2, 3.0, 9.0])
    want = _layer("net", [(0, 1, 0.5), (1, 2, 0.7), (2, 5, 3.0), (3, 4, 4.0)])
    (got,) = Multiplex.from_graphs_tuple({"net": graph}, GENES).layers
    _assert_layers_equal([got], [want])
    for a, b in zip(multiplex_graphs([got], 8, edge_multiple=8),
                    multiplex_graphs([want], 8, edge_multiple=8)):
        np.testing.assert_array_equal(a.senders, b.senders)
        np.testing.assert_array_equal(a.log_weights, b.log_weights)


def test_sequence_input_names_and_unit_weights(jraph):
    graph = _graph(jraph, senders=[2, 1], receivers=[0, 0])
    multiplex = Multiplex.from_graphs_tuple([graph, graph], GENES)
    assert [layer.name for layer in multiplex.layers] == ["layer0", "layer1"]
    _assert_layers_equal(multiplex.layers[:1], [_layer("layer0", [(0, 1, 1.0), (0, 2, 1.0)])])
    # A lone GraphsTuple is one layer, not a sequence of its seven fields.
    (only,) = Multiplex.from_graphs_tuple(graph, GENES, names=["ppi"]).layers
    assert only.name == "ppi" and only.num_edges == 2


@pytest.mark.parametrize("kwargs, message", [
    (dict(senders=[0, 12], receivers=[1, 2]), "sender index 12 out of range for 8 genes"),
    (dict(senders=[0, 1], receivers=[1, -1]), "receiver index -1 out of range for 8 genes"),
    (dict(senders=[0, 1], receivers=[1, 2], edges=[1.0, 0.0]), "edge weight 0.0 is not finite"),
    (dict(senders=[0, 1], receivers=[1, 2], edges=[1.0, -2.0]), "edge weight -2.0 is not"),
    (dict(senders=[0, 1], receivers=[1, 2], edges=[np.nan, 1.0]), "edge weight nan is not"),
    (dict(senders=[0, 1], receivers=[1, 2], n_node=[4, 4], n_edge=[1, 1]), "holds 2 graphs"),
    (dict(senders=[0, 1], receivers=[1, 2], n_node=[9]), "n_node is 9; expected 8"),
    (dict(senders=[0, 1], receivers=[1, 2], n_edge=[3]), "n_edge is \\[3\\] but it holds 2"),
    (dict(senders=[0, 1], receivers=[1, 2], edges=[[1.0], [1.0]]), "edges must be the weights"),
])
def test_bad_input_names_the_layer(jraph, kwargs, message):
    good = _graph(jraph, senders=[0], receivers=[1])
    with pytest.raises(DataError, match=f"^jraph layer 'ppi': .*{message}") as err:
        Multiplex.from_graphs_tuple({"coexpr": good, "ppi": _graph(jraph, **kwargs)}, GENES)
    assert "\n" not in str(err.value)


def test_without_jraph_import_works_and_conversion_says_how_to_install(monkeypatch):
    # The module must import with jraph absent (None in sys.modules blocks the import).
    code = ("import sys; sys.modules['jraph'] = None\n"
            "import tfnet_jax.graph.multiplex\n"
            "assert sys.modules['jraph'] is None\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    monkeypatch.setitem(sys.modules, "jraph", None)
    with pytest.raises(ConfigError, match=r"^jraph is not installed: pip install tfnet_jax\[jraph\]$"):
        Multiplex(GENES, LAYERS).to_graphs_tuple()
    with pytest.raises(ConfigError, match="jraph is not installed"):
        Multiplex.from_graphs_tuple({}, GENES)
