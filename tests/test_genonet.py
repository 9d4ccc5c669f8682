"""GenoNet: padding, gene independence, the shared annotation prior, per-gene stopping, runs."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from flax import nnx

from conftest import execute_notebook
from tfnet_jax.data.dataset import DataError
from tfnet_jax.models.genonet import PER_GENE, GenoNet
from tfnet_jax.tasks import genotype as task

G, P, K, B = 3, 12, 2, 8
TINY_SIM = ["data.num_genes=5", "data.num_individuals=64", "data.max_variants=24",
            "data.region_length=60000", "data.null_fraction=0.2"]
TINY_RUN = ["model.outer_folds=2", "model.elastic_net.inner_folds=2", "model.elastic_net.n_lambdas=4",
            # block=8 >= 5 genes: one elastic-net compile (compiles, not steps, dominate here)
            "model.elastic_net.block=8", "model.elastic_net.max_iter=10",
            "model.channels=2", "model.hidden=4", "model.kernel=3",
            "train.max_steps=10", "train.eval_every=5", "train.log_every=5", "train.patience=1",
            "train.batch_size=16", "train.eval_batch_size=64", "train.warmup_steps=2"]


@nnx.jit
def _forward(model, dosage, ctx):  # one compile for the whole forward pass, not one per op
    return model(dosage, ctx)


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    vmask = np.ones((G, P), bool)
    vmask[1, 8:] = False                       # gene 1 has 8 real variants, gene 2 has 5
    vmask[2, 5:] = False
    dosage = rng.integers(0, 3, (B, G, P)).astype(np.float32)
    ctx = {"vmask": jnp.asarray(vmask), "mu": jnp.ones((G, P, 2)) * 0.5, "sd": jnp.ones((G, P, 2)),
           "annotations": jnp.asarray(rng.normal(size=(G, P, K)), jnp.float32),
           "active": jnp.ones(G)}
    return dosage, ctx


def _model(num_annotations=K, genes=G):
    model = GenoNet(genes, P, num_annotations, channels=4, kernel=3, hidden=8, rngs=nnx.Rngs(0))
    if num_annotations:  # a non-trivial gate, so the annotation path matters below
        model.gate_out.kernel[...] = jax.random.normal(jax.random.key(1), model.gate_out.kernel.shape)
    return model


def test_padded_variants_change_nothing():
    dosage, ctx = _inputs()
    model = _model()
    before = _forward(model, jnp.asarray(dosage), ctx)
    pad = ~np.asarray(ctx["vmask"])
    changed = dosage.copy()
    changed[:, pad] = 7.0
    ctx2 = dict(ctx, annotations=jnp.where(pad[..., None], 50.0, ctx["annotations"]))
    np.testing.assert_allclose(_forward(model, jnp.asarray(changed), ctx2), before, rtol=1e-6, atol=1e-6)


def test_genes_in_a_block_are_independent():
    dosage, ctx = _inputs()
    model = _model()
    before = np.asarray(_forward(model, jnp.asarray(dosage), ctx))
    changed = dosage.copy()
    changed[:, 0] = 2.0 - changed[:, 0]        # gene 0's genotypes flipped
    after = np.asarray(_forward(model, jnp.asarray(changed), ctx))
    assert not np.allclose(after[:, 0], before[:, 0])
    np.testing.assert_allclose(after[:, 1:], before[:, 1:], rtol=1e-6, atol=1e-6)


def test_annotation_prior_is_shared_across_genes():
    def shapes(genes, annotations=K):  # abstract: no compute, no compiles
        return nnx.eval_shape(lambda: GenoNet(genes, P, annotations, channels=4, kernel=3, hidden=8,
                                              rngs=nnx.Rngs(0)))
    small, big = shapes(3), shapes(5)
    for name in ("gate_in", "gate_out"):
        for a, b in zip(jax.tree.leaves(nnx.state(getattr(small, name))),
                        jax.tree.leaves(nnx.state(getattr(big, name)))):
            assert a.shape == b.shape  # no gene axis
    for name in PER_GENE[1:]:
        assert getattr(big, name).shape[0] == 5
    assert not hasattr(shapes(3, 0), "gate_in")  # without annotations: scales only


def test_stopped_genes_get_no_gradient_and_keep_their_snapshot():
    dosage, ctx = _inputs()
    model = _model()
    batch = {"dosage": jnp.asarray(dosage), "y": jnp.asarray(np.random.default_rng(1).normal(size=(B, G)),
                                                               jnp.float32), "mask": jnp.ones(B)}
    ctx = dict(ctx, active=jnp.asarray([1.0, 0.0, 1.0]))
    loss_fn = task.make_loss_fn(0.01)
    grads = nnx.jit(nnx.grad(lambda m, b, c: loss_fn(m, b, c, jax.random.key(0))[0]))(model, batch, ctx)
    for name in ("r", *PER_GENE[1:]):
        g = np.asarray(getattr(grads, name)[...])
        assert np.all(g[1] == 0), name
        assert np.any(g[0] != 0) or name == "conv_b", name

    # GeneStopper: a gene that stopped improving is masked and its snapshot stays put.
    class FakeTrainer:
        replicated = None

        def __init__(self):
            self.model, self.context, self.calls = model, None, 0

        def predict(self, rows):
            self.calls += 1
            scores = np.zeros((len(rows["y"]), G))
            scores[:, 0] = rows["y"][:, 0] * (1.0 if self.calls == 1 else 0.1)  # gene 0: worse later
            scores[:, 1:] = rows["y"][:, 1:] * min(1.0, 0.3 * self.calls)      # others improve
            return scores
    block = task.Block(["a", "b", "c"], dosage, np.asarray(ctx["vmask"]), np.asarray(ctx["annotations"]))
    fold = task.prepare_fold(block, np.asarray(batch["y"]), np.ones(B, bool), annotations=True)
    stopper = task.GeneStopper(fold, np.arange(B), patience=2)
    trainer = FakeTrainer()
    jax_put = jax.device_put
    try:
        jax.device_put = lambda x, *_: x
        first = stopper.evaluate(trainer)
        kept = {k: v[0].copy() for k, v in stopper.snapshot.items()}
        model.r[...] = model.r[...] + 1.0      # training moves every gene's parameters
        for _ in range(3):
            last = stopper.evaluate(trainer)
    finally:
        jax.device_put = jax_put
    assert fold.context["active"].tolist() == [0.0, 1.0, 1.0]
    assert last["valid/active_genes"] == 2.0 and last["valid/r2_mean"] >= first["valid/r2_mean"]
    for name, value in kept.items():
        np.testing.assert_array_equal(stopper.snapshot[name][0], value)
    assert not np.allclose(stopper.snapshot["scale"][1], kept["scale"])  # gene 1 kept improving


def test_elastic_net_start_predicts_the_elastic_net_and_stays_frozen():
    """Step 0 of an elastic-net-started GenoNet is the elastic net's prediction in data units."""
    dosage, ctx = _inputs()
    rng = np.random.default_rng(2)
    vmask = np.asarray(ctx["vmask"])
    beta = rng.normal(size=(2, P)) * vmask[:2]          # 2 real genes; the third is padding
    b0 = rng.normal(size=2)
    y = dosage[:, :2] @ np.ones(P) + rng.normal(size=(B, 2))
    block = task.Block(["a", "b"], dosage, vmask, None)
    fold = task.prepare_fold(block, y, np.ones(B, bool), annotations=False)
    fold.context.update(task.linear_from_enet(fold, beta, b0))
    model = GenoNet(G, P, 0, channels=4, kernel=3, hidden=8, linear_init="elastic_net", rngs=nnx.Rngs(0))
    c = fold.context
    params = task.effective_params(model, None, jnp.asarray(vmask), {"lin": c["lin"], "lin_b": c["lin_b"]})
    out = task.predict_snapshot(params, jnp.asarray(fold.dosage), c["mu"], c["sd"], c["vmask"], True)
    want = np.einsum("bgp,gp->bg", dosage[:, :2], beta) + b0
    np.testing.assert_allclose(fold.unscale(np.asarray(out, np.float64))[:, :2], want, rtol=1e-4, atol=1e-4)
    assert not any("lin" in str(path) for path, _ in jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param)))


def _compose(overrides):
    from hydra import compose, initialize_config_dir
    from tfnet_jax.cli import CONFIG_DIR
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=["model=genonet", *overrides])


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """A tiny simulation, plus a gene whose window holds no variant."""
    from tfnet_jax.data.genosim import GenoSimConfig, simulate_genotypes
    root = tmp_path_factory.mktemp("genosim")
    cfg = GenoSimConfig(num_genes=5, num_individuals=64, max_variants=24, region_length=60_000)
    sim = simulate_genotypes(cfg, root)
    genes = pd.read_csv(sim["genes"], dtype={"chrom": str})
    genes.loc[len(genes)] = ["lonely", "1", 400_000_000, 400_001_000]
    genes.to_csv(sim["genes"], index=False)
    expr = pd.read_csv(sim["expression"], index_col=0)
    expr["lonely"] = np.random.default_rng(0).normal(size=len(expr))
    expr.to_csv(sim["expression"])
    return sim


def test_tiny_run_writes_tables_and_skips_bad_gene(tiny_files, tmp_path):
    from tfnet_jax.run import train_and_evaluate
    cfg = _compose(["data=genotypes", f"data.bed={tiny_files['bed']}",
                    f"data.expression={tiny_files['expression']}", f"data.genes={tiny_files['genes']}",
                    f"data.annotations={tiny_files['annotations']}", "data.window=100000", *TINY_RUN])
    metrics = train_and_evaluate(cfg, tmp_path)
    genes = pd.read_csv(tmp_path / "genes.csv")
    assert list(genes.columns[:7]) == ["gene", "n_variants", "heritable", "r2_genonet",
                                       "r2_genonet_noannot", "r2_elastic_net", "r2_elastic_net_annot"]
    assert all(c.startswith("r2sse_") for c in genes.columns[7:11])
    assert len(genes) == 5 and "lonely" not in set(genes["gene"])
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert "lonely" in saved["skipped"] and saved == json.loads(json.dumps(metrics))
    assert set(saved["baselines"]) == {"genonet_noannot", "elastic_net", "elastic_net_annot"}
    assert {"heritable_genes", "all_genes"} <= set(saved["model"])
    assert np.isfinite(genes[["r2_genonet", "r2_elastic_net", "r2_elastic_net_annot"]].to_numpy()).all()
    weights = pd.read_csv(tmp_path / "weights.csv")
    assert list(weights.columns[:3]) == ["gene", "variant", "chrom"]

    from tfnet_jax.twas import associate
    z = associate(tmp_path, tiny_files["trait"])
    assert set(z["gene"]) <= set(genes["gene"]) and "z" in z


def test_mismatched_individuals_is_a_data_error(tiny_files, tmp_path):
    from tfnet_jax.tasks.genotype_run import load_data
    expr = pd.read_csv(tiny_files["expression"], index_col=0)
    expr.index = [f"other{i}" for i in range(len(expr))]
    expr.index.name = "IID"
    expr.to_csv(tmp_path / "expr.csv")
    with pytest.raises(DataError, match="no individual"):
        load_data({"name": "genotypes", "bed": tiny_files["bed"], "expression": str(tmp_path / "expr.csv"),
                   "genes": tiny_files["genes"]}, tmp_path)


@pytest.mark.slow
def test_cli_default_family_runs_on_a_tiny_simulation(tmp_path):
    from tfnet_jax.run import train_and_evaluate
    metrics = train_and_evaluate(_compose([*TINY_SIM, *TINY_RUN]), tmp_path)
    assert (tmp_path / "sim" / "truth.json").exists() and metrics["settings"]["annotations"]


@pytest.mark.slow
def test_notebook_runs(tmp_path, monkeypatch):
    images = execute_notebook("genonet_twas.ipynb", "GENONET_NOTEBOOK_OUT", tmp_path, monkeypatch,
                              timeout=600)
    assert images and (tmp_path / "genes.csv").exists()
