"""Finished genes stop costing work: a block whose active genes drop to half or fewer trains on in
a smaller block (tasks/genonet/compact.py), with the same result as the full block."""
import jax
import numpy as np
import pytest
from flax import nnx

from tfnet_jax.data.genotype.blocks import Block
from tfnet_jax.models.genonet import GenoNet, GenoNetModelConfig, forward
from tfnet_jax.tasks.genonet import prepare as task
from tfnet_jax.tasks.genonet.compact import Trainers, compact_size, subset_state, take_genes
from tfnet_jax.tasks.genonet.fit import fit_gene_block
from tfnet_jax.train.engine import TrainConfig, Trainer


def test_compact_size_halves_to_the_next_power_of_two():
    assert compact_size(65, 128) is None and compact_size(64, 128) == 64
    assert compact_size(33, 128) == 64 and compact_size(5, 128) == 8 and compact_size(1, 128) == 1
    assert compact_size(0, 128) is None and compact_size(1, 1) is None and compact_size(1, 2) == 1


def test_subset_state_gathers_gene_leaves_and_keeps_shared_ones():
    state = {"r": np.arange(8.0).reshape(4, 2), "gate": np.ones((3, 5)), "count": np.array(7)}
    small = {"r": np.zeros((2, 2)), "gate": np.zeros((3, 5)), "count": np.array(0)}
    out = subset_state(state, small, np.array([3, 1]))
    np.testing.assert_array_equal(out["r"], [[6, 7], [2, 3]])
    assert out["gate"] is not small["gate"] and (out["gate"] == 1).all() and out["count"] == 7
    with pytest.raises(ValueError, match="gene axis"):
        subset_state(state, {**small, "r": np.zeros((2, 3))}, np.array([3, 1]))
    np.testing.assert_array_equal(take_genes({"y": np.arange(6).reshape(2, 3), "none": None},
                                             np.array([2, 0]), axis=1)["y"], [[2, 0], [5, 3]])


def _block_and_targets(n=90, g=4, p=6):
    rng = np.random.default_rng(1)
    dosage = rng.integers(0, 3, (n, g, p)).astype(np.float32)
    annotations = rng.normal(size=(g, p, 2)).astype(np.float32)
    block = Block([f"g{i}" for i in range(g)], dosage, np.ones((g, p), bool), annotations)
    y = np.stack([dosage[:, 0, 0] * dosage[:, 0, 1] + 0.2 * rng.normal(size=n),  # learnable: trains on
                  dosage[:, 1, 2] + 0.3 * rng.normal(size=n),
                  np.ones(n),                                                  # constant: stops first
                  rng.normal(size=n)], 1)                                      # noise: stops early
    return block, y


def test_compacted_fit_equals_the_full_block_and_compiles_once_per_size(compiles):
    block, y = _block_and_targets()
    n, g, p = block.dosage.shape
    train_mask = np.arange(n) >= 20
    valid = np.arange(20)
    cfg = TrainConfig(batch_size=16, eval_batch_size=32, max_steps=80, eval_every=5, patience=2,
                      learning_rate=0.05, warmup_steps=2, progress=False)
    fold = task.prepare_fold(block, y, train_mask, annotations=True)

    def build(block, size, context):  # dropout 0: deterministic, so the two fits must agree
        model = GenoNet(GenoNetModelConfig(size, p, 2, channels=2, kernel=3, hidden=4, dropout=0.0),
                        rngs=nnx.Rngs(0))
        return Trainer(model, cfg, loss_fn=task.make_loss_fn(0.01, block.size), predict_fn=task.predict_fn,
                       context=context)

    full = fit_gene_block(build(block, g, fold.context), fold, np.flatnonzero(train_mask), valid, score_start=True)
    assert 0 < full.stop_step[2] < full.stop_step[0] or full.stop_step[0] == -1  # compaction has work to do
    trainers = Trainers(build)
    before = compiles["train_step"]
    small = fit_gene_block(trainers.get(block, g, fold.context), fold, np.flatnonzero(train_mask), valid,
                           score_start=True, trainers=trainers)
    sizes = sorted(key[-1] for key in trainers.trainers)
    assert sizes[0] < g  # it did compact
    assert compiles["train_step"] - before == len(sizes) <= 1 + int(np.log2(g))
    assert small.step == full.step and small.evals == full.evals
    np.testing.assert_array_equal(small.kept_step, full.kept_step)
    np.testing.assert_array_equal(small.stop_step, full.stop_step)
    np.testing.assert_allclose(small.best_r2, full.best_r2, atol=1e-5)
    for name in full.snapshot:
        np.testing.assert_allclose(small.snapshot[name], full.snapshot[name], atol=1e-5, err_msg=name)
    ctx = fold.context

    def predict(snapshot):
        params = {k: jax.numpy.asarray(v) for k, v in snapshot.items()}
        return np.asarray(forward(params, fold.dosage, ctx.mu, ctx.sd, ctx.vmask, linear_skip=True))
    np.testing.assert_allclose(predict(small.snapshot), predict(full.snapshot), atol=1e-5)

    # Another fold on the same trainers: no new program.
    compiled = compiles["train_step"]
    other = task.prepare_fold(block, y, np.arange(n) < 70, annotations=True)
    fit_gene_block(trainers.get(block, g, other.context), other, np.arange(20, 70), np.arange(70, n),
                   score_start=True, trainers=trainers)
    assert compiles["train_step"] == compiled
