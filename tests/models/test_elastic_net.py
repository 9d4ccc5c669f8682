"""Elastic net (PredictDB-style baseline for GenoNet) against sklearn / glum on tiny genes."""
import warnings

import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ElasticNet, ElasticNetCV
from sklearn.model_selection import PredefinedSplit
from sklearn.preprocessing import StandardScaler

from tfnet_jax.models.elastic_net import cv_r2, enet_path, fit_nested_cv, heritable_filter

N, P = 80, 40
TIGHT = dict(tol=1e-6, max_iter=5000)
LAMS = np.array([0.2, 0.05, 0.02])  # one path length everywhere: one compile for enet_path


def _genotypes(rng, n, p):
    """Dosages with LD: two haplotypes copying from 12 founders, switching now and then."""
    founders = (rng.random((12, p)) < rng.uniform(0.1, 0.5, p)).astype(np.float32)
    def hap():
        src = np.repeat(rng.integers(12, size=(n, 1)), p, 1)
        switch = np.cumsum(rng.random((n, p)) < 0.15, 1)
        src = (src + switch * rng.integers(1, 12, size=(n, 1))) % 12
        return founders[src, np.arange(p)]
    return hap() + hap()


def _genes(seed=0, n=N, sizes=(40, 30, 10, 25), h2=0.6):
    rng = np.random.default_rng(seed)
    x, y, mask = np.zeros((len(sizes), n, P), np.float32), np.zeros((len(sizes), n), np.float32), \
        np.zeros((len(sizes), P), bool)
    for g, p in enumerate(sizes):
        xg = _genotypes(rng, n, p)
        b = np.zeros(p)
        b[rng.choice(p, 3, replace=False)] = rng.normal(size=3)
        sig = xg @ b
        sig = (sig - sig.mean()) / sig.std()
        x[g, :, :p], mask[g, :p] = xg, True
        y[g] = 3.0 + np.sqrt(h2) * sig + np.sqrt(1 - h2) * rng.normal(size=n)
    return x, mask, y


def _std(xg):
    sc = StandardScaler().fit(xg)
    return sc, np.where(sc.scale_ > 0, sc.scale_, 1.0)


def test_fixed_lambda_matches_sklearn():
    x, mask, y = _genes()
    lams = LAMS
    coef, icpt = enet_path(x, mask, y, lams, **TIGHT)
    for g in range(len(x)):
        xg = x[g][:, mask[g]].astype(np.float64)
        sc, sd = _std(xg)
        for l, lam in enumerate(lams):
            ref = ElasticNet(alpha=lam, l1_ratio=0.5, tol=1e-12, max_iter=100_000).fit(sc.transform(xg), y[g])
            ours = coef[g, l, mask[g]] * sd
            np.testing.assert_allclose(ours, ref.coef_, rtol=1e-3, atol=1e-3 * np.abs(ref.coef_).max())
            # Intercept and original-scale coefficients predict like the standardised model.
            np.testing.assert_allclose(xg @ coef[g, l, mask[g]] + icpt[g, l],
                                       ref.predict(sc.transform(xg)), atol=2e-3)


def test_working_set_matches_sklearn():
    """P > the smallest working-set size: the screened solve (strong rule + KKT check) must
    give the same coefficients as sklearn on all columns."""
    rng = np.random.default_rng(5)
    n, p = 80, 300
    xg = _genotypes(rng, n, p)
    b = np.zeros(p)
    b[rng.choice(p, 4, replace=False)] = rng.normal(size=4)
    y = (xg @ b + rng.normal(size=n)).astype(np.float32)
    coef, _ = enet_path(xg[None], np.ones((1, p), bool), y[None], LAMS, **TIGHT)
    x64 = xg.astype(np.float64)
    sc, sd = _std(x64)
    for l, lam in enumerate(LAMS):
        ref = ElasticNet(alpha=lam, l1_ratio=0.5, tol=1e-12, max_iter=100_000).fit(sc.transform(x64), y)
        np.testing.assert_allclose(coef[0, l] * sd, ref.coef_, rtol=1e-3, atol=1e-3 * np.abs(ref.coef_).max())


def test_padding_gets_zero_weight_and_changes_nothing():
    x, mask, y = _genes(sizes=(10, 40, 40, 40))
    coef, _ = enet_path(x, mask, y, LAMS, **TIGHT)
    assert np.all(coef[0][:, ~mask[0]] == 0.0) and np.any(coef[0] != 0.0)

    folds = np.arange(N) % 4
    res = fit_nested_cv(x, mask, y, folds, inner_k=3, block=4, **TIGHT)
    assert np.all(res["coef"][0, 10:] == 0.0)
    one = fit_nested_cv(x[:1, :, :10], mask[:1, :10], y[:1], folds, inner_k=3, block=1, **TIGHT)
    np.testing.assert_allclose(res["lambdas"][0], one["lambdas"][0], rtol=1e-5)
    np.testing.assert_allclose(res["pred"][0], one["pred"][0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(res["coef"][0, :10], one["coef"][0], rtol=1e-3, atol=1e-5)


def test_nested_cv_r2_matches_sklearn_same_folds_and_grid():
    n = 120
    x, mask, y = _genes(seed=1, n=n, h2=0.7)
    folds = np.arange(n) % 5
    res = fit_nested_cv(x, mask, y, folds, inner_k=5, n_lambdas=30, block=4, seed=3, **TIGHT)
    assert res["pred"].shape == (4, n) and res["lambda_outer"].shape == (4, 5)
    ref_pred = np.zeros((4, n))
    for g in range(4):
        xg = x[g][:, mask[g]].astype(np.float64)
        for k in range(5):
            tr = res["outer_folds"] != k
            sc = StandardScaler().fit(xg[tr])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                m = ElasticNetCV(l1_ratio=0.5, alphas=res["lambdas"][g, k], tol=1e-8, max_iter=100_000,
                                 cv=PredefinedSplit(res["inner_folds"][k][tr])).fit(sc.transform(xg[tr]), y[g, tr])
            ref_pred[g, ~tr] = m.predict(sc.transform(xg[~tr]))
    ours, ref = cv_r2(y, res["pred"]), cv_r2(y, ref_pred)
    assert np.all(ref[0] > 0.2)  # genes with real signal
    np.testing.assert_allclose(ours[0], ref[0], atol=0.005)
    np.testing.assert_allclose(ours[1], ref[1], atol=0.005)
    # Stopping the path once no inner-CV curve improves (patience) chose what the full path does.
    whole = fit_nested_cv(x, mask, y, folds, inner_k=5, n_lambdas=30, block=4, seed=3, patience=0, **TIGHT)
    np.testing.assert_array_equal(res["lambda_outer"], whole["lambda_outer"])
    np.testing.assert_allclose(res["pred"], whole["pred"], rtol=1e-5, atol=1e-5)
    # Final model: refit on all rows at the lambda chosen by inner CV over all rows.
    assert np.all(np.isin(res["lambda"][:, None], res["lambdas"][:, -1]).any(1))
    # Each outer fold's own model gives that fold's held-out predictions; its start (the inner
    # fit without inner fold 0) equals a fit on those rows at the fold's lambda.
    for k in (0, 3):
        held = res["outer_folds"] == k
        own = np.einsum("gnp,gp->gn", x[:, held], res["coef_outer"][:, k]) + res["intercept_outer"][:, k, None]
        np.testing.assert_allclose(own, res["pred"][:, held], rtol=1e-4, atol=1e-4)
        rows = (res["inner_folds"][k] >= 0) & (res["inner_folds"][k] != 0)
        coef, icpt = enet_path(x, mask, y, res["lambda_outer"][:, k:k + 1] * np.array([4.0, 2.0, 1.0]),
                               rows=rows, **TIGHT)
        np.testing.assert_allclose(res["coef_start"][:, k], coef[:, -1], atol=2e-4)
        np.testing.assert_allclose(res["intercept_start"][:, k], icpt[:, -1], atol=2e-3)
        assert not np.allclose(res["coef_start"][:, k], res["coef_outer"][:, k], atol=1e-3)
    assert np.all(res["coef_outer"][:, :, ~mask.any(0)] == 0)


def test_penalty_factors():
    x, mask, y = _genes(seed=2)
    base, _ = enet_path(x, mask, y, LAMS, **TIGHT)
    ones, _ = enet_path(x, mask, y, LAMS, penalty_factor=np.ones_like(mask, float), **TIGHT)
    np.testing.assert_array_equal(base, ones)
    g, j = 0, int(np.argmax(np.abs(base[0, 1])))
    pf = np.ones(mask.shape)
    pf[g, j] = 1e6
    heavy, _ = enet_path(x, mask, y, LAMS, penalty_factor=pf, **TIGHT)
    assert base[g, 1, j] != 0 and heavy[g, 1, j] == 0.0
    folds = np.arange(N) % 4
    a = fit_nested_cv(x, mask, y, folds, inner_k=3, block=4, **TIGHT)
    b = fit_nested_cv(x, mask, y, folds, inner_k=3, block=4, penalty_factor=np.ones(mask.shape), **TIGHT)
    np.testing.assert_array_equal(a["pred"], b["pred"])


def test_penalty_factors_match_glum():
    glum = pytest.importorskip("glum")
    x, mask, y = _genes(seed=4)
    rng = np.random.default_rng(0)
    pf = np.where(mask, rng.uniform(0.2, 3.0, mask.shape), 0.0)
    coef, _ = enet_path(x, mask, y, LAMS, penalty_factor=pf, **TIGHT)
    g, real = 1, mask[1]
    xs = StandardScaler().fit_transform(x[g][:, real].astype(np.float64))
    norm = pf[g, real] * real.sum() / pf[g, real].sum()  # glmnet's rescaling
    ref = glum.GeneralizedLinearRegressor(alpha=0.05, l1_ratio=0.5, P1=norm, P2=norm, family="normal",
                                          gradient_tol=1e-10, max_iter=10_000).fit(xs, y[g])
    ours = coef[g, 1, real] * _std(x[g][:, real].astype(np.float64))[1]
    np.testing.assert_allclose(ours, ref.coef_, rtol=1e-3, atol=2e-3 * np.abs(ref.coef_).max())


def test_metrics():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(3, 50))
    pred = np.stack([y[0] + rng.normal(size=50), rng.normal(size=50), np.zeros(50)])
    r2_pearson, r2 = cv_r2(y, pred)
    rho, p, keep = heritable_filter(y, pred)
    for g in range(2):
        ref_r, ref_p = pearsonr(y[g], pred[g])
        assert rho[g] == pytest.approx(ref_r) and p[g] == pytest.approx(ref_p, rel=1e-6)
        assert r2_pearson[g] == pytest.approx(ref_r ** 2)
        assert r2[g] == pytest.approx(1 - np.sum((y[g] - pred[g]) ** 2) / np.sum((y[g] - y[g].mean()) ** 2))
    assert keep.tolist() == [True, False, False] and rho[2] == 0.0 and p[2] == 1.0
