"""The GO layer build (tfnet_jax.data.sources.go) on the real human GO data: wall time and peak
memory, and its Jaccard top-k beside a naive dense NumPy peer.

Data: ../shared/data/go (gene2go.gz, go-basic.obo.gz; see its README). Every measurement runs
in a fresh subprocess; peak RSS is Linux VmHWM, reset after the imports (and, for the
top-k comparison, after the GO files are read), else getrusage's lifetime peak.

  full:    build_go_layers(3 aspects, top_k 20, features on), files to result
  top-k:   per aspect, on a random subsample of the genes (default 3,000):
           ours  = jaccard_top_k (sparse gene x term matrix, row blocks, dense BLAS product
                   for the few columns shared by many genes, partition-based top-k)
           naive = the textbook version: dense float64 gene x term matrix, X @ X.T, the whole
                   genes x genes Jaccard matrix, a stable argsort of every row (ties to the
                   lower gene, as ours); both must give the same edges

    python benchmarks/go_build.py                 # both modes
    python benchmarks/go_build.py --mode full
    python benchmarks/go_build.py --mode top-k --sample 3000 --top-k 20
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from probes import peak_rss_mb, reset_peak_rss, status_mb  # benchmarks/, the script's own directory

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "go"
ASPECTS = ("BP", "MF", "CC")


def measure_full(data: Path, top_k: int) -> dict:
    import pandas  # noqa: F401 - imported before the clock starts, like the library
    import scipy.sparse  # noqa: F401

    from tfnet_jax.data.sources.go import build_go_layers

    reset = reset_peak_rss()
    baseline = status_mb("VmRSS")
    start = time.perf_counter()
    result = build_go_layers(annotations=data / "gene2go.gz", obo=data / "go-basic.obo.gz",
                             top_k=top_k, features=True)
    wall = time.perf_counter() - start
    return dict(wall_s=wall, peak_rss_mb=peak_rss_mb(reset), baseline_rss_mb=baseline,
                layers={k: v for k, v in result.report["layers"].items()},
                features=list(result.features.shape))


def naive_dense_top_k(members, top_k: int):
    """The peer: everything dense, one stable sort per row."""
    matrix = members.toarray().astype(np.float64)
    shared = matrix @ matrix.T
    sizes = matrix.sum(axis=1)
    union = sizes[:, None] + sizes[None, :] - shared
    with np.errstate(invalid="ignore"):
        similarity = np.where(union > 0, shared / union, 0.0)
    np.fill_diagonal(similarity, -1.0)
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :top_k]
    rows = np.repeat(np.arange(len(matrix)), order.shape[1])
    cols = order.ravel()
    weights = similarity[rows, cols]
    rows, cols, weights = rows[weights > 0], cols[weights > 0], weights[weights > 0]
    n = len(matrix)
    pairs, first = np.unique(np.minimum(rows, cols) * n + np.maximum(rows, cols), return_index=True)
    return pairs // n, pairs % n, weights[first]


def measure_top_k(data: Path, method: str, aspect: str, sample: int, top_k: int, seed: int) -> dict:
    from tfnet_jax.data.sources.go import read_go_memberships
    from tfnet_jax.data.sources.jaccard import jaccard_top_k

    go = read_go_memberships(annotations=data / "gene2go.gz", obo=data / "go-basic.obo.gz",
                             aspects=ASPECTS, evidence_exclude=("ND",), taxon=9606, to_entrez=None)
    members = go.members(aspect)
    annotated = np.flatnonzero(np.diff(members.indptr) > 0)
    rows = np.sort(np.random.default_rng(seed).choice(annotated, size=min(sample, len(annotated)),
                                                      replace=False))
    members = members[rows]
    members = members[:, np.flatnonzero(np.diff(members.tocsc().indptr) > 0)].tocsr()
    del go
    reset = reset_peak_rss()
    baseline = status_mb("VmRSS")
    start = time.perf_counter()
    a, b, w = (jaccard_top_k if method == "ours" else naive_dense_top_k)(members, top_k)
    wall = time.perf_counter() - start
    digest = hashlib.sha256(np.concatenate([a, b]).astype(np.int64).tobytes()
                            + w.astype(np.float64).tobytes()).hexdigest()[:16]
    return dict(wall_s=wall, peak_rss_mb=peak_rss_mb(reset), baseline_rss_mb=baseline,
                shape=list(members.shape), edges=len(a), digest=digest)


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _other_cpu() -> str:
    load = os.getloadavg()[0]
    return f"load average {load:.2f} on {os.cpu_count()} CPUs"


def run_full(args) -> None:
    result = _child(["--measure", "full", "--data", str(args.data), "--top-k", str(args.top_k)])
    print(f"\nfull GO build: gene2go + go-basic -> 3 layers (top_k {args.top_k}) + features; "
          f"{_other_cpu()}")
    print(f"  wall {result['wall_s']:.1f} s, peak RSS {result['peak_rss_mb']:,.0f} MB "
          f"({result['peak_rss_mb'] - result['baseline_rss_mb']:,.0f} MB above the imports)")
    for name, layer in result["layers"].items():
        print(f"  {name}: {layer['genes']:,} genes, {layer['terms']:,} terms, {layer['edges']:,} edges")
    print(f"  features: {result['features'][0]:,} genes x {result['features'][1]:,} terms")


def run_top_k(args) -> None:
    print(f"\nJaccard top-{args.top_k} on {args.sample:,} random genes per aspect (seed {args.seed}); "
          f"{_other_cpu()}")
    print(f"{'aspect':8s}{'genes x terms':>16s}{'ours s':>9s}{'naive s':>9s}{'speed-up':>10s}"
          f"{'ours MB':>9s}{'naive MB':>10s}{'same':>6s}")
    for aspect in ASPECTS:
        got = {m: _child(["--measure", m, "--data", str(args.data), "--aspect", aspect,
                          "--sample", str(args.sample), "--top-k", str(args.top_k),
                          "--seed", str(args.seed)]) for m in ("ours", "naive")}
        ours, naive = got["ours"], got["naive"]
        above = {m: r["peak_rss_mb"] - r["baseline_rss_mb"] for m, r in got.items()}
        print(f"{aspect:8s}{'%d x %d' % tuple(ours['shape']):>16s}{ours['wall_s']:9.2f}"
              f"{naive['wall_s']:9.2f}{naive['wall_s'] / ours['wall_s']:9.1f}x"
              f"{above['ours']:9,.0f}{above['naive']:10,.0f}"
              f"{str(ours['digest'] == naive['digest']):>6s}")
    print("MB: peak RSS above the state after reading the GO files. The naive peer's memory "
          "grows with genes^2: at ~20,000 genes one float64 genes x genes matrix is 3.2 GB.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("full", "top-k", "both"), default="both")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--sample", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--measure", choices=("full", "ours", "naive"), help=argparse.SUPPRESS)
    parser.add_argument("--aspect", choices=ASPECTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure == "full":
        print(json.dumps(measure_full(args.data, args.top_k)))
        return
    if args.measure:
        print(json.dumps(measure_top_k(args.data, args.measure, args.aspect, args.sample,
                                       args.top_k, args.seed)))
        return
    if not (args.data / "gene2go.gz").is_file():
        sys.exit(f"{args.data}: no gene2go.gz; pass --data (see shared/data/go/README.md)")
    if args.mode in ("full", "both"):
        run_full(args)
    if args.mode in ("top-k", "both"):
        run_top_k(args)


if __name__ == "__main__":
    main()
