#!/usr/bin/env python
"""Nested-CV elastic net (PredictDB way) in JAX vs per-gene sklearn ElasticNetCV and glum.

A script, not a test: simulated cis genotypes (Markov haplotype copying -> LD), the same
outer folds, inner folds, l1_ratio 0.5 and lambda grid for every method. sklearn and glum
are timed on a random subsample of genes and extrapolated. See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as `python benchmarks/elastic_net.py` without installing

from tfnet_jax.models.elastic_net import cv_r2, fit_nested_cv  # noqa: E402

BUCKETS = (128, 256, 512, 1024, 2048, 4096)  # the widths fit_nested_cv buckets to


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default in (("--genes", 1000), ("--individuals", 500), ("--min-variants", 100),
                          ("--max-variants", 2000), ("--sklearn-genes", 20), ("--glum-genes", 3), ("--outer-k", 5),
                          ("--inner-k", 5), ("--n-lambdas", 50), ("--block", 16), ("--max-iter", 30),
                          ("--patience", 10), ("--seed", 0)):
        p.add_argument(flag, type=int, default=default)
    p.add_argument("--tol", type=float, default=1e-3)
    p.add_argument("--no-glum", action="store_true")
    p.add_argument("--json", type=Path, help="also write the figures here")
    return p.parse_args()


def simulate(rng, n, p, n_hap=60, switch=0.03):
    """One gene: dosages from two haplotypes copying founders (new founder at each switch),
    1-9 causal variants, h2 ~ U(0.02, 0.4)."""
    founders = (rng.random((n_hap, p)) < rng.uniform(0.05, 0.5, p)).astype(np.float32)

    def hap():
        seg = np.cumsum(rng.random((n, p)) < switch, axis=1)
        ids = rng.integers(n_hap, size=(n, seg[:, -1].max() + 1))
        h = founders[np.take_along_axis(ids, seg, 1), np.arange(p)]
        return np.where(rng.random((n, p)) < 0.01, 1.0 - h, h)  # mutations break perfect LD
    x = hap() + hap()
    b = np.zeros(p)
    causal = rng.choice(p, rng.integers(1, 10), replace=False)
    b[causal] = rng.normal(size=causal.size)
    sig = x @ b
    sig = (sig - sig.mean()) / max(sig.std(), 1e-9)
    h2 = rng.uniform(0.02, 0.4)
    y = np.sqrt(h2) * sig + np.sqrt(1 - h2) * rng.normal(size=n)
    return x.astype(np.float32), y.astype(np.float32)


def run_jax(xs, ys, folds, args):
    """Genes bucketed by variant count (padded to the bucket); one compile per bucket.
    (fit_nested_cv buckets by itself too; doing it here times each bucket apart.)"""
    n, g = folds.size, len(xs)
    pred, lambdas, inner = np.zeros((g, n), np.float32), [None] * g, None
    compile_s = run_s = 0.0
    sizes = np.array([x.shape[1] for x in xs])
    lo = 0
    for hi in BUCKETS:
        idx = np.flatnonzero((sizes > lo) & (sizes <= hi))
        lo = hi
        if idx.size == 0:
            continue
        x = np.zeros((idx.size, n, hi), np.float32)
        mask = np.zeros((idx.size, hi), bool)
        for i, j in enumerate(idx):
            x[i, :, :sizes[j]], mask[i, :sizes[j]] = xs[j], True
        y = np.stack([ys[j] for j in idx])
        kw = dict(inner_k=args.inner_k, n_lambdas=args.n_lambdas, block=args.block, seed=args.seed,
                  max_iter=args.max_iter, tol=args.tol, patience=args.patience)
        tail = idx.size % args.block
        for b in [slice(0, min(args.block, idx.size))] + ([slice(idx.size - tail, None)]
                                                          if idx.size > args.block and tail else []):
            # a full block, and the last partial one (padded to a power of two: own shape)
            t0 = time.perf_counter()
            fit_nested_cv(x[b], mask[b], y[b], folds, **kw)  # compile + one block
            t1 = time.perf_counter()
            fit_nested_cv(x[b], mask[b], y[b], folds, **kw)  # the same block, compiled
            t2 = time.perf_counter()
            compile_s += max((t1 - t0) - (t2 - t1), 0.0)
        res = fit_nested_cv(x, mask, y, folds, **kw)
        run_s += time.perf_counter() - t2
        pred[idx] = res["pred"]
        for i, j in enumerate(idx):
            lambdas[j] = res["lambdas"][i]
        inner = res["inner_folds"]
        print(f"  bucket P={hi}: {idx.size} genes, {time.perf_counter() - t2:.1f} s", flush=True)
    return pred, lambdas, inner, compile_s, run_s


def run_peer(kind, xs, ys, folds, lambdas, inner, genes):
    """Per-gene nested CV with a CPU peer, same folds and grids; returns (pred, seconds)."""
    from sklearn.model_selection import PredefinedSplit
    from sklearn.preprocessing import StandardScaler
    if kind == "glum":
        from glum import GeneralizedLinearRegressorCV
    else:
        from sklearn.linear_model import ElasticNetCV
    pred = np.zeros((len(genes), folds.size))
    t0 = time.perf_counter()
    for i, g in enumerate(genes):
        x, y = xs[g].astype(np.float64), ys[g].astype(np.float64)
        for k in range(folds.max() + 1):
            tr = folds != k
            sc = StandardScaler().fit(x[tr])
            cv = PredefinedSplit(inner[k][tr])
            if kind == "glum":
                m = GeneralizedLinearRegressorCV(l1_ratio=0.5, alphas=lambdas[g][k], cv=cv,
                                                 family="normal")
            else:
                m = ElasticNetCV(l1_ratio=0.5, alphas=lambdas[g][k], cv=cv)
            m.fit(sc.transform(x[tr]), y[tr])
            pred[i, ~tr] = m.predict(sc.transform(x[~tr]))
        # the final (weights-table) model: inner CV over all rows, refit on all rows
        sc = StandardScaler().fit(x)
        cv = PredefinedSplit(inner[-1])
        m = (GeneralizedLinearRegressorCV(l1_ratio=0.5, alphas=lambdas[g][-1], cv=cv, family="normal")
             if kind == "glum" else ElasticNetCV(l1_ratio=0.5, alphas=lambdas[g][-1], cv=cv))
        m.fit(sc.transform(x), y)
    return pred, time.perf_counter() - t0


def main():
    args = parse_args()
    rng = np.random.default_rng(args.seed)
    n = args.individuals
    t = time.perf_counter()
    sizes = rng.integers(args.min_variants, args.max_variants + 1, size=args.genes)
    xs, ys = zip(*(simulate(rng, n, int(p)) for p in sizes))
    folds = rng.permutation(np.arange(n) % args.outer_k)
    print(f"simulated {args.genes} genes x {n} individuals, {sizes.min()}-{sizes.max()} variants "
          f"(mean {sizes.mean():.0f}) in {time.perf_counter() - t:.1f} s", flush=True)

    pred, lambdas, inner, compile_s, run_s = run_jax(xs, ys, folds, args)
    sub = np.sort(rng.choice(args.genes, min(args.sklearn_genes, args.genes), replace=False))
    y_sub = np.stack([ys[g] for g in sub])
    rows = [dict(method="jax (this)", genes=args.genes, seconds=run_s, per_gene=run_s / args.genes,
                 all_genes=run_s, extrapolated=False, r2=float(np.mean(cv_r2(y_sub, pred[sub])[0])),
                 compile_s=compile_s)]
    peers = ["sklearn"] if args.sklearn_genes > 0 else []
    if peers and not args.no_glum and args.glum_genes > 0:
        try:
            import glum  # noqa: F401
            peers.append("glum")
        except ImportError:
            print("glum not importable: skipped")
    for kind in peers:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning on the smallest lambdas
            # glum is ~10x slower than sklearn here: it gets a smaller subsample
            genes = sub if kind == "sklearn" else sub[:args.glum_genes]
            p_pred, secs = run_peer(kind, xs, ys, folds, lambdas, inner, genes)
        rows.append(dict(method=kind, genes=len(genes), seconds=secs, per_gene=secs / len(genes),
                         all_genes=secs / len(genes) * args.genes, extrapolated=True,
                         r2=float(np.mean(cv_r2(y_sub[:len(genes)], p_pred)[0])),
                         r2_jax_same_genes=float(np.mean(cv_r2(y_sub[:len(genes)], pred[genes])[0]))))
        print(f"  {kind}: {len(genes)} genes in {secs:.1f} s", flush=True)

    sk = rows[1]["all_genes"] if len(rows) > 1 else np.nan
    print(f"\nJAX compile (all buckets): {compile_s:.1f} s, not included below. "
          f"R^2 = squared Pearson of held-out predictions, mean over the "
          f"genes that method was timed on (jax row: the {len(sub)} sklearn genes; in brackets: jax on "
          "the peer's genes).")
    print("| method | genes timed | seconds (measured) | s / gene | s for all genes | "
          "mean held-out R^2 | speed-up vs sklearn |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        allg = f"{r['all_genes']:.0f}" + (" (extrapolated)" if r["extrapolated"] else "")
        print(f"| {r['method']} | {r['genes']} | {r['seconds']:.1f} | {r['per_gene']:.3f} | {allg} | "
              f"{r['r2']:.4f}" + (f" [{r['r2_jax_same_genes']:.4f}]" if "r2_jax_same_genes" in r else "")
              + f" | {sk / r['all_genes']:.1f}x |")
    if len(rows) > 1:
        print(f"R^2 difference jax - sklearn: {rows[0]['r2'] - rows[1]['r2']:+.4f}")
    if args.json:
        args.json.write_text(json.dumps(dict(args={k: str(v) for k, v in vars(args).items()}, rows=rows),
                                        indent=1))


if __name__ == "__main__":
    main()
