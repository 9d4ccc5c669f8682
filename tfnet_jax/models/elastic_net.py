"""Elastic net fitted the PredictDB way (TWAS stage 1 baseline for GenoNet), in JAX: nested
cross-validation over blocks of genes (lambda by inner CV, held-out predictions per outer fold,
a final fit on every row), on the solver of `tfnet_jax/models/enet_solver.py`.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from tfnet_jax.maths import per_gene_r2
from tfnet_jax.maths import pearson_test, row_pearson
from tfnet_jax.models.enet_solver import enet_path, lambda_path, normalise_pf, prepare

__all__ = ["enet_path", "fit_nested_cv", "cv_r2", "heritable_filter", "fold_masks"]


def fold_masks(outer_folds, inner_k=5, seed=0):
    """Fit layout of nested CV, shared by all genes.

    Problem c < K trains on rows outside outer fold c; problem K on all rows. Each problem
    has a 'full' fit (index c*(inner_k+1)) and inner_k inner fits. Returns dict with
    train / evaluate [F, n] 0/1 masks, problem [F], inner [K+1, n] inner fold ids (-1 = not
    in the problem's training rows), outer [n] (outer fold index 0..K-1).
    """
    folds = np.asarray(outer_folds)
    outer = np.unique(folds, return_inverse=True)[1].reshape(folds.shape)
    n, k = outer.size, outer.max() + 1
    rng = np.random.default_rng(seed)
    train, evaluate, problem, inner = [], [], [], np.full((k + 1, n), -1)
    for c in range(k + 1):
        rows = np.flatnonzero(outer != c)               # c == k: every row
        inner[c, rows[rng.permutation(rows.size)]] = np.arange(rows.size) % inner_k
        train.append(outer != c)
        evaluate.append(outer == c)
        for j in range(inner_k):
            train.append(inner[c] >= 0)
            train[-1] = train[-1] & (inner[c] != j)
            evaluate.append(inner[c] == j)
        problem += [c] * (inner_k + 1)
    return dict(train=np.array(train, np.float32), evaluate=np.array(evaluate, np.float32),
                problem=np.array(problem), inner=inner, outer=outer)


@partial(jax.jit, static_argnames=("alpha", "n_lambdas", "inner_k", "max_iter", "tol", "n_power",
                                   "patience"))
def _nested_block(x, mask, y, usable, pf, train, evaluate, outer, alpha, n_lambdas, inner_k,
                  max_iter, tol, n_power, patience):
    xc, yc, xm, ym = prepare(x, mask, y, pf)
    n_fit, n = train.shape
    full = jnp.arange(0, n_fit, inner_k + 1)            # the 'full' fit of each problem
    k_outer = full.size - 1
    n_train = train[full].sum(1)                        # [C]

    # Kept weights: each outer problem's fit on its training rows, the same problem's inner
    # fit without its inner fold 0 (a start that never saw those rows), and the final fit.
    kept = jnp.concatenate([full[:-1], full[:-1] + 1, full[-1:]])

    def gene(xc, yc, usable, pf, xm, ym):
        p_real = usable.sum()

        def lam_of(g0):
            lam_max = jnp.maximum(jnp.max(g0[full], 1), 1e-12)            # [C]
            ratio = jnp.where(n_train < p_real, 0.01, 1e-4)
            grid = lam_max[:, None] * ratio[:, None] ** jnp.linspace(0.0, 1.0, n_lambdas)
            return jnp.repeat(grid, inner_k + 1, axis=0)                   # [F, L]

        def emit(l, beta, z, st):
            mu, sd, ybar = st
            resid = (yc[None, :] - ybar[:, None] - z) * evaluate
            mse = jnp.sum(resid ** 2, 1) / jnp.maximum(evaluate.sum(1), 1.0)
            pred = jnp.sum((z + ybar[:, None])[full[:-1]] * evaluate[full[:-1]], 0) + ym
            # Original-scale weights of the final fit and of `kept` (outer fits, inner-0 fits).
            b = beta[kept] / sd[kept]
            return mse, pred, b, ym + ybar[kept] - jnp.sum(b * (mu[kept] + xm), 1)

        def inner_cv(o):  # inner-CV MSE per problem at one lambda
            return o[0].reshape(k_outer + 1, inner_k + 1)[:, 1:].mean(1)

        lambdas, (mse, pred, coef, icpt), n_done = lambda_path(
            xc, yc, train, usable, pf, lam_of, alpha, max_iter, tol, n_power, emit,
            stall=inner_cv, patience=patience)
        # Inner CV error: mean over inner folds of each fold's MSE (as sklearn ElasticNetCV).
        cv = mse.T.reshape(k_outer + 1, inner_k + 1, -1)[:, 1:].mean(1)  # [C, L]
        cv = jnp.where(jnp.arange(cv.shape[1]) < n_done, cv, jnp.inf)      # not reached
        best = jnp.argmin(cv, 1)                                           # first min = largest lambda
        held_out = pred[best[outer], jnp.arange(n)]
        grid = lambdas[full]
        # Every kept fit at its problem's lambda.min: [2K + 1, P] / [2K + 1].
        at = jnp.concatenate([best[:-1], best[:-1], best[-1:]])
        coef = coef[at, jnp.arange(at.size)]
        icpt = icpt[at, jnp.arange(at.size)]
        k = k_outer
        return dict(pred=held_out, lambda_outer=grid[jnp.arange(k_outer), best[:-1]],
                    lambda_=grid[-1, best[-1]], coef=coef[-1], intercept=icpt[-1],
                    coef_outer=coef[:k], intercept_outer=icpt[:k],
                    coef_start=coef[k:2 * k], intercept_start=icpt[k:2 * k],
                    lambdas=grid, cv_mse=cv)
    # lax.map, not vmap: genes run one after another so each keeps its own working-set
    # size and its own number of FISTA iterations.
    return jax.lax.map(lambda a: gene(*a), (xc, yc, usable, pf, xm, ym))


def _result_shape(key: str, block_value, genes: int, width: int) -> tuple:
    """A result over every gene; weights ("coef*") over the genes' own `width` columns."""
    shape = (genes,) + block_value.shape[1:]
    return shape[:-1] + (width,) if key.startswith("coef") else shape


def fit_nested_cv(X, mask, y, outer_folds, inner_k=5, alpha=0.5, n_lambdas=50,
                  penalty_factor=None, seed=0, block=16, tol=1e-4, max_iter=300, n_power=8,
                  patience=10):
    """PredictDB-style nested-CV elastic net for G genes (one compile per block shape).

    X [G, n, P] dosages padded with zero columns, mask [G, P] real variants, y [G, n],
    outer_folds [n] fold labels (same for every gene), penalty_factor [G, P] or None.
    Inner folds (inner_k; PredictDB's cv.glmnet uses 10) are drawn once from `seed` and
    shared by all genes. lambda path: n_lambdas log-spaced from lambda_max to
    lambda_max * (0.01 if n_train < p else 1e-4), computed per training set (outer-train
    sets and all rows); its inner folds reuse it, as cv.glmnet does. glmnet's default is
    100 lambdas; 50 halves the path cost (it is linear in the path length) and the CV
    minimum is flat on a log grid this fine (R^2 check: benchmarks/README.md).
    Genes are compacted to their usable variants, bucketed by width (next power of two,
    >= 128) and processed in blocks of `block` (a bucket's last block padded with empty
    genes to a power of two); tol / max_iter are the FISTA stopping rule per lambda (tol
    relative to lambda_max's gradient scale). patience: the path stops once no problem's
    inner-CV MSE has improved for that many lambdas (0 / None: whole path); cv_mse is inf
    past the stop, so the selected lambda can only differ from the whole path's if the
    CV curve falls again after `patience` rising steps.

    Returns numpy arrays per gene: pred [G, n] held-out predictions (each row by the model
    of the outer fold that held it out), lambda_outer [G, K], lambda [G] (final, chosen by
    inner CV over all rows), coef [G, P] and intercept [G] (final model, original scale:
    the TWAS weights), coef_outer [G, K, P] / intercept_outer [G, K] (each outer fold's own
    model: its training rows, its lambda.min), coef_start [G, K, P] / intercept_start [G, K]
    (the same problem's inner fit without inner fold 0, i.e. without the rows
    `inner_folds[c] == 0`, at that lambda: a start that never saw them), lambdas [G, K+1, L]
    and cv_mse [G, K+1, L] (inner-CV curves; last row = all rows), inner_folds [K+1, n] and
    outer_folds [n] (0..K-1).
    """
    x = np.asarray(X, np.float32)
    g, n, p = x.shape
    y = np.asarray(y, np.float32)
    mask = np.asarray(mask, bool)
    if y.shape != (g, n) or mask.shape != (g, p) or np.shape(outer_folds) != (n,):
        raise ValueError(f"shapes: X {x.shape}, mask {mask.shape}, y {y.shape}, "
                         f"outer_folds {np.shape(outer_folds)}")
    usable, pf = normalise_pf(mask, penalty_factor)
    fm = fold_masks(outer_folds, inner_k, seed)
    # Genes are compacted to their usable columns and bucketed by width (next power of two,
    # >= 128) so narrow genes do not pay for the widest; a bucket's last partial block is
    # padded to a power of two, not to `block` (at most log2(block) extra compiles).
    count = usable.sum(1)
    width = np.minimum(np.maximum(128, 2 ** np.ceil(np.log2(np.maximum(count, 1)))), p).astype(int)
    res = None
    for w in np.unique(width):
        genes = np.flatnonzero(width == w)
        xb = np.zeros((genes.size, n, w), np.float32)
        ub, pfb = np.zeros((genes.size, w), bool), np.zeros((genes.size, w), np.float32)
        cols = [np.flatnonzero(usable[i]) for i in genes]
        for j, (i, c) in enumerate(zip(genes, cols)):
            xb[j, :, :c.size], ub[j, :c.size], pfb[j, :c.size] = x[i][:, c], True, pf[i, c]
        for s in range(0, genes.size, block):
            m = min(block, genes.size - s)
            size = min(block, 1 << (m - 1).bit_length())
            sl = slice(s, s + m)

            def padded(a):  # empty genes keep the block shape fixed
                return jnp.asarray(np.pad(a[sl], ((0, size - m),) + ((0, 0),) * (a.ndim - 1)))
            out = _nested_block(padded(xb), padded(ub), padded(y[genes]), padded(ub), padded(pfb),
                                jnp.asarray(fm["train"]), jnp.asarray(fm["evaluate"]),
                                jnp.asarray(fm["outer"]), float(alpha), int(n_lambdas), int(inner_k),
                                int(max_iter), float(tol), int(n_power), int(patience or 0))
            out = jax.tree.map(lambda v: np.asarray(v)[:m], out)
            if res is None:
                res = {k: np.zeros(_result_shape(k, v, g, p), v.dtype) for k, v in out.items()}
            for k, v in out.items():
                if k.startswith("coef"):
                    for j, i in enumerate(genes[sl]):
                        res[k][i][..., cols[j + s]] = v[j, ..., :cols[j + s].size]
                else:
                    res[k][genes[sl]] = v
    res["lambda"] = res.pop("lambda_")
    res["inner_folds"], res["outer_folds"] = fm["inner"], fm["outer"]
    return res


# ----------------------------------------------------------------------------- metrics
def cv_r2(y, pred):
    """Per-gene (squared Pearson r, 1 - SSE/SST with the gene's own mean); y, pred [G, n].

    A gene constant on y has neither: both NaN (`eval.regression` convention); a constant
    prediction of a varying gene has r = 0.
    """
    y, pred = np.atleast_2d(np.asarray(y, np.float64)), np.atleast_2d(np.asarray(pred, np.float64))
    r2 = per_gene_r2(pred.T, y.T)
    return np.where(np.isnan(r2), np.nan, row_pearson(pred, y) ** 2), r2


def heritable_filter(y, pred, p_max=0.05, rho_min=0.1):
    """PredictDB filter: Pearson rho of held-out prediction vs y, its two-sided p-value, and
    heritable = (p < p_max) & (rho > rho_min). A constant prediction gives rho 0, p 1."""
    y, pred = np.atleast_2d(np.asarray(y, np.float64)), np.atleast_2d(np.asarray(pred, np.float64))
    rho, pval = pearson_test(pred, y)
    return rho, pval, (pval < p_max) & (rho > rho_min)
