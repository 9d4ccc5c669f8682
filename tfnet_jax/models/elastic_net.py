"""Elastic net fitted the PredictDB way (TWAS stage 1 baseline for GenoNet), in JAX.

Objective (glmnet / sklearn), on X standardised and y centred on the training rows of a fit:

    1/(2n) ||y - X b||^2 + lambda * (alpha * sum_j pf_j |b_j| + (1 - alpha)/2 * sum_j pf_j b_j^2)

Solver: FISTA (accelerated proximal gradient) with adaptive momentum restart, step 1/L
(L from power iterations), warm starts down the lambda path, a tolerance checked in a
`while_loop` with an iteration cap per lambda. Why not coordinate descent: CD is a chain of
p tiny dependent updates, which XLA runs as p small ops per sweep; a proximal-gradient step
is two matrix products. All fits of a gene (outer folds x (inner folds + 1), and the final
fit) share that gene's X: a fit is a 0/1 row weight, and standardisation is folded into the
coefficients (b_orig = b_std / sd), so one iteration of all ~36 fits is X^T R and X B with
R, B of width 36, i.e. matrix-matrix work instead of 36 matrix-vector products.
FISTA iterates on a screened working set of columns (strong rule, then a KKT check on all
columns; see `_path`), so most iterations touch 64-256 columns, not all P. Genes run one
after another (lax.map) in blocks, so each gene keeps its own working-set size.

Padded columns (mask False), columns constant on a fit's training rows, and columns with an
infinite penalty factor are held at exactly zero. Penalty factors are rescaled to average 1
over the real variants (as glmnet does); a factor of 0 leaves a variant unpenalised but it
then does not enter lambda_max (glmnet first regresses such variables out; we do not).
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from tfnet_jax.eval.regression import per_gene_r2
from tfnet_jax.eval.stats import pearson_test, row_pearson

__all__ = ["enet_path", "fit_nested_cv", "cv_r2", "heritable_filter", "fold_masks"]

WS_SIZES = (64, 256, 1024)  # static working-set sizes (columns) tried before all P


# ----------------------------------------------------------------------------- core (one gene)
def _fit_stats(xc, yc, train, usable):
    """Per-fit column mean / sd and y mean over training rows; `ok` = column may get weight."""
    nf = train.sum(1)                                   # [F]
    mu = train @ xc / nf[:, None]                       # [F, P]
    ex2 = train @ (xc * xc) / nf[:, None]
    var = ex2 - mu * mu
    # Columns constant on the training rows get no weight (glmnet drops them); the
    # threshold absorbs float32 rounding of E[x^2] - mu^2 for such columns.
    ok = usable[None, :] & (var > 1e-5 * (1.0 + ex2))
    sd = jnp.where(ok, jnp.sqrt(jnp.maximum(var, 1e-30)), 1.0)
    ybar = train @ yc / nf
    return nf, mu, sd, ok, ybar


def _ops(xc, train, nf, mu, sd):
    """Standardised-design products for all fits at once, without forming X_std."""
    def predict(beta):                                 # [F, P] (std scale) -> [F, n], centred
        b = beta / sd
        return b @ xc.T - jnp.sum(b * mu, 1)[:, None]

    def xt(r):                                          # [F, n] residual -> X_std^T r / n_f
        r = r * train
        return (r @ xc - r.sum(1)[:, None] * mu) / (sd * nf[:, None])
    return predict, xt


def _lipschitz(predict, xt, ok, n_power):
    """Largest eigenvalue of X_std^T X_std / n_f per fit, by power iteration (x1.1 margin)."""
    v = jnp.where(ok, 1.0 + 0.01 * jnp.cos(jnp.arange(ok.shape[1], dtype=jnp.float32)), 0.0)

    def step(v, _):
        w = jnp.where(ok, xt(predict(v)), 0.0)
        return w / jnp.maximum(jnp.linalg.norm(w, axis=1, keepdims=True), 1e-30), None
    v = v / jnp.maximum(jnp.linalg.norm(v, axis=1, keepdims=True), 1e-30)
    v, _ = jax.lax.scan(step, v, None, length=n_power)
    lip = jnp.linalg.norm(jnp.where(ok, xt(predict(v)), 0.0), axis=1)
    return 1.1 * lip + 1e-6


def _fista(predict, xt, ok, pf, target, lip, scale, alpha, max_iter, tol, beta, lam):
    """FISTA with O'Donoghue-Candes restart on the columns `predict` / `xt` see."""
    def prox(v):
        thr = lam[:, None] * alpha * pf[None, :] / lip
        shrink = 1.0 + lam[:, None] * (1.0 - alpha) * pf[None, :] / lip
        return jnp.where(ok, jnp.sign(v) * jnp.maximum(jnp.abs(v) - thr, 0.0) / shrink, 0.0)

    def body(s):
        beta, v, t, it, _ = s
        grad = -xt(target - predict(v))
        nb = prox(v - grad / lip)
        # Restart: drop momentum when it points uphill.
        restart = jnp.sum((v - nb) * (nb - beta), 1) > 0
        tn = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t * t))
        mom = jnp.where(restart, 0.0, (t - 1.0) / tn)[:, None]
        crit = jnp.max(jnp.max(jnp.abs(nb - beta), 1) * lip[:, 0] / scale)
        return nb, nb + mom * (nb - beta), jnp.where(restart, 1.0, tn), it + 1, crit

    init = (beta, beta, jnp.ones_like(lam), 0, jnp.asarray(jnp.inf, beta.dtype))
    beta, *_ = jax.lax.while_loop(lambda s: (s[3] < max_iter) & (s[4] > tol), body, init)
    return beta


def _path(xc, yc, train, usable, pf, lam_of, alpha, max_iter, tol, n_power, emit, ws_sizes=WS_SIZES,
          max_rounds=4, stall=None, patience=0):
    """Solve every fit (rows of `train`) down its lambda path; `emit` picks what to keep.

    lam_of(g0_abs_over_pf [F, P]) -> lambdas [F, L] (so the grid can depend on lambda_max).
    emit(l, beta [F,P], z [F,n] centred predictions, stats) -> pytree stacked over lambdas.
    stall(emitted) -> [C] criterion (inner-CV MSE per problem): with patience > 0 the path
    stops once no criterion has improved for `patience` lambdas (glmnet also cuts its path
    short); outputs past the stop stay zero, and n_done (returned) says how many were run.

    Working set (shared by the gene's fits, so its products stay matrix-matrix): at each
    lambda, the columns non-zero in any fit plus the strong-rule candidates
    (|grad| > alpha (2 lambda_k - lambda_{k-1}) pf), padded to the smallest static size in
    `ws_sizes` (or all P columns) with the next-best scores. FISTA runs on those columns
    only; one full X^T r then checks KKT on every column, and violators join the next
    round (at most `max_rounds`). Costs one full product per round instead of two per
    iteration. Must run under lax.map, not vmap: vmap would turn the size switch into a
    select that runs every branch.
    """
    nf, mu, sd, ok, ybar = _fit_stats(xc, yc, train, usable)
    predict, xt = _ops(xc, train, nf, mu, sd)
    target = yc[None, :] - ybar[:, None]               # y centred per fit
    grad0 = xt(target)
    g0 = jnp.abs(grad0)
    g0 = jnp.where(ok & (pf > 0)[None, :], g0 / (alpha * jnp.where(pf > 0, pf, 1.0)), 0.0)
    lambdas = lam_of(g0)                                # [F, L]
    scale = jnp.maximum(jnp.max(g0, 1) * alpha, 1e-12)  # gradient scale for the stopping rule
    lip = _lipschitz(predict, xt, ok, n_power)[:, None]
    n_col = xc.shape[1]
    sizes = sorted({min(int(k), n_col) for k in ws_sizes} | {n_col})

    def branch(k):
        if k == n_col:
            def full(score, beta, lam):
                beta = _fista(predict, xt, ok, pf, target, lip, scale, alpha, max_iter, tol, beta, lam)
                return beta, predict(beta), jnp.ones(n_col, bool)
            return full

        def subset(score, beta, lam):
            idx = jax.lax.top_k(score, k)[1]
            p_k, xt_k = _ops(xc[:, idx], train, nf, mu[:, idx], sd[:, idx])
            b = _fista(p_k, xt_k, ok[:, idx], pf[idx], target, lip, scale, alpha, max_iter, tol,
                       beta[:, idx], lam)
            # Columns outside idx are zero: every non-zero column scored inf, so it is in idx.
            return (jnp.zeros_like(beta).at[:, idx].set(b), p_k(b),
                    jnp.zeros(n_col, bool).at[idx].set(True))
        return subset
    branches = [branch(k) for k in sizes]

    def step(beta, grad, z, l):                         # grad = X^T r / n at beta
        lam = lambdas[:, l]
        lam_prev = lambdas[:, jnp.maximum(l - 1, 0)]
        strong = (alpha * (2.0 * lam - lam_prev))[:, None] * pf[None, :]
        kkt = (alpha * lam)[:, None] * pf[None, :] + tol * scale[:, None]

        def rnd(s):
            beta, grad, _, r, _ = s
            ratio = jnp.max(jnp.where(ok, jnp.abs(grad) / jnp.maximum(strong, 1e-30), 0.0), 0)
            score = jnp.where(jnp.any(beta != 0, 0), jnp.inf, ratio)
            tier = jnp.searchsorted(jnp.asarray(sizes), jnp.sum(score > 1.0))
            beta, z, seen = jax.lax.switch(tier, branches, score, beta, lam)
            grad = xt(target - z)
            # Only columns FISTA did not see can violate: the in-set ones are its job (and
            # may sit just above the bound when max_iter cuts it short).
            viol = jnp.any(ok & ~seen[None, :] & (jnp.abs(grad) > kkt))
            return beta, grad, z, r + 1, viol

        beta, grad, z, *_ = jax.lax.while_loop(lambda s: (s[3] < max_rounds) & s[4], rnd,
                                               (beta, grad, z, 0, True))
        return beta, grad, z

    n_lam = lambdas.shape[1]
    beta0 = jnp.zeros((train.shape[0], n_col), xc.dtype)
    z0 = jnp.zeros(train.shape, xc.dtype)
    shapes = jax.eval_shape(lambda b, z: emit(0, b, z, (mu, sd, ybar)), beta0, z0)
    out0 = jax.tree.map(lambda a: jnp.zeros((n_lam,) + a.shape, a.dtype), shapes)
    n_crit = 1 if stall is None else jax.eval_shape(stall, jax.tree.map(lambda a: a[0], out0)).shape[0]

    def body(c):
        beta, grad, z, out, l, best, since = c
        beta, grad, z = step(beta, grad, z, l)
        o = emit(l, beta, z, (mu, sd, ybar))
        out = jax.tree.map(lambda a, v: a.at[l].set(v), out, o)
        if stall is not None:
            crit = stall(o)
            since = jnp.where(crit < best, 0, since + 1)
            best = jnp.minimum(crit, best)
        return beta, grad, z, out, l + 1, best, since

    def more(c):
        go = c[4] < n_lam
        if stall is not None and patience:
            go = go & jnp.any(c[6] < patience)
        return go

    inf = jnp.full((n_crit,), jnp.inf, xc.dtype)
    init = (beta0, grad0, z0, out0, 0, inf, jnp.zeros((n_crit,), jnp.int32))
    *_, out, n_done, _, _ = jax.lax.while_loop(more, body, init)
    return lambdas, out, n_done


def _prepare(x, mask, y, pf):
    """Centre X columns and y globally (exact under per-fit re-centring; helps float32)."""
    x = jnp.where(mask[:, None, :], x, 0.0)
    xm = x.mean(1)
    xc = jnp.where(mask[:, None, :], x - xm[:, None, :], 0.0)
    ym = y.mean(1)
    return xc, y - ym[:, None], xm, ym


def _normalise_pf(mask, pf):
    """glmnet: factors rescaled to average 1 over (finite-factor) real variants."""
    mask = np.asarray(mask, bool)
    if pf is None:
        return mask, mask.astype(np.float32)
    pf = np.asarray(pf, np.float64)
    if np.any(pf < 0) or np.any(np.isnan(pf)):
        raise ValueError("penalty_factor must be >= 0 (inf excludes a variant)")
    usable = mask & np.isfinite(pf)
    pf = np.where(usable, pf, 0.0)
    total = pf.sum(1, keepdims=True)
    pf = pf * np.where(total > 0, usable.sum(1, keepdims=True) / np.maximum(total, 1e-300), 0.0)
    return usable, pf.astype(np.float32)


# ----------------------------------------------------------------------------- public API
@partial(jax.jit, static_argnames=("alpha", "max_iter", "tol", "n_power"))
def _path_block(x, mask, y, usable, pf, lambdas, train, alpha, max_iter, tol, n_power):
    xc, yc, xm, ym = _prepare(x, mask, y, pf)

    def gene(xc, yc, usable, pf, lam, xm, ym):
        def emit(l, beta, z, st):
            mu, sd, ybar = st
            b = beta[0] / sd[0]
            return b, ym + ybar[0] - jnp.sum(b * (mu[0] + xm))
        return _path(xc, yc, train[None], usable, pf, lambda g0: lam[None], alpha, max_iter, tol,
                     n_power, emit)[1]
    return jax.lax.map(lambda a: gene(*a), (xc, yc, usable, pf, lambdas, xm, ym))


def enet_path(X, mask, y, lambdas, alpha=0.5, penalty_factor=None, rows=None, tol=1e-6,
              max_iter=10_000, n_power=30):
    """Elastic net on given lambdas (decreasing, warm-started) for G genes.

    X [G, n, P], mask [G, P], y [G, n], lambdas [L] or [G, L]; rows: optional bool [n],
    the training rows. Returns (coef [G, L, P] on X's original scale, intercept [G, L]).
    """
    x = jnp.asarray(X, jnp.float32)
    g, n, _ = x.shape
    usable, pf = _normalise_pf(mask, penalty_factor)
    lam = np.broadcast_to(np.asarray(lambdas, np.float32), (g, np.shape(lambdas)[-1]))
    train = np.ones(n, np.float32) if rows is None else np.asarray(rows, np.float32)
    coef, icpt = _path_block(x, jnp.asarray(mask, bool), jnp.asarray(y, jnp.float32), usable, pf,
                             jnp.asarray(lam), jnp.asarray(train), float(alpha), int(max_iter),
                             float(tol), int(n_power))
    return np.asarray(coef), np.asarray(icpt)


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
    xc, yc, xm, ym = _prepare(x, mask, y, pf)
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

        lambdas, (mse, pred, coef, icpt), n_done = _path(
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
    usable, pf = _normalise_pf(mask, penalty_factor)
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
