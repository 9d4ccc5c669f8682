"""The SIGN encoder (model.encoder=sign): propagated features against a dense computation,
training on tiny data, its config errors, and the GAT path left bit-for-bit as it was."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_DATA
from flax import nnx

import tfnet_jax
from tfnet_jax.config import compose
from tfnet_jax.data.networks import NetworkLayer
from tfnet_jax.errors import ConfigError
from tfnet_jax.graph.multiplex import multiplex_graphs, propagated_features
from tfnet_jax.models.transcriptionnet import (TranscriptionNet, TranscriptionNetContext,
                                               TranscriptionNetModelConfig)
from tfnet_jax.tasks.transcriptionnet import prepare as task

# 4 genes; gene 3 is isolated. Edges 0-1 (w 2), 1-2 (w 1).
LAYER = NetworkLayer("toy", senders=np.array([0, 1], np.int32), receivers=np.array([1, 2], np.int32),
                     weights=np.array([2.0, 1.0], np.float32))
CHAIN = NetworkLayer("chain", senders=np.array([0, 2], np.int32), receivers=np.array([3, 3], np.int32),
                     weights=np.array([0.5, 3.0], np.float32))


def dense_a_hat(layer, n):
    a = np.zeros((n, n))
    for s, r, w in zip(layer.senders, layer.receivers, layer.weights):
        a[s, r] += w
        a[r, s] += w
    a += np.eye(n)
    d = a.sum(axis=1)
    return a / np.sqrt(np.outer(d, d))


def test_propagated_features_equal_dense_powers_of_the_normalised_adjacency():
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(size=(4, 3)), np.zeros((1, 3))]).astype(np.float32)
    out = propagated_features([LAYER, CHAIN], features, hops=3)
    assert out.shape == (2, 4, 5, 3) and out.dtype == np.float32
    for i, layer in enumerate((LAYER, CHAIN)):
        a_hat = dense_a_hat(layer, 4)
        for k in range(4):
            expected = np.linalg.matrix_power(a_hat, k) @ features[:4].astype(np.float64)
            np.testing.assert_allclose(out[i, k, :4], expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(out[i, :, 4], 0.0)  # the padding row stays zero
    # The isolated gene of LAYER keeps its own features at every hop (self-loop only).
    np.testing.assert_allclose(out[0, :, 3], np.broadcast_to(features[3], (4, 3)), rtol=1e-6)


def test_prepare_adds_the_propagated_context_only_for_sign(tiny_data, tiny_prepared):
    assert tiny_prepared.propagated is None and tiny_prepared.context.propagated is None
    prepared = task.prepare(tiny_data, tiny_prepared.splits, hops=2)
    n, f = tiny_prepared.features.shape
    assert prepared.context.propagated.shape == (len(tiny_data.layers), 3, n, f)
    np.testing.assert_array_equal(prepared.propagated[:, 0], np.broadcast_to(
        tiny_prepared.features, (len(tiny_data.layers), n, f)))


def test_sign_model_shapes_and_fusion_weights():
    features = jax.random.normal(jax.random.key(1), (5, 6))
    propagated = jnp.asarray(propagated_features([LAYER, CHAIN], np.asarray(features), hops=2))
    graphs = multiplex_graphs([LAYER, CHAIN], num_nodes=4, edge_multiple=8)
    for node_input in ("auto", "features", "both"):
        model = TranscriptionNet(TranscriptionNetModelConfig(
            num_nodes=5, num_layers=2, num_types=3, num_readouts=7, feature_dim=6, hidden=8,
            encoder="sign", hops=2, node_input=node_input, fusion_dim=4, head_hidden=16,
            head_blocks=1, dropout=0.0), rngs=nnx.Rngs(0))
        assert model.gat is None and len(model.sign) == 2 and len(model.sign[0].hops) == 3
        context = TranscriptionNetContext(features, graphs, propagated)
        out = model(context, jnp.array([0, 3, 2]), jnp.array([0, 1, 2]))
        assert out.shape == (3, 7) and bool(jnp.all(jnp.isfinite(out)))
        emb, weights = model.embed(features, graphs, propagated)
        assert emb.shape == (5, 8) and weights.shape == (2, 5)
        np.testing.assert_allclose(np.asarray(weights).sum(axis=0), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="model.encoder=sign"):
        TranscriptionNet(TranscriptionNetModelConfig(num_nodes=5, num_layers=2, num_types=3,
                                                     num_readouts=7, feature_dim=None, encoder="sign"),
                         rngs=nnx.Rngs(0))


def test_sign_trains_on_tiny_data_and_beats_the_mean_baseline(tmp_path):
    run = tfnet_jax.fit(
        "transcriptionnet", run_dir=tmp_path / "sign",
        data={k: v for k, v in TINY_DATA.items()},
        model={"encoder": "sign", "hops": 2, "hidden": 16, "fusion_dim": 4, "head_hidden": 32,
               "head_blocks": 1, "dropout": 0.0},
        train={"max_steps": 150, "batch_size": 32, "eval_batch_size": 64, "eval_every": 50,
               "log_every": 50, "warmup_steps": 10, "progress": False})
    prepared = run.prepared
    assert prepared.propagated is not None and prepared.propagated.shape[1] == 3
    model_valid = task.evaluate_split(run.trainer, prepared, "valid")
    mean_valid = task.baseline_metrics(prepared, "valid")["mean"]
    for t in prepared.types:
        assert model_valid[t]["pearson_delta"] > mean_valid[t]["pearson_delta"] + 0.1, t
    assert set(run.metrics_json["fusion_weights"]) == {layer.name for layer in prepared.data.layers}


@pytest.mark.parametrize("overrides, message", [
    (["model.encoder=sign", "model.node_input=embedding"],
     "config: model.encoder='sign': it propagates node features, and model.node_input=embedding"),
    (["model.encoder=sign", "data.node_features=false"],
     "config: model.encoder='sign': it propagates node features, and data.node_features=false"),
    (["model.encoder=sgc"], "config: model.encoder='sgc': expected one of gat, sign"),
    (["model.encoder=sign", "model.hops=0"], "config: model.hops=0: must be a positive integer"),
])
def test_sign_config_errors_are_one_line_naming_the_field(overrides, message):
    with pytest.raises(ConfigError) as err:
        compose(overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_ablate_components_has_a_sign_arm():
    cfg = compose(["experiment=ablate_components", "arm=sign_encoder"])
    assert cfg.model.encoder == "sign" and cfg.model.hops == 2
    assert compose(["experiment=ablate_components"]).model.encoder == "gat"


# Outputs of this model at the commit before model.encoder existed (float.hex). Compared within
# float32 rounding, not bit for bit: another XLA build may reorder a sum.
GAT_BEFORE = [
    '0x1.e41bc00000000p-2', '0x1.fa0f980000000p-1', '0x1.649b6a0000000p-1', '-0x1.4b22080000000p-4',
    '0x1.bdf5f20000000p-1', '-0x1.4f85a00000000p+0', '0x1.e53d100000000p-1', '0x1.56f5160000000p+0',
    '0x1.1427c00000000p-7', '-0x1.2c4c180000000p-4', '0x1.2808dc0000000p-2', '-0x1.03892c0000000p+0',
    '0x1.ae8d340000000p-2', '0x1.064c260000000p-1', '0x1.182c580000000p+1', '0x1.5fd9100000000p-3',
    '0x1.b9a0000000000p-5', '-0x1.bbd07c0000000p+0', '0x1.157a620000000p+0', '0x1.229b120000000p+1',
    '0x1.969d2e0000000p+0', '0x1.1881ac0000000p+0', '0x1.61283c0000000p+0', '-0x1.e6e5d80000000p-4',
    '-0x1.f812800000000p-5', '-0x1.e999960000000p-1', '-0x1.4573c60000000p+0', '-0x1.cb134c0000000p-2',
]


def test_default_gat_predictions_are_unchanged():
    graphs = multiplex_graphs([LAYER, LAYER], num_nodes=4, edge_multiple=8)
    features = jax.random.normal(jax.random.key(1), (5, 6))
    outputs = []
    for extra in ({}, {"encoder": "gat", "hops": 5}):
        model = TranscriptionNet(TranscriptionNetModelConfig(
            num_nodes=5, num_layers=2, num_types=3, num_readouts=7, feature_dim=6, hidden=8,
            gat_layers=2, heads=2, fusion_dim=4, head_hidden=16, head_blocks=1, dropout=0.0, **extra),
            rngs=nnx.Rngs(0))
        assert model.sign is None
        outputs.append(np.asarray(model(TranscriptionNetContext(features, graphs),
                                        jnp.array([0, 3, 2, 1]), jnp.array([0, 1, 2, 0]))))
    expected = np.array([float.fromhex(v) for v in GAT_BEFORE], np.float32).reshape(4, 7)
    np.testing.assert_allclose(outputs[0], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(outputs[1], outputs[0])  # encoder=gat is the default path
