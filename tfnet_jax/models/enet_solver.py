"""The elastic-net solver (one lambda path per fit, many fits of many genes at once), in JAX.

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
columns; see `lambda_path`), so most iterations touch 64-256 columns, not all P. Genes run one
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


def lambda_path(xc, yc, train, usable, pf, lam_of, alpha, max_iter, tol, n_power, emit,
                ws_sizes=WS_SIZES, max_rounds=4, stall=None, patience=0):
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


def prepare(x, mask, y, pf):
    """Centre X columns and y globally (exact under per-fit re-centring; helps float32)."""
    x = jnp.where(mask[:, None, :], x, 0.0)
    xm = x.mean(1)
    xc = jnp.where(mask[:, None, :], x - xm[:, None, :], 0.0)
    ym = y.mean(1)
    return xc, y - ym[:, None], xm, ym


def normalise_pf(mask, pf):
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
    xc, yc, xm, ym = prepare(x, mask, y, pf)

    def gene(xc, yc, usable, pf, lam, xm, ym):
        def emit(l, beta, z, st):
            mu, sd, ybar = st
            b = beta[0] / sd[0]
            return b, ym + ybar[0] - jnp.sum(b * (mu[0] + xm))
        return lambda_path(xc, yc, train[None], usable, pf, lambda g0: lam[None], alpha, max_iter, tol,
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
    usable, pf = normalise_pf(mask, penalty_factor)
    lam = np.broadcast_to(np.asarray(lambdas, np.float32), (g, np.shape(lambdas)[-1]))
    train = np.ones(n, np.float32) if rows is None else np.asarray(rows, np.float32)
    coef, icpt = _path_block(x, jnp.asarray(mask, bool), jnp.asarray(y, jnp.float32), usable, pf,
                             jnp.asarray(lam), jnp.asarray(train), float(alpha), int(max_iter),
                             float(tol), int(n_power))
    return np.asarray(coef), np.asarray(icpt)
