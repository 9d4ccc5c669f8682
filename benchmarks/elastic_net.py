#!/usr/bin/env python
"""Nested-CV elastic net (PredictDB way) in JAX vs per-gene sklearn ElasticNetCV, glum and R glmnet.

A script, not a test: simulated cis genotypes (Markov haplotype copying -> LD), the same
outer folds, inner folds and l1_ratio 0.5 for every method. Two protocols:

default    5 outer x 5 inner folds, 50 lambdas, variant counts uniform in a range; sklearn
           and glum get JAX's lambda grids and are timed on a random subsample (extrapolated).
predictdb  PredictDB's protocol (5 outer x 10 inner folds, alpha 0.5, 100 lambdas,
           lambda.min): fixed widths (--widths), --glmnet-genes-per-bucket genes each; JAX and
           R glmnet (cv.glmnet through Rscript, benchmarks/elastic_net_glmnet.R) run every
           gene, sklearn a subsample; one table per width. glmnet is skipped with a note when
           Rscript or the glmnet package is absent.
See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as `python benchmarks/elastic_net.py` without installing

from tfnet_jax.models.elastic_net import cv_r2, fit_nested_cv  # noqa: E402

BUCKETS = (128, 256, 512, 1024, 2048, 4096)  # the widths fit_nested_cv buckets to
PREDICTDB = dict(outer_k=5, inner_k=10, n_lambdas=100)  # PredictDB: nfolds 10, glmnet's nlambda
R_SCRIPT = Path(__file__).resolve().with_name("elastic_net_glmnet.R")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default in (("--genes", 1000), ("--individuals", 500), ("--min-variants", 100),
                          ("--max-variants", 2000), ("--sklearn-genes", 20), ("--glum-genes", 3), ("--outer-k", 5),
                          ("--inner-k", 5), ("--n-lambdas", 50), ("--block", 16), ("--max-iter", 15),
                          ("--patience", 10), ("--seed", 0), ("--glmnet-genes-per-bucket", 20),
                          ("--sklearn-genes-per-bucket", 2)):
        p.add_argument(flag, type=int, default=default)
    p.add_argument("--tol", type=float, default=1e-3)
    p.add_argument("--no-glum", action="store_true")
    p.add_argument("--protocol", choices=("default", "predictdb"), default="default",
                   help="predictdb: 5 outer x 10 inner folds, 100 lambdas, R glmnet beside JAX")
    p.add_argument("--widths", type=int, nargs="+", default=[128, 512, 1024, 2000],
                   help="variants per gene, one bucket each (predictdb)")
    p.add_argument("--no-glmnet", action="store_true")
    p.add_argument("--rscript", default="Rscript")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()
    if args.protocol == "predictdb":
        for k, v in PREDICTDB.items():
            setattr(args, k, v)
    return args


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
    (fit_nested_cv buckets by itself too; doing it here times each bucket apart.)
    Each block shape (a full block, and the bucket's last partial one, which fit_nested_cv
    pads to a power of two) is run once untimed first; compile_s ~ that warm-up minus the
    same genes' share of the timed run. Returns per-gene results and per-bucket seconds."""
    n, g = folds.size, len(xs)
    out = dict(pred=np.zeros((g, n), np.float32), lambdas=[None] * g, lambda_outer=[None] * g,
               lambda_final=np.zeros(g), inner=None, compile_s=0.0, run_s=0.0, buckets=[])
    sizes = np.array([x.shape[1] for x in xs])
    lo = 0
    kw = dict(inner_k=args.inner_k, n_lambdas=args.n_lambdas, block=args.block, seed=args.seed,
              max_iter=args.max_iter, tol=args.tol, patience=args.patience)
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
        tail = idx.size % args.block
        warm_s, warm_genes = 0.0, 0
        for b in [slice(0, min(args.block, idx.size))] + ([slice(idx.size - tail, None)]
                                                          if idx.size > args.block and tail else []):
            t0 = time.perf_counter()
            fit_nested_cv(x[b], mask[b], y[b], folds, **kw)  # compile + one block
            warm_s += time.perf_counter() - t0
            warm_genes += len(range(idx.size)[b])
        t0 = time.perf_counter()
        res = fit_nested_cv(x, mask, y, folds, **kw)
        secs = time.perf_counter() - t0
        out["run_s"] += secs
        out["compile_s"] += max(warm_s - secs * warm_genes / idx.size, 0.0)
        out["pred"][idx] = res["pred"]
        out["lambda_final"][idx] = res["lambda"]
        for i, j in enumerate(idx):
            out["lambdas"][j], out["lambda_outer"][j] = res["lambdas"][i], res["lambda_outer"][i]
        out["inner"] = res["inner_folds"]
        out["buckets"].append(dict(bucket=hi, genes=idx, seconds=secs))
        print(f"  jax bucket P={hi}: {idx.size} genes, {secs:.1f} s (warm-up {warm_s:.1f} s)", flush=True)
    return out


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


# ----------------------------------------------------------------------------- R glmnet
def glmnet_available(rscript):
    """None if Rscript with glmnet runs, else a one-line reason."""
    exe = shutil.which(rscript)
    if exe is None:
        return f"{rscript} not found: R glmnet skipped"
    rc = subprocess.run([exe, "-e", 'quit(status = if (requireNamespace("glmnet", quietly = TRUE)) 0 else 3)'],
                        capture_output=True).returncode
    return None if rc == 0 else "R package glmnet not installed: R glmnet skipped"


def run_glmnet(xs, ys, folds, inner, genes, args):
    """PredictDB's cv.glmnet loop in R on `genes`, with the JAX side's outer and inner fold
    ids (inner [K+1, n], -1 = outside the problem). Returns pred [G, n], seconds per gene
    (measured in R around the glmnet calls), the whole Rscript wall time, and glmnet's
    lambda.min / lambda_max / path length per problem [G, K+1]."""
    n, k = folds.size, args.outer_k
    with tempfile.TemporaryDirectory(prefix="enet_glmnet_") as tmp:
        d = Path(tmp)
        (d / "meta.txt").write_text(f"{n} {len(genes)} {k} {args.inner_k} 0.5 {args.n_lambdas}\n")
        (folds + 1).astype("<i4").tofile(d / "outer.bin")
        (inner + 1).astype("<i4").tofile(d / "inner.bin")  # [K+1, n] C order = [n, K+1] col-major
        np.array([xs[g].shape[1] for g in genes], "<i4").tofile(d / "p.bin")
        np.stack([ys[g] for g in genes], 0).astype("<f8").tofile(d / "y.bin")  # [n, G] col-major
        for i, g in enumerate(genes):
            np.ascontiguousarray(xs[g].T, "<f8").tofile(d / f"x_{i + 1}.bin")  # [n, p] col-major
        t0 = time.perf_counter()
        r = subprocess.run([args.rscript, str(R_SCRIPT), str(d)], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"Rscript failed ({r.returncode}):\n{r.stderr[-2000:]}")

        def read(name, dtype, shape):  # column-major [shape[1], shape[0]] -> [G, ...]
            return np.fromfile(d / name, dtype).reshape(shape)
        g = len(genes)
        return dict(pred=read("pred.bin", "<f8", (g, n)), seconds=read("seconds.bin", "<f8", (g,)),
                    wall=wall, lambda_min=read("lambda.bin", "<f8", (g, k + 1)),
                    lambda_max=read("lambda_max.bin", "<f8", (g, k + 1)),
                    n_lambda=read("n_lambda.bin", "<i4", (g, k + 1)))


def mean_se(d):
    d = np.asarray(d, float)
    return float(np.mean(d)), float(np.std(d, ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan")


def predictdb(args, rng):
    """PredictDB protocol: one table per width; JAX and glmnet on every gene, sklearn on a subsample."""
    n = args.individuals
    note = None if args.no_glmnet else glmnet_available(args.rscript)
    if note:
        print(note)
    t = time.perf_counter()
    widths = np.repeat(args.widths, args.glmnet_genes_per_bucket)
    xs, ys = zip(*(simulate(rng, n, int(p)) for p in widths))
    folds = rng.permutation(np.arange(n) % args.outer_k)
    print(f"simulated {widths.size} genes x {n} individuals ({args.glmnet_genes_per_bucket} per width "
          f"{args.widths}) in {time.perf_counter() - t:.1f} s; protocol: {args.outer_k} outer x "
          f"{args.inner_k} inner folds, {args.n_lambdas} lambdas, alpha 0.5, lambda.min", flush=True)
    jx = run_jax(xs, ys, folds, args)
    y = np.stack(ys)
    r2_jax = cv_r2(y, jx["pred"])[0]
    rows, per_gene = [], dict(width=widths.tolist(), r2_jax=r2_jax.tolist())
    for b in jx["buckets"]:
        idx, w = b["genes"], int(widths[b["genes"][0]])
        row = dict(width=w, bucket=b["bucket"], genes=int(idx.size), jax_s_per_gene=b["seconds"] / idx.size,
                   r2_jax=float(np.mean(r2_jax[idx])))
        if not args.no_glmnet and note is None:
            gl = run_glmnet(xs, ys, folds, jx["inner"], idx, args)
            r2_gl = cv_r2(y[idx], gl["pred"])[0]
            d_mean, d_se = mean_se(r2_jax[idx] - r2_gl)
            lam_jax = np.array([np.r_[jx["lambda_outer"][g], jx["lambda_final"][g]] for g in idx])
            lmax_jax = np.array([jx["lambdas"][g][:, 0] for g in idx])
            row.update(glmnet_s_per_gene=float(gl["seconds"].mean()), glmnet_wall_per_gene=gl["wall"] / idx.size,
                       glmnet_over_jax=float(gl["seconds"].mean()) / row["jax_s_per_gene"],
                       r2_glmnet=float(np.mean(r2_gl)), r2_diff_jax_glmnet=d_mean, r2_diff_se=d_se,
                       lambda_max_ratio_median=float(np.median(gl["lambda_max"] / lmax_jax)),
                       lambda_min_ratio_median=float(np.median(gl["lambda_min"] / lam_jax)),
                       lambda_min_same_share=float(np.mean(np.isclose(gl["lambda_min"], lam_jax, rtol=0.02))),
                       glmnet_path_len_median=float(np.median(gl["n_lambda"])))
            per_gene.setdefault("r2_glmnet", [None] * widths.size)
            per_gene.setdefault("glmnet_seconds", [None] * widths.size)
            for i, g in enumerate(idx):
                per_gene["r2_glmnet"][g], per_gene["glmnet_seconds"][g] = float(r2_gl[i]), float(gl["seconds"][i])
            print(f"  glmnet width {w}: {idx.size} genes, {gl['seconds'].sum():.1f} s in glmnet, "
                  f"Rscript wall {gl['wall']:.1f} s", flush=True)
        m = min(args.sklearn_genes_per_bucket, idx.size)
        if m > 0:
            sub = idx[:m]  # genes are random draws: the first m of the bucket
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning on the smallest lambdas
                p_sk, secs = run_peer("sklearn", xs, ys, folds, jx["lambdas"], jx["inner"], sub)
            row.update(sklearn_genes=m, sklearn_s_per_gene=secs / m,
                       r2_sklearn=float(np.mean(cv_r2(y[sub], p_sk)[0])),
                       r2_jax_sklearn_genes=float(np.mean(r2_jax[sub])))
            print(f"  sklearn width {w}: {m} genes in {secs:.1f} s", flush=True)
        rows.append(row)

    def f(r, k, fmt):
        return format(r[k], fmt) if k in r else "-"
    print(f"\nJAX compile (all buckets, approx.): {jx['compile_s']:.1f} s, not included. glmnet s/gene: "
          "elapsed in cv.glmnet + predict, measured in R (Rscript wall per gene, incl. R start-up and "
          "reading the data, in brackets). R^2: squared Pearson of the held-out predictions (5 outer "
          "folds concatenated), mean over genes.")
    print("| variants | genes | JAX s/gene | glmnet s/gene | sklearn s/gene (genes) | glmnet / JAX | "
          "R^2 JAX | R^2 glmnet | R^2 sklearn [JAX same genes] | R^2 JAX - glmnet (SE) |")
    print("| --- " * 10 + "|")
    for r in rows:
        sk = (f"{r['sklearn_s_per_gene']:.2f} ({r['sklearn_genes']})" if "sklearn_genes" in r else "-")
        r2sk = (f"{r['r2_sklearn']:.4f} [{r['r2_jax_sklearn_genes']:.4f}]" if "r2_sklearn" in r else "-")
        gl = (f"{r['glmnet_s_per_gene']:.3f} ({r['glmnet_wall_per_gene']:.3f})" if "glmnet_s_per_gene" in r
              else "-")
        diff = (f"{r['r2_diff_jax_glmnet']:+.4f} ({r['r2_diff_se']:.4f})" if "r2_diff_jax_glmnet" in r else "-")
        print(f"| {r['width']} | {r['genes']} | {r['jax_s_per_gene']:.3f} | {gl} | {sk} | "
              f"{f(r, 'glmnet_over_jax', '.2f')}{'x' if 'glmnet_over_jax' in r else ''} | {r['r2_jax']:.4f} | {f(r, 'r2_glmnet', '.4f')} | {r2sk} | {diff} |")
    if rows and "r2_glmnet" in rows[0]:
        d = np.array(per_gene["r2_jax"]) - np.array(per_gene["r2_glmnet"], float)
        m, se = mean_se(d)
        print(f"all {d.size} genes: R^2 JAX - glmnet {m:+.4f} (SE {se:.4f}), max |diff| {np.abs(d).max():.4f}")
        for r in rows:
            print(f"  width {r['width']}: lambda_max glmnet/JAX median {r['lambda_max_ratio_median']:.4f}; "
                  f"lambda.min glmnet/JAX median {r['lambda_min_ratio_median']:.3f}, within 2% on "
                  f"{100 * r['lambda_min_same_share']:.0f}% of problems; glmnet path length median "
                  f"{r['glmnet_path_len_median']:.0f}")
    return dict(rows=rows, per_gene=per_gene, compile_s=jx["compile_s"], glmnet_note=note)


def default(args, rng):
    n = args.individuals
    t = time.perf_counter()
    sizes = rng.integers(args.min_variants, args.max_variants + 1, size=args.genes)
    xs, ys = zip(*(simulate(rng, n, int(p)) for p in sizes))
    folds = rng.permutation(np.arange(n) % args.outer_k)
    print(f"simulated {args.genes} genes x {n} individuals, {sizes.min()}-{sizes.max()} variants "
          f"(mean {sizes.mean():.0f}) in {time.perf_counter() - t:.1f} s", flush=True)

    jx = run_jax(xs, ys, folds, args)
    pred, lambdas, inner, compile_s, run_s = jx["pred"], jx["lambdas"], jx["inner"], jx["compile_s"], jx["run_s"]
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
    print(f"\nJAX compile (all buckets, approx.): {compile_s:.1f} s, not included below. "
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
    return dict(rows=rows)


def main():
    args = parse_args()
    rng = np.random.default_rng(args.seed)
    out = predictdb(args, rng) if args.protocol == "predictdb" else default(args, rng)
    if args.json:
        args.json.write_text(json.dumps(dict(args={k: str(v) for k, v in vars(args).items()}, **out),
                                        indent=1))


if __name__ == "__main__":
    main()
