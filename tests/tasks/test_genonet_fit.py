"""GenoNet fitting: the per-gene early-stopping loop, gene blocks by variant width, the elastic net
fitted and resumed block by block."""
import jax
import numpy as np
import pandas as pd
from flax import nnx

from tfnet_jax.data.genotype.blocks import Block, make_blocks
from tfnet_jax.models.genonet import PER_GENE, GenoNet, GenoNetModelConfig
from tfnet_jax.schemas.models import ElasticNetConfig
from tfnet_jax.tasks.genonet import prepare as task


def _loop_setup(n=60, p=6):
    from tfnet_jax.train.engine import TrainConfig, Trainer
    rng = np.random.default_rng(0)
    dosage = rng.integers(0, 3, (n, 2, p)).astype(np.float32)
    block = Block(["signal", "flat"], dosage, np.ones((2, p), bool), None)
    model = GenoNet(GenoNetModelConfig(2, p, 0, channels=2, kernel=3, hidden=4, linear_skip=True),
                    rngs=nnx.Rngs(0))
    cfg = TrainConfig(batch_size=16, eval_batch_size=32, max_steps=60, eval_every=5, patience=2,
                      learning_rate=0.05, warmup_steps=2, progress=False)
    signal = dosage[:, 0, 0] + dosage[:, 0, 1] + 0.1 * rng.normal(size=n)
    return block, model, cfg, Trainer, signal


def test_named_loop_stops_a_flat_gene_early_keeps_its_start_and_never_recompiles(compiles):
    from tfnet_jax.tasks.genonet.fit import fit_gene_block
    block, model, cfg, Trainer, signal = _loop_setup()
    n = len(signal)
    train_mask = np.arange(n) >= 15
    valid = np.arange(15)
    # Gene "flat" has one value: its validation R^2 is undefined (NaN), so it never improves.
    fold = task.prepare_fold(block, np.stack([signal, np.ones(n)], 1), train_mask, annotations=False)
    trainer = Trainer(model, cfg, loss_fn=task.make_loss_fn(0.0), predict_fn=task.predict_fn,
                      context=fold.context)
    start = jax.device_get(task.effective_params(trainer.model, None, fold.context.vmask))
    fit = fit_gene_block(trainer, fold, np.flatnonzero(train_mask), valid, score_start=True)
    # Scored at steps 0 and 5 without a gain (patience 2): out of the loss at step 5.
    assert fit.stop_step[1] == 5 and (fit.stop_step[0] == -1 or fit.stop_step[0] > 5)
    assert fit.best_r2[1] == -np.inf and fit.best_r2[0] > 0.5
    for name in PER_GENE:
        np.testing.assert_array_equal(fit.snapshot[name][1], np.asarray(start[name])[1], err_msg=name)
    assert not np.array_equal(fit.snapshot["scale"][0], np.asarray(start["scale"])[0])

    # Another fold with no signal at all: the loop ends once no gene is active, not at max_steps.
    flat = task.prepare_fold(block, np.ones((n, 2)), ~train_mask | (np.arange(n) >= 45), annotations=False)
    idle = fit_gene_block(trainer, flat, np.flatnonzero(~train_mask | (np.arange(n) >= 45)),
                          np.arange(15, 30), score_start=True)
    assert idle.step == 5 and (idle.stop_step == 5).all()
    # Back to the first fold: reset reproduces it exactly, on the same compiled steps.
    again = fit_gene_block(trainer, fold, np.flatnonzero(train_mask), valid, score_start=True)
    for name in fit.snapshot:
        np.testing.assert_array_equal(again.snapshot[name], fit.snapshot[name])
    assert compiles["train_step"] == 1 and compiles["predict_step"] == 1


def test_blocks_are_bucketed_by_width_and_the_elastic_net_sees_each_gene_unpadded():
    from tfnet_jax.data.genotype.container import GeneWindow, GenotypeData
    from tfnet_jax.models.elastic_net import fit_nested_cv
    from tfnet_jax.tasks.genonet.enet_fits import fit_elastic_net
    rng = np.random.default_rng(0)
    n, counts = 60, [50, 200, 90]  # buckets 128 and 200 (the widest is not padded further)
    windows, expression = [], {}
    for i, v in enumerate(counts):
        dosage = rng.integers(0, 3, (n, v)).astype(np.float32)
        windows.append(GeneWindow(f"g{i}", "1", 0, 1, np.array([f"v{i}_{j}" for j in range(v)]),
                                  np.arange(v), dosage))
        expression[f"g{i}"] = dosage[:, :3].sum(1) + rng.normal(size=n)
    data = GenotypeData(np.array([f"i{k}" for k in range(n)]), pd.DataFrame(expression), None, windows,
                        None, {}, "test")
    blocks = make_blocks(data, genes_per_block=2)
    assert [(b.genes, b.vmask.shape[1]) for b in blocks] == [(["g0", "g2"], 128), (["g1"], 200)]
    folds = np.arange(n) % 3
    en_cfg = ElasticNetConfig(inner_folds=3, alpha=0.5, n_lambdas=10, max_iter=300, tol=1e-4, block=4)
    fit = fit_elastic_net(data, blocks, folds, en_cfg, seed=0)
    order = [int(g[1:]) for b in blocks for g in b.genes]
    for row, gene in enumerate(order):
        v = counts[gene]
        alone = fit_nested_cv(windows[gene].float_dosages()[None], np.ones((1, v), bool),
                              expression[f"g{gene}"][None], folds, inner_k=3, n_lambdas=10,
                              max_iter=300, tol=1e-4, seed=0)
        np.testing.assert_allclose(fit["pred"][row], alone["pred"][0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(fit["coef"][row, :v], alone["coef"][0], atol=1e-4)
        np.testing.assert_allclose(fit["coef_start"][:, row, :v], alone["coef_start"][0], atol=1e-4)
        assert np.all(fit["coef"][row, v:] == 0)


def test_elastic_net_resumes_block_by_block(tmp_path):
    from tfnet_jax.data.genotype.container import GeneWindow, GenotypeData
    from tfnet_jax.tasks.genonet.enet_fits import (
        FitCache,
        cached_elastic_net,
        fit_elastic_net,
    )
    rng = np.random.default_rng(1)
    n = 40
    windows = [GeneWindow(f"g{i}", "1", 0, 1, np.array([f"v{i}_{j}" for j in range(20)]), np.arange(20),
                          rng.integers(0, 3, (n, 20)).astype(np.float32)) for i in range(3)]
    expression = {w.gene: w.float_dosages()[:, :2].sum(1) + rng.normal(size=n) for w in windows}
    data = GenotypeData(np.array([f"i{k}" for k in range(n)]), pd.DataFrame(expression), None, windows,
                        None, {}, "test")
    blocks = make_blocks(data, genes_per_block=2)  # blocks of 2 and 1 genes
    folds = np.arange(n) % 2
    en_cfg = ElasticNetConfig(inner_folds=2, alpha=0.5, n_lambdas=5, max_iter=20, tol=1e-4, block=2)
    fit_elastic_net(data, blocks, folds, en_cfg, 0, cache=FitCache(tmp_path), name="en")  # "killed" here
    part = tmp_path / "en" / "block0.npz"
    with np.load(part) as f:
        marked = {k: f[k] for k in f.files}
    marked["pred"] = marked["pred"] + 1000.0  # a part that is read, not refitted, shows this
    np.savez(part, **marked)
    (tmp_path / "en" / "block1.npz").unlink()
    merged = cached_elastic_net(FitCache(tmp_path), "en", data, blocks, folds, en_cfg, 0)
    fresh = fit_elastic_net(data, blocks, folds, en_cfg, 0)
    np.testing.assert_allclose(merged["pred"][:2], fresh["pred"][:2] + 1000.0)
    np.testing.assert_allclose(merged["pred"][2], fresh["pred"][2])
    assert (tmp_path / "en.npz").exists() and not (tmp_path / "en").exists()  # parts merged, then gone
