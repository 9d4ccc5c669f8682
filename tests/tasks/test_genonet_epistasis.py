"""GenoNet's epistasis start: the dominance / pairwise codings, their inner-CV fit on the start's
residuals (training rows only), and the same prediction from training's offset and full dosages."""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tfnet_jax.data.genotype.blocks import Block
from tfnet_jax.models.genonet import GenoNet, GenoNetModelConfig, epistasis_features, epistasis_path
from tfnet_jax.schemas.models import ElasticNetConfig
from tfnet_jax.tasks.genonet import prepare as task

EN_CFG = ElasticNetConfig(inner_folds=3, alpha=0.5, n_lambdas=20, max_iter=300, tol=1e-4, block=4)


def test_features_by_hand_agree_in_numpy_and_jax():
    dosage = np.array([[[0.0, 1.0, 2.0]], [[1.0, 2.0, 1.0]]], np.float32)  # [B=2, G=1, P=3]
    idx, center = np.array([[0, 2]], np.int32), np.array([[1.0, 0.5]], np.float32)
    want = np.array([[[0.0, 0.0, (0 - 1) * (2 - 0.5)]],       # het(0), het(2), (d0-1)(d2-0.5)
                     [[1.0, 1.0, (1 - 1) * (1 - 0.5)]]])
    np.testing.assert_allclose(epistasis_features(dosage, idx, center), want)
    np.testing.assert_allclose(epistasis_features(jnp.asarray(dosage), jnp.asarray(idx), jnp.asarray(center)), want)
    params = {"epi_idx": idx, "epi_center": center, "epi_w": np.array([[2.0, -1.0, 0.5]], np.float32),
              "epi_b": np.array([0.25], np.float32)}
    np.testing.assert_allclose(epistasis_path(jnp.asarray(dosage), params), [[0.25 - 0.75], [0.25 + 1.0]])


def _fold(seed=0, n=300, p=10):
    rng = np.random.default_rng(seed)
    dosage = rng.integers(0, 3, (n, 3, p)).astype(np.float32)
    het = (dosage[:, 0, 3] == 1).astype(float)
    y = np.stack([2 * het + dosage[:, 0, 7] + 0.5 * rng.normal(size=n),   # dominance at 3
                  dosage[:, 1, 2] + rng.normal(size=n),                   # additive only
                  rng.normal(size=n)], 1)                                 # no start weight at all
    train = np.arange(n) < 240
    fold = task.prepare_fold(Block(["a", "b", "c"], dosage, np.ones((3, p), bool), None), y, train,
                             annotations=False)
    coef = np.zeros((3, p))
    coef[0, [3, 7]] = [0.2, 1.0]
    coef[1, 2] = 1.0
    fold.context = fold.context.replace(**task.linear_from_enet(fold, coef, np.array([0.0, -1.0, 0.0])))
    return fold, train, coef, y


def test_fit_finds_dominance_only_where_it_is_and_ignores_held_out_rows():
    fold, train, coef, y = _fold()
    epi = task.fit_epistasis(fold, train, coef, 2, EN_CFG, seed=0)
    assert epi["epi_w"].shape == (3, 3)
    np.testing.assert_array_equal(np.sort(epi["epi_idx"][0]), [3, 7])
    het3 = list(epi["epi_idx"][0]).index(3)
    assert epi["epi_w"][0, het3] > 0.5  # the simulated dominance effect (2 / sd(y) ~ 1.0)
    assert np.all(epi["epi_w"][2] == 0) and epi["epi_b"][2] == 0  # no start variant: nothing
    assert np.abs(epi["epi_w"][1]).max() < 0.1  # one start variant, no dominance: (almost) nothing
    y_later = y.copy()
    y_later[~train] = 100.0
    again = task.prepare_fold(fold.block, y_later, train, annotations=False)
    again.context = again.context.replace(lin=fold.context.lin, lin_b=fold.context.lin_b)
    again.y_mean, again.y_sd = fold.y_mean, fold.y_sd
    np.testing.assert_allclose(task.fit_epistasis(again, train, coef, 2, EN_CFG, seed=0)["epi_w"],
                               epi["epi_w"], rtol=1e-5, atol=1e-6)


def test_training_offset_and_full_dosages_predict_alike():
    fold, train, coef, _ = _fold(1)
    fold.context = fold.context.replace(**task.fit_epistasis(fold, train, coef, 2, EN_CFG, seed=0))
    fold.context = fold.context.replace(screen=task.screen_variants(fold, train, 3, coef))
    task.prescreen(fold)
    model = GenoNet(GenoNetModelConfig(3, 10, 0, channels=2, kernel=3, hidden=4, linear_init="elastic_net",
                                       screen_width=3), rngs=nnx.Rngs(0))
    ctx = jax.tree.map(jnp.asarray, fold.context)
    rows = fold.rows(np.arange(len(train)))
    full = nnx.jit(lambda m, d, c: m(d, c))(model, jnp.asarray(fold.dosage), ctx)
    fast = nnx.jit(lambda m, d, c, o: m(d, c, offset=o))(model, rows["dosage"], ctx, rows["offset"])
    np.testing.assert_allclose(fast, full, rtol=1e-4, atol=1e-4)
    without = ctx.replace(epi_idx=None, epi_center=None, epi_w=None, epi_b=None)
    assert not np.allclose(nnx.jit(lambda m, d, c: m(d, c))(model, jnp.asarray(fold.dosage), without), full,
                           atol=1e-3)  # the epistasis path does contribute


def test_choice_takes_the_elastic_net_where_its_start_scores_at_least_genonet():
    from tfnet_jax.maths import per_gene_r2
    from tfnet_jax.tasks.genonet.fit import elastic_net_wins
    fold, train, _, _ = _fold()
    valid = np.flatnonzero(~train)
    ctx = fold.context
    start = np.asarray(task.elastic_net_path(fold.dosage[valid], ctx.lin, ctx.mu, ctx.sd, ctx.vmask))
    r2 = per_gene_r2(start + ctx.lin_b, fold.y[valid])
    wins = elastic_net_wins(fold, valid, np.array([r2[0] + 0.01, r2[1], np.nan]))
    assert list(wins) == [False, True, True]  # GenoNet better / a tie / GenoNet has no score
