"""Graph construction, TranscriptionNet shapes and the loss against hand-computed values."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tfnet_jax.data.networks import NetworkLayer
from tfnet_jax.graph.multiplex import directed_edges, layer_to_blocks, multiplex_graphs
from tfnet_jax.models.transcriptionnet import (TranscriptionNet, TranscriptionNetContext,
                                               TranscriptionNetModelConfig)
from tfnet_jax.train.losses import mse_pearson_loss, row_pearson

# 4 genes; gene 3 is isolated. Edges 0-1 (w 2), 1-2 (w 1).
LAYER = NetworkLayer("toy", senders=np.array([0, 1], np.int32), receivers=np.array([1, 2], np.int32),
                     weights=np.array([2.0, 1.0], np.float32))


def test_graph_is_symmetric_self_looped_and_normalised():
    s, r, w = directed_edges(LAYER, num_nodes=4)
    pairs = {(int(a), int(b)): float(x) for a, b, x in zip(s, r, w)}
    # Self-loop weight = the node's strongest edge (1 if isolated), then per-receiver sums are 1.
    # Node 1 receives from 0 (2), 2 (1) and itself (2): 2/5, 1/5, 2/5.
    assert pairs[(0, 1)] == pytest.approx(0.4) and pairs[(2, 1)] == pytest.approx(0.2)
    assert pairs[(1, 1)] == pytest.approx(0.4)
    # Node 0 receives from 1 (2) and itself (2); node 2 from 1 (1) and itself (1).
    assert pairs[(1, 0)] == pytest.approx(0.5) and pairs[(0, 0)] == pytest.approx(0.5)
    assert pairs[(1, 2)] == pytest.approx(0.5) and pairs[(2, 2)] == pytest.approx(0.5)
    assert pairs[(3, 3)] == pytest.approx(1.0)  # isolated gene keeps itself
    assert len(pairs) == 2 * 2 + 4
    assert np.all(np.diff(r) >= 0)  # sorted by receiver


@pytest.mark.parametrize("shards", [1, 2, 3])
def test_blocks_partition_every_edge_once_with_inert_padding(shards):
    s, r, w = directed_edges(LAYER, num_nodes=4)
    graph = layer_to_blocks(LAYER, num_nodes=4, num_shards=shards, edge_multiple=8)
    n = graph.shard_nodes
    assert graph.padded_nodes >= 5 and graph.padded_nodes % shards == 0  # 4 genes + padding slot
    assert graph.senders.shape[1] % 8 == 0 and graph.num_edges == len(s)
    found = set()
    for k in range(shards):
        ptr = graph.indptr[k]
        real = slice(0, ptr[-1])
        local = graph.receivers[k][real]
        # CSR rows agree with the receiver list; padding edges point past the shard's rows.
        assert np.array_equal(np.repeat(np.arange(n), np.diff(ptr)), local)
        assert np.all(graph.receivers[k][ptr[-1]:] == n) and np.all(graph.log_weights[k][ptr[-1]:] == 0)
        for a, b, lw in zip(graph.senders[k][real], local + k * n, graph.log_weights[k][real]):
            found.add((int(a), int(b), round(float(np.exp(lw)), 5)))
    assert found == {(int(a), int(b), round(float(x), 5)) for a, b, x in zip(s, r, w)}
    graphs = multiplex_graphs([LAYER, LAYER], num_nodes=4, num_shards=shards, edge_multiple=8)
    assert len(graphs) == 2 and graphs[0].senders.shape == graphs[1].senders.shape


def make_model(**kw):
    args = dict(num_nodes=5, num_layers=2, num_types=3, num_readouts=7, feature_dim=6, hidden=8,
                gat_layers=2, heads=2, fusion_dim=4, head_hidden=16, head_blocks=1, dropout=0.0)
    args.update(kw)
    return TranscriptionNet(TranscriptionNetModelConfig(**args), rngs=nnx.Rngs(0))


@pytest.mark.parametrize("node_input,feature_dim", [("features", 6), ("embedding", None), ("both", 6)])
def test_model_shapes_and_fusion_weights(node_input, feature_dim):
    graphs = multiplex_graphs([LAYER, LAYER], num_nodes=4, edge_multiple=8)
    model = make_model(node_input=node_input, feature_dim=feature_dim)
    feats = jnp.ones((5, 6)) if feature_dim else None
    out = model(TranscriptionNetContext(feats, graphs), jnp.array([0, 3, 2]), jnp.array([0, 1, 2]))
    assert out.shape == (3, 7) and bool(jnp.all(jnp.isfinite(out)))
    emb, weights = model.embed(feats, graphs)
    assert emb.shape == (5, 8) and weights.shape == (2, 5)
    np.testing.assert_allclose(np.asarray(weights).sum(axis=0), 1.0, rtol=1e-6)


def test_each_type_uses_its_own_head():
    graphs = multiplex_graphs([LAYER, LAYER], num_nodes=4, edge_multiple=8)
    model = make_model()
    feats = jax.random.normal(jax.random.key(1), (5, 6))
    same_gene = jnp.array([1, 1, 1])
    out = np.asarray(model(TranscriptionNetContext(feats, graphs), same_gene, jnp.array([0, 1, 2])))
    assert not np.allclose(out[0], out[1]) and not np.allclose(out[1], out[2])
    emb, _ = model.embed(feats, graphs)
    np.testing.assert_allclose(out[2], np.asarray(model.heads[2](emb[1:2], deterministic=True))[0],
                               rtol=1e-5)


def test_mean_fusion_weights_are_uniform():
    graphs = multiplex_graphs([LAYER, LAYER], num_nodes=4, edge_multiple=8)
    _, weights = make_model(fusion="mean").embed(jnp.ones((5, 6)), graphs)
    np.testing.assert_allclose(np.asarray(weights), 0.5)


def test_bad_model_options():
    with pytest.raises(ValueError, match="model.fusion"):
        make_model(fusion="max")
    with pytest.raises(ValueError, match="needs node features"):
        make_model(node_input="features", feature_dim=None)
    with pytest.raises(ValueError, match="divisible by model.heads"):
        make_model(hidden=9)


def test_loss_against_hand_computed_values():
    pred = jnp.array([[1.0, 2.0, 3.0], [1.0, 0.0, 1.0], [9.0, 9.0, 0.0]])
    target = jnp.array([[1.0, 2.0, 4.0], [0.0, 1.0, 0.0], [5.0, 5.0, 5.0]])
    mask = jnp.array([1.0, 1.0, 0.0])  # third row is padding and must not count
    # Row 0: MSE 1/3; Pearson r = 0.9819805 (corr([1,2,3],[1,2,4])). Row 1: MSE 1, r = -1.
    r0 = 3.0 / np.sqrt(2.0 * (14.0 / 3.0))  # centred: [-1,0,1] . [-4/3,-1/3,5/3] = 3
    np.testing.assert_allclose(np.asarray(row_pearson(pred[:2], target[:2])), [r0, -1.0], rtol=1e-5)
    loss, aux = mse_pearson_loss(pred, target, mask, beta=0.25)
    mse, pearson = (1 / 3 + 1) / 2, (r0 - 1) / 2
    np.testing.assert_allclose(float(aux["mse"]), mse, rtol=1e-6)
    np.testing.assert_allclose(float(aux["pearson"]), pearson, rtol=1e-5)
    np.testing.assert_allclose(float(loss), 0.75 * mse + 0.25 * (1 - pearson), rtol=1e-5)


def test_on_target_shift_moves_only_the_own_column():
    graphs = multiplex_graphs([LAYER, LAYER], num_nodes=4, edge_multiple=8)
    model = make_model(on_target=True)
    context = TranscriptionNetContext(jnp.ones((5, 6)), graphs,  # genes 0, 2 are readouts
                                      readout_col=jnp.array([2, -1, 5, -1, -1], jnp.int32))
    genes, types = jnp.array([0, 1, 2]), jnp.array([0, 0, 1])
    before = np.asarray(model(context, genes, types))
    model.on_target[...] = jnp.array([-3.0, 2.0, 0.0])
    moved = np.asarray(model(context, genes, types)) - before
    expected = np.zeros_like(moved)
    expected[0, 2], expected[2, 5] = -3.0, 2.0  # gene 1 is not a readout: nothing moves
    np.testing.assert_allclose(moved, expected, atol=1e-5)


def test_refiner_uses_observed_other_types_but_never_the_target():
    from tfnet_jax.models.gensan import CrossTypeRefiner, RefinerConfig
    refiner = CrossTypeRefiner(RefinerConfig(num_types=3, num_readouts=7, dim=8, heads=2, inducing=4,
                                             recycles=2), rngs=nnx.Rngs(0))
    refiner.out.kernel[...] = jax.random.normal(jax.random.key(2), refiner.out.kernel.shape)
    key = jax.random.key(3)
    predicted = jax.random.normal(key, (3, 2, 7))
    observed = jax.random.normal(jax.random.fold_in(key, 1), (3, 2, 7))
    has = jnp.array([[True, False], [True, True], [False, False]])
    target = jnp.array([0, 1])
    out = refiner(predicted, observed, has, target)
    assert out.shape == (2, 7)
    # Changing the observed signature of the TARGET type must not change anything...
    poked = observed.at[0, 0].add(5.0).at[1, 1].add(5.0)
    np.testing.assert_allclose(np.asarray(refiner(predicted, poked, has, target)), np.asarray(out),
                               rtol=1e-5, atol=1e-6)
    # ...while an observed signature of another type does.
    poked = observed.at[1, 0].add(5.0)
    assert not np.allclose(np.asarray(refiner(predicted, poked, has, target))[0], np.asarray(out)[0])


def test_ridge_started_skip_reproduces_ridge_at_initialisation(tiny_prepared):
    from conftest import tiny_model

    from tfnet_jax.tasks.transcriptionnet import prepare as task
    cfg = tiny_model(linear_skip=True, skip_init="ridge")
    model = task.build_model(cfg, tiny_prepared, seed=0)
    rows = tiny_prepared.rows("valid")
    out = np.asarray(task.predict_fn(model, rows, tiny_prepared.context))
    weights = task.ridge_skip_weights(tiny_prepared)
    features = tiny_prepared.features[rows["pert_index"]]
    expected = np.stack([features[i] @ weights[t][0] + weights[t][1]
                         for i, t in enumerate(rows["pert_type"])])
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    # Ridge fitted on training genes carries real signal on the held-out validation genes.
    assert np.mean(np.asarray(row_pearson(jnp.asarray(out), jnp.asarray(rows["target"])))) > 0.2
    with pytest.raises(ValueError, match="needs model.linear_skip"):
        task.build_model(tiny_model(skip_init="ridge"), tiny_prepared, seed=0)
