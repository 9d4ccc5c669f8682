"""Graph attention: the fused CPU kernel and XLA path against a plain reference, and the graph
work sharded across devices (4 fake CPU devices, conftest) against one device."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tfnet_jax.data.networks import NetworkLayer
from tfnet_jax.graph import attention, blocks, cpu_kernel
from tfnet_jax.graph.multiplex import directed_edges, multiplex_graphs
from tfnet_jax.train.engine import TrainConfig, Trainer

NUM_NODES, HEADS, DIM = 40, 2, 4


def random_layer(seed, num_nodes=NUM_NODES, edges=90):
    rng = np.random.default_rng(seed)
    s, r = rng.integers(0, num_nodes, (2, edges))
    keep = s != r
    return NetworkLayer(f"l{seed}", s[keep].astype(np.int32), r[keep].astype(np.int32),
                        rng.uniform(0.2, 1.0, keep.sum()).astype(np.float32))


def reference(h, score_src, score_dst, layer, slope=0.2):
    """The GAT aggregation written out per receiver, in float64."""
    s, r, w = directed_edges(layer, NUM_NODES)
    out = np.zeros((h.shape[0],) + h.shape[1:], np.float64)
    for i in range(NUM_NODES):
        src = s[r == i]
        z = score_src[src] + score_dst[i]
        logits = np.where(z >= 0, z, slope * z) + np.log(w[r == i] + 1e-9)[:, None]
        alpha = np.exp(logits - logits.max(0))
        alpha /= alpha.sum(0)
        out[i] = np.einsum("eh,ehd->hd", alpha, h[src])
    return out


def inputs(num_slots, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(num_slots, HEADS, DIM)).astype(np.float32),
            rng.normal(size=(num_slots, HEADS)).astype(np.float32),
            rng.normal(size=(num_slots, HEADS)).astype(np.float32))


def with_kernel(monkeypatch, fused):
    if fused and not cpu_kernel.fused_kernel_ready():
        pytest.skip("the fused CPU kernel did not build here (no C++ compiler?)")
    monkeypatch.setattr(attention, "use_fused_kernel", lambda: fused)


@pytest.mark.parametrize("fused", [False, True], ids=["xla", "fused"])
@pytest.mark.parametrize("shards", [1, 3])
def test_aggregate_matches_the_reference(monkeypatch, fused, shards):
    with_kernel(monkeypatch, fused)
    layer = random_layer(1)
    graph = multiplex_graphs([layer], NUM_NODES, num_shards=shards, edge_multiple=16)[0]
    h, src, dst = inputs(graph.padded_nodes)
    out = np.asarray(jax.jit(attention.aggregate)(h, src, dst, graph))
    np.testing.assert_allclose(out[:NUM_NODES], reference(h, src, dst, layer)[:NUM_NODES],
                               rtol=1e-5, atol=1e-5)
    assert np.all(out[NUM_NODES:] == 0)  # padding slots have no edges


@pytest.mark.parametrize("edges", [90, 80_000], ids=["one_thread", "threads"])
def test_fused_gradients_match_xla_autodiff(monkeypatch, edges):
    # 80k undirected edges = 160k directed: the kernel splits rows over >= 2 threads.
    num_nodes = NUM_NODES if edges < 1000 else 3000
    graph = multiplex_graphs([random_layer(2, num_nodes, edges)], num_nodes, num_shards=2,
                             edge_multiple=16)[0]
    h, src, dst = inputs(graph.padded_nodes, seed=3)
    weights = np.random.default_rng(4).normal(size=h.shape).astype(np.float32)

    def loss(h, src, dst):
        return jnp.sum(weights * attention.aggregate(h, src, dst, graph))
    grads = {}
    for fused in (False, True):
        with_kernel(monkeypatch, fused)
        grads[fused] = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(h, src, dst)
    for xla, kernel in zip(grads[False], grads[True]):
        np.testing.assert_allclose(np.asarray(kernel), np.asarray(xla), rtol=1e-4, atol=1e-5)


def test_kernel_choice_is_validated(monkeypatch):
    monkeypatch.setenv("TFNET_JAX_GAT_KERNEL", "cuda")
    with pytest.raises(Exception, match="TFNET_JAX_GAT_KERNEL='cuda'"):
        cpu_kernel.kernel_choice()


def test_receptive_field_walks_back_one_hop_per_layer():
    # A path 0-1-2-...-9: the last layer needs node 0, the one before 0-1, the first 0-2.
    path = NetworkLayer("path", np.arange(9, dtype=np.int32), np.arange(1, 10, dtype=np.int32),
                        np.ones(9, np.float32))
    graph = multiplex_graphs([path], 10, num_shards=2, edge_multiple=8)[0]
    masks = [np.asarray(m) for m in blocks.receptive_field(graph, jnp.array([0, 0]), 3)]
    assert [np.flatnonzero(m).tolist() for m in masks] == [[0, 1, 2], [0, 1], [0]]
    masks = [np.asarray(m) for m in blocks.receptive_field(graph, jnp.array([9]), 2)]
    assert [np.flatnonzero(m).tolist() for m in masks] == [[8, 9], [9]]


def _gat_stack(depth=3, seed=0):
    from tfnet_jax.models.transcriptionnet import GraphAttention
    rngs = nnx.Rngs(seed)
    return nnx.List([GraphAttention(HEADS * DIM, HEADS, 0.0, rngs=rngs) for _ in range(depth)])


@pytest.mark.parametrize("fused", [False, True], ids=["xla", "fused"])
@pytest.mark.parametrize("shards", [1, 3])
def test_receptive_field_stack_is_exact_at_the_queried_rows(monkeypatch, fused, shards):
    from tfnet_jax.models.transcriptionnet import TranscriptionNet
    with_kernel(monkeypatch, fused)
    num_nodes = 400  # sparse: the last two layers' fields are small enough for a SubGraph
    graph = multiplex_graphs([random_layer(8, num_nodes, 500)], num_nodes, num_shards=shards,
                             edge_multiple=16)[0]
    queried = jnp.array([3, 17, 17, 290, 399], jnp.int32)
    capacities = blocks.field_capacities(graph, queried.shape[0], 3)
    assert capacities[0] is None and capacities[1] is not None and capacities[2] == 5
    x = np.random.default_rng(9).normal(size=(graph.padded_nodes, HEADS * DIM)).astype(np.float32)
    target = np.random.default_rng(10).normal(size=(5, HEADS * DIM)).astype(np.float32)

    def run(stack, pruned):
        out = TranscriptionNet._run_stack(stack, jnp.asarray(x), graph, queried if pruned else None,
                                          True, None)
        return out if pruned else out[queried]

    def loss(stack, pruned):
        return jnp.sum((run(stack, pruned) - target) ** 2)
    stack = _gat_stack()
    full, pruned = (np.asarray(nnx.jit(run, static_argnums=1)(stack, p)) for p in (False, True))
    np.testing.assert_allclose(pruned, full, rtol=1e-5, atol=1e-5)
    grad_full, grad_pruned = (nnx.jit(nnx.grad(loss), static_argnums=1)(stack, p) for p in (False, True))
    for a, b in zip(jax.tree.leaves(grad_full), jax.tree.leaves(grad_pruned)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-5)


def test_masked_layers_skip_rows_outside_the_field(monkeypatch):
    with_kernel(monkeypatch, True)
    graph = multiplex_graphs([random_layer(8)], NUM_NODES, edge_multiple=16)[0]
    h, src, dst = inputs(graph.padded_nodes)
    mask = blocks.receptive_field(graph, jnp.array([3]), 2)[0]
    out = np.asarray(attention.aggregate(h, src, dst, graph, mask))
    full = np.asarray(attention.aggregate(h, src, dst, graph))
    inside = np.asarray(mask) == 1
    np.testing.assert_allclose(out[inside], full[inside], rtol=1e-6)
    assert 1 < inside.sum() < NUM_NODES and np.all(out[~inside] == 0)


def _encoder_loss_trainer(num_devices, layers, pruned=False, num_nodes=NUM_NODES):
    """A trainer over a 2-layer GAT stack whose loss is a fixed function of the embeddings
    (with `pruned`, of the batch's receptive field only)."""
    from tfnet_jax.models.transcriptionnet import GraphAttention, TranscriptionNet

    class Stack(nnx.Module):
        def __init__(self, rngs):
            self.inp = nnx.Embed(num_nodes + 1, HEADS * DIM, rngs=rngs)
            self.layers = nnx.List([GraphAttention(HEADS * DIM, HEADS, 0.0, rngs=rngs) for _ in range(2)])

        def __call__(self, graphs, queried):
            x = jnp.pad(self.inp.embedding[...], ((0, graphs[0].padded_nodes - num_nodes - 1), (0, 0)))
            out = 0.0
            for graph in graphs:
                out = out + TranscriptionNet._run_stack(self.layers, x, graph,
                                                        queried if pruned else None, True, None)
            return out if pruned else out[queried]

    def loss_fn(model, batch, context, key):
        emb = model(context["graphs"], batch["index"])
        per_row = jnp.sum((emb - batch["target"]) ** 2, axis=1)
        return jnp.sum(per_row * batch["mask"]) / jnp.sum(batch["mask"]), {}

    graphs = multiplex_graphs(layers, num_nodes, num_shards=num_devices, edge_multiple=16)
    cfg = TrainConfig(batch_size=24, num_devices=num_devices, progress=False, max_steps=10,
                      warmup_steps=0, schedule="constant", learning_rate=1e-2)
    return Trainer(Stack(nnx.Rngs(0)), cfg, loss_fn=loss_fn,
                   predict_fn=lambda m, b, c: m(c["graphs"], b["index"]),
                   context={"graphs": graphs},
                   context_specs={"graphs": jax.sharding.PartitionSpec("data")})


@pytest.mark.parametrize("fused,pruned", [(False, False), (True, False), (True, True)],
                         ids=["xla", "fused", "fused_pruned"])
def test_sharded_training_equals_one_device(monkeypatch, fused, pruned):
    if len(jax.devices()) < 4:
        pytest.skip("needs 4 (fake) devices: XLA_FLAGS=--xla_force_host_platform_device_count=4")
    with_kernel(monkeypatch, fused)
    # Pruned: a sparse graph, so the last layer runs on a SubGraph of the batch's genes.
    nodes = 400 if pruned else NUM_NODES
    layers = [random_layer(5, nodes, 2 * nodes), random_layer(6, nodes, 2 * nodes)]
    rng = np.random.default_rng(7)
    arrays = {"index": rng.integers(0, nodes, 24).astype(np.int32),
              "target": rng.normal(size=(24, HEADS * DIM)).astype(np.float32)}
    losses = {}
    for devices in (1, 4):
        trainer = _encoder_loss_trainer(devices, layers, pruned, nodes)
        if pruned:
            graph = trainer.context["graphs"][0]
            assert blocks.field_capacities(graph, 24, 2)[-1] == 24
        if devices == 4:  # each device holds one receiver shard of every graph
            shard = trainer.context["graphs"][0].senders.addressable_shards[0]
            assert shard.data.shape[0] == 1
        losses[devices] = [float(trainer.step(trainer.train_batch(arrays, s), s)[0]) for s in range(3)]
    np.testing.assert_allclose(losses[4], losses[1], rtol=1e-4)
    if pruned:  # the receptive field gives the unpruned losses
        unpruned = _encoder_loss_trainer(1, layers, num_nodes=nodes)
        np.testing.assert_allclose(
            losses[1], [float(unpruned.step(unpruned.train_batch(arrays, s), s)[0]) for s in range(3)],
            rtol=1e-4)
    assert losses[1][2] < losses[1][0]  # it trains (full batch: the same rows every step)


def test_host_memory_tuning_can_be_turned_off(monkeypatch):
    import sys

    from tfnet_jax import host_memory
    host_memory.reuse_freed_memory.cache_clear()
    monkeypatch.setenv("TFNET_JAX_MALLOC_TUNING", "0")
    assert host_memory.reuse_freed_memory() is False
    host_memory.reuse_freed_memory.cache_clear()
    monkeypatch.delenv("TFNET_JAX_MALLOC_TUNING")
    glibc = sys.platform.startswith("linux") and "glibc" in " ".join(__import__("platform").libc_ver())
    assert host_memory.reuse_freed_memory() is glibc
