"""GenoNet: padding, gene independence, the shared annotation prior, per-gene stopping, runs."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from conftest import GENONET_TINY_RUN as TINY_RUN
from conftest import compose_genonet as _compose
from conftest import execute_notebook
from flax import nnx

from tfnet_jax.data.genotype.blocks import Block
from tfnet_jax.errors import DataError
from tfnet_jax.models.genonet import PER_GENE, GenoNet, GenoNetContext, GenoNetModelConfig
from tfnet_jax.tasks.genonet import prepare as task

G, P, K, B = 3, 12, 2, 8
TINY_SIM = ["data.num_genes=5", "data.num_individuals=64", "data.max_variants=24",
            "data.region_length=60000", "data.null_fraction=0.2"]


@nnx.jit
def _forward(model, dosage, ctx):  # one compile for the whole forward pass, not one per op
    return model(dosage, ctx)


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    vmask = np.ones((G, P), bool)
    vmask[1, 8:] = False                       # gene 1 has 8 real variants, gene 2 has 5
    vmask[2, 5:] = False
    dosage = rng.integers(0, 3, (B, G, P)).astype(np.float32)
    ctx = GenoNetContext(vmask=jnp.asarray(vmask), mu=jnp.ones((G, P, 2)) * 0.5, sd=jnp.ones((G, P, 2)),
                         annotations=jnp.asarray(rng.normal(size=(G, P, K)), jnp.float32),
                         active=jnp.ones(G))
    return dosage, ctx


def _model(num_annotations=K, genes=G):
    model = GenoNet(GenoNetModelConfig(genes, P, num_annotations, channels=4, kernel=3, hidden=8),
                    rngs=nnx.Rngs(0))
    if num_annotations:  # a non-trivial gate, so the annotation path matters below
        model.gate_out.kernel[...] = jax.random.normal(jax.random.key(1), model.gate_out.kernel.shape)
    return model


def test_padded_variants_change_nothing():
    dosage, ctx = _inputs()
    model = _model()
    before = _forward(model, jnp.asarray(dosage), ctx)
    pad = ~np.asarray(ctx.vmask)
    changed = dosage.copy()
    changed[:, pad] = 7.0
    ctx2 = ctx.replace(annotations=jnp.where(pad[..., None], 50.0, ctx.annotations))
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
        return nnx.eval_shape(lambda: GenoNet(GenoNetModelConfig(genes, P, annotations, channels=4,
                                                                 kernel=3, hidden=8), rngs=nnx.Rngs(0)))
    small, big = shapes(3), shapes(5)
    for name in ("gate_in", "gate_out"):
        for a, b in zip(jax.tree.leaves(nnx.state(getattr(small, name))),
                        jax.tree.leaves(nnx.state(getattr(big, name)))):
            assert a.shape == b.shape  # no gene axis
    for name in PER_GENE[1:]:
        assert getattr(big, name).shape[0] == 5
    assert not hasattr(shapes(3, 0), "gate_in")  # without annotations: scales only


def test_stopped_genes_get_no_gradient():
    dosage, ctx = _inputs()
    model = _model()
    batch = {"dosage": jnp.asarray(dosage), "y": jnp.asarray(np.random.default_rng(1).normal(size=(B, G)),
                                                               jnp.float32), "mask": jnp.ones(B)}
    ctx = ctx.replace(active=jnp.asarray([1.0, 0.0, 1.0]))
    loss_fn = task.make_loss_fn(0.01)
    grads = nnx.jit(nnx.grad(lambda m, b, c: loss_fn(m, b, c, jax.random.key(0))[0]))(model, batch, ctx)
    for name in ("r", *PER_GENE[1:]):
        g = np.asarray(getattr(grads, name)[...])
        assert np.all(g[1] == 0), name
        assert np.any(g[0] != 0) or name == "conv_b", name


def test_elastic_net_start_predicts_the_elastic_net_and_stays_frozen():
    """Step 0 of an elastic-net-started GenoNet is the elastic net's prediction in data units."""
    dosage, ctx = _inputs()
    rng = np.random.default_rng(2)
    vmask = np.asarray(ctx.vmask)
    beta = rng.normal(size=(2, P)) * vmask[:2]          # 2 real genes; the third is padding
    b0 = rng.normal(size=2)
    y = dosage[:, :2] @ np.ones(P) + rng.normal(size=(B, 2))
    block = Block(["a", "b"], dosage, vmask, None)
    fold = task.prepare_fold(block, y, np.ones(B, bool), annotations=False)
    fold.context = fold.context.replace(**task.linear_from_enet(fold, beta, b0))
    model = GenoNet(GenoNetModelConfig(G, P, 0, channels=4, kernel=3, hidden=8, linear_init="elastic_net"),
                    rngs=nnx.Rngs(0))
    c = fold.context
    params = task.effective_params(model, None, jnp.asarray(vmask), {"lin": c.lin, "lin_b": c.lin_b})
    out = task.predict_snapshot(params, jnp.asarray(fold.dosage), c.mu, c.sd, c.vmask, True)
    want = np.einsum("bgp,gp->bg", dosage[:, :2], beta) + b0
    np.testing.assert_allclose(fold.unscale(np.asarray(out, np.float64))[:, :2], want, rtol=1e-4, atol=1e-4)
    assert not any("lin" in str(path) for path, _ in jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param)))


def test_screened_network_on_every_variant_equals_the_unscreened_one():
    """The screen's gather and the elastic-net path over all variants change no arithmetic."""
    dosage, ctx = _inputs()
    rng = np.random.default_rng(3)
    ctx = ctx.replace(lin=jnp.asarray(rng.normal(size=(G, P)), jnp.float32), lin_b=jnp.ones(G),
                      mu=jnp.asarray(rng.uniform(0, 1, (G, P, 2)), jnp.float32),
                      sd=jnp.asarray(rng.uniform(0.5, 2, (G, P, 2)), jnp.float32))
    models = [GenoNet(GenoNetModelConfig(G, P, K, channels=4, kernel=3, hidden=8, linear_init="elastic_net",
                                         screen_width=width), rngs=nnx.Rngs(0)) for width in (None, P)]
    for model in models:  # a non-trivial gate and output layer, identical in both
        model.gate_out.kernel[...] = jax.random.normal(jax.random.key(1), model.gate_out.kernel.shape)
        model.w2[...] = jax.random.normal(jax.random.key(2), model.w2.shape)
    full = _forward(models[0], jnp.asarray(dosage), ctx)
    every = jnp.tile(jnp.arange(P, dtype=jnp.int32), (G, 1))
    np.testing.assert_allclose(_forward(models[1], jnp.asarray(dosage), ctx.replace(screen=every)), full,
                               rtol=1e-5, atol=1e-5)
    # Screened to 3 variants with no elastic-net path: the other variants change nothing.
    narrow = GenoNet(GenoNetModelConfig(G, P, K, channels=4, kernel=3, hidden=8, linear_skip=True,
                                        screen_width=3), rngs=nnx.Rngs(0))
    screen = jnp.asarray([[0, 4, 9], [1, 2, 7], [0, 3, 6]], jnp.int32)  # gene 2: variant 6 is padding
    lean = ctx.replace(lin=None, lin_b=None)
    before = np.asarray(_forward(narrow, jnp.asarray(dosage), lean.replace(screen=screen)))
    changed = dosage.copy()
    outside = np.ones((G, P), bool)
    outside[np.arange(G)[:, None], np.asarray(screen)] = False
    changed[:, outside] = 2.0 - changed[:, outside]
    np.testing.assert_allclose(_forward(narrow, jnp.asarray(changed), lean.replace(screen=screen)), before,
                               rtol=1e-6, atol=1e-6)
    changed[:, 0, 4] = 2.0 - changed[:, 0, 4]  # a screened variant does matter
    assert not np.allclose(np.asarray(_forward(narrow, jnp.asarray(changed), lean.replace(screen=screen)))[:, 0],
                           before[:, 0])


def test_variant_screen_ranks_elastic_net_picks_then_correlation_on_training_rows_only():
    rng = np.random.default_rng(4)
    n, p = 200, 12
    dosage = rng.integers(0, 3, (n, 2, p)).astype(np.float32)
    vmask = np.ones((2, p), bool)
    vmask[1, 2:] = False  # gene 1 has two variants: padding fills its screen
    het = (dosage[:, 0, 3] == 1).astype(float)
    y = np.stack([3 * het + dosage[:, 0, 7] + 0.3 * rng.normal(size=n), rng.normal(size=n)], 1)
    train = np.arange(n) < 150
    coef = np.zeros((2, 16))  # fits are padded to the widest bucket
    coef[0, 10] = 0.1
    fold = task.prepare_fold(Block(["a", "b"], dosage, vmask, None), y, train, annotations=False)
    screen = task.screen_variants(fold, train, 3, coef)
    np.testing.assert_array_equal(screen[0], [3, 7, 10])  # dominance, additive, elastic-net pick
    assert list(screen[1][:2]) == [0, 1] and not vmask[1, screen[1][2]]
    y_later = y.copy()
    y_later[~train] = rng.normal(size=(n - 150, 2)) * 100  # rows outside training change nothing
    fold2 = task.prepare_fold(Block(["a", "b"], dosage, vmask, None), y_later, train, annotations=False)
    np.testing.assert_array_equal(task.screen_variants(fold2, train, 3, coef), screen)
    np.testing.assert_array_equal(task.screen_variants(fold, train, 2, None)[0], [3, 7])

    # Training's pre-screened inputs (K dosages + the elastic-net path as an offset) predict
    # what the full dosages do.
    fold.context = fold.context.replace(
        screen=screen, **task.linear_from_enet(fold, coef + 0.05 * (rng.random(coef.shape) < 0.5), np.ones(2)))
    task.prescreen(fold)
    model = GenoNet(GenoNetModelConfig(2, p, 0, channels=2, kernel=3, hidden=4, linear_init="elastic_net",
                                       screen_width=3), rngs=nnx.Rngs(0))
    model.w2[...] = jnp.ones_like(model.w2[...])
    ctx = jax.tree.map(jnp.asarray, fold.context)
    rows = fold.rows(np.arange(n))
    assert rows["dosage"].shape == (n, 2, 3)
    full = nnx.jit(lambda m, d, c: m(d, c))(model, jnp.asarray(fold.dosage), ctx)
    fast = nnx.jit(lambda m, d, c, o: m(d, c, offset=o))(model, rows["dosage"], ctx, rows["offset"])
    np.testing.assert_allclose(fast, full, rtol=1e-4, atol=1e-4)


def test_tiny_run_writes_tables_and_skips_bad_gene(genonet_run, genonet_files):
    cfg, tmp_path, metrics = genonet_run
    genes = pd.read_csv(tmp_path / "genes.csv")
    assert list(genes.columns[:9]) == ["gene", "n_variants", "heritable", "r2_genonet",
                                       "r2_genonet_noannot", "r2_genonet_choice", "r2_elastic_net",
                                       "r2_elastic_net_annot", "r2_genonet_starts"]
    assert all(c.startswith("r2sse_") for c in genes.columns[9:15])
    assert genes.columns[-1] == "genonet_network_folds"
    assert len(genes) == 5 and "lonely" not in set(genes["gene"])
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert "lonely" in saved["skipped"] and saved == json.loads(json.dumps(metrics))
    assert set(saved["baselines"]) == {"genonet_noannot", "genonet_choice", "elastic_net",
                                       "elastic_net_annot", "genonet_starts"}
    assert {"heritable_genes", "all_genes"} <= set(saved["model"])
    assert np.isfinite(genes[["r2_genonet", "r2_genonet_choice", "r2_elastic_net",
                              "r2_elastic_net_annot", "r2_genonet_starts"]].to_numpy()).all()
    weights = pd.read_csv(tmp_path / "weights.csv")
    assert list(weights.columns[:4]) == ["gene", "variant", "varID", "chrom"]

    from tfnet_jax.analysis.twas import associate
    z = associate(tmp_path, genonet_files["trait"])
    assert set(z["gene"]) <= set(genes["gene"]) and "z" in z


def test_mismatched_individuals_is_a_data_error(genonet_files, tmp_path):
    from tfnet_jax.data.load import load_genotype_data
    expr = pd.read_csv(genonet_files["expression"], index_col=0)
    expr.index = [f"other{i}" for i in range(len(expr))]
    expr.index.name = "IID"
    expr.to_csv(tmp_path / "expr.csv")
    with pytest.raises(DataError, match="no individual"):
        load_genotype_data({"name": "genotypes", "bed": genonet_files["bed"], "expression": str(tmp_path / "expr.csv"),
                   "genes": genonet_files["genes"]}, tmp_path)


@pytest.mark.slow
def test_cli_default_family_runs_on_a_tiny_simulation(tmp_path):
    from tfnet_jax.run import train_and_evaluate
    metrics = train_and_evaluate(_compose([*TINY_SIM, *TINY_RUN, f"data.cache={tmp_path / 'sim'}"]),
                                 tmp_path)
    assert (tmp_path / "sim" / "truth.json").exists() and metrics["settings"]["annotations"]


@pytest.mark.slow
def test_notebook_runs(tmp_path, monkeypatch):
    images = execute_notebook("genonet_twas.ipynb", "GENONET_NOTEBOOK_OUT", tmp_path, monkeypatch,
                              timeout=600)
    assert images and (tmp_path / "genes.csv").exists()


# ---------------------------------------------------------------- the named fold x block loop


def test_resume_after_a_kill_redoes_only_the_missing_unit(genonet_run, tmp_path):
    import shutil

    from tfnet_jax.run import train_and_evaluate
    cfg, finished, _ = genonet_run
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    units = sorted((run_dir / "fits").rglob("*.npz"))
    assert len(units) == 2 + 2 * 2 * 2  # elastic nets (parts merged) + (genonet, noannot) x 2 folds x 2 blocks
    killed = run_dir / "fits" / "genonet" / "fold1_block0.npz"
    killed.unlink()
    (run_dir / "metrics.json").unlink()  # killed before the end: no finished mark
    before = {u: u.stat().st_mtime_ns for u in units if u != killed}
    train_and_evaluate(cfg, run_dir)
    assert killed.exists()
    assert {u: u.stat().st_mtime_ns for u in before} == before  # nothing else was refitted
    assert (run_dir / "genes.csv").read_bytes() == (finished / "genes.csv").read_bytes()


def _restored(genonet_run):
    from tfnet_jax.tasks.genonet.family import GenoNetFamily
    cfg, run_dir, _ = genonet_run
    family = GenoNetFamily()
    data = family.load(cfg)
    prepared = family.prepare(cfg, data, family.split(cfg, data))
    return family, cfg, prepared, family.restore(cfg, prepared, run_dir), run_dir


def _training_dosages(data):
    table = pd.concat([pd.DataFrame(w.float_dosages(), index=data.individuals, columns=w.variant_ids)
                       for w in data.windows], axis=1)
    return table.loc[:, ~table.columns.duplicated()]


def test_predict_new_genotypes(genonet_run, genonet_files):
    from tfnet_jax.tasks.genonet.family import predict_expression
    family, cfg, prepared, fitted, run_dir = _restored(genonet_run)
    table = _training_dosages(prepared.data)
    # Elastic net: the final weights of weights.csv applied by hand, plus the intercept.
    got = predict_expression(prepared, fitted.predictor, table, method="elastic_net")
    weights = pd.read_csv(run_dir / "weights.csv", dtype={"variant": str})
    assert len(weights) > 0
    intercept = fitted.predictor.cache.get("elastic_net")["intercept"]
    for i, gene in enumerate(prepared.genes):
        w = weights[weights["gene"] == gene]
        want = table[list(w["variant"])].to_numpy(np.float64) @ w["weight"].to_numpy() + intercept[i]
        np.testing.assert_allclose(got[gene].to_numpy(), want, rtol=1e-5, atol=1e-5)
    from tfnet_jax.tasks.genonet.fit import genonet_unit
    assert fitted.predictor.cache.get(genonet_unit("genonet", 0, 0))["param_screen"].shape[1] == 16
    # GenoNet: the same from the PLINK files as from a table, the mean of the fold models.
    chunks = list(family.predict(cfg, prepared, fitted, table))
    frame = chunks[0].frame().set_index("individual")
    assert set(frame.pop("split")) == {"train"}  # the cohort's own individuals
    assert list(frame.columns) == prepared.genes and np.isfinite(frame.to_numpy()).all()
    from_plink = predict_expression(prepared, fitted.predictor, genonet_files["bed"])
    np.testing.assert_allclose(from_plink.loc[frame.index].to_numpy(), frame.to_numpy(), rtol=1e-6)
    assert not np.allclose(frame.to_numpy(), got.to_numpy())  # not the elastic net
    # A missing variant is named; a missing dosage takes the training mean.
    with pytest.raises(DataError, match=str(table.columns[3])):
        predict_expression(prepared, fitted.predictor, table.drop(columns=table.columns[3]))
    holes = table.copy()
    holes.iloc[0, :] = np.nan
    assert np.isfinite(predict_expression(prepared, fitted.predictor, holes).to_numpy()).all()


def test_per_gene_choice_uses_the_elastic_net_where_it_wins_on_the_stopping_rows(genonet_run):
    from tfnet_jax.models.elastic_net import fold_masks
    from tfnet_jax.tasks.genonet.fit import genonet_unit
    family, cfg, prepared, fitted, run_dir = _restored(genonet_run)
    pred, folds = fitted.predictor.pred, prepared.folds
    inner = fold_masks(folds, int(cfg.model.elastic_net.inner_folds), int(cfg.seed))["inner"]
    name = "genonet" if prepared.use_annotations else "genonet_noannot"
    kept = start = plain = 0
    for b, block in enumerate(prepared.blocks):
        for c in range(folds.max() + 1):
            # Early stopping on the elastic net's inner fold 0: training rows its start never saw.
            np.testing.assert_array_equal(prepared.valid_rows[c], np.flatnonzero(inner[c] == 0))
            assert not (folds[prepared.valid_rows[c]] == c).any()
            unit = fitted.predictor.cache.get(genonet_unit(name, c, b))
            held = folds == c
            for j in range(len(block.genes)):
                own = bool(unit["elastic_net_wins"][j])
                kept += own
                fallback = "elastic_net_annot" if name == "genonet" and cfg.model.annotated_start else "elastic_net"
                want = pred[fallback if own else name][start + j, held]
                np.testing.assert_array_equal(pred["genonet_choice"][start + j, held], want)
                if unit["kept_step"][j] == 0 and not unit["param_epi_w"][j].any():
                    # start kept, no epistasis: GenoNet predicts with the fold's own (start's) elastic net
                    plain += 1
                    np.testing.assert_allclose(pred[name][start + j, held], pred[fallback][start + j, held],
                                               rtol=1e-3, atol=1e-3)
        start += len(block.genes)
    assert 0 <= kept < start * (folds.max() + 1)  # GenoNet's own models are used somewhere
    assert plain > 0


