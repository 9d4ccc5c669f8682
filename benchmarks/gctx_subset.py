"""Reading a signature subset of a large GCTX: our subset reader vs loading it whole.

Writes a synthetic level-5-sized GCTX (default 50,000 signatures x 12,328 genes, float32,
CMap layout, chunked, ~2.5 GB) with the streaming `GCTXWriter`, then measures, each in a
fresh subprocess so that peak memory is the process's own (tracemalloc does not see
HDF5's C allocations):
  (a) ours:  read_gctx(path, cids=<2,000 random signature ids>), all genes
  (b) whole: plain h5py `ds[...]` of the full matrix, then the same subset in memory
Wall time and peak RSS (Linux VmHWM, reset after the imports; else getrusage's ru_maxrss)
are reported as medians over --repeats runs, with the file in the page cache ("warm")
and evicted from it before each run ("cold", posix_fadvise DONTNEED on this file only).

    python benchmarks/gctx_subset.py                    # full size, temp dir, deleted after
    python benchmarks/gctx_subset.py --n-sigs 5000      # quick
    python benchmarks/gctx_subset.py --workdir /data --keep
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from probes import peak_rss_mb, reset_peak_rss, status_mb  # benchmarks/, the script's own directory

METHODS = ("ours", "whole")


def measure(method: str, path: str, ids_path: str) -> dict:
    """One measurement; runs in its own process (see main)."""
    import h5py
    import pandas as pd

    from tfnet_jax.data.io.gctx import read_gctx

    cids = json.loads(Path(ids_path).read_text())
    reset = reset_peak_rss()
    baseline = status_mb("VmRSS")  # interpreter + numpy/pandas/h5py, before any read
    start = time.perf_counter()
    if method == "ours":
        matrix = read_gctx(path, cids=cids).matrix
    else:
        with h5py.File(path, "r") as f:
            full = f["0/DATA/0/matrix"][...]  # signatures x genes
            ids = pd.Index([x.decode() for x in f["0/META/COL/id"][()].tolist()])
        matrix = full[ids.get_indexer(cids)].T
        del full
    wall = time.perf_counter() - start
    return dict(method=method, wall_s=wall, peak_rss_mb=peak_rss_mb(reset), baseline_rss_mb=baseline,
                shape=list(matrix.shape), checksum=float(matrix.sum(dtype=np.float64)))


def evict_from_page_cache(path: Path) -> None:
    """Drop this file's cached pages (clean after the writer's fsync); no other file's."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def generate(path: Path, n_sigs: int, n_genes: int, seed: int, block: int = 1000) -> float:
    from tfnet_jax.data.io.gctx_write import GCTXWriter

    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    with GCTXWriter(path, [str(10_000 + g) for g in range(n_genes)]) as writer:
        for first in range(0, n_sigs, block):
            k = min(block, n_sigs - first)
            values = rng.standard_normal((n_genes, k), dtype=np.float32)
            writer.append(values, [f"SIG_{first + j:07d}" for j in range(k)])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-sigs", type=int, default=50_000)
    parser.add_argument("--n-genes", type=int, default=12_328)
    parser.add_argument("--n-select", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", choices=("warm", "cold", "both"), default="both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="where to write the file (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    parser.add_argument("--measure", choices=METHODS, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.file, args.ids)))
        return

    size = args.n_sigs * args.n_genes * 4
    workdir = Path(tempfile.mkdtemp(prefix="gctx_bench_", dir=args.workdir))
    free = shutil.disk_usage(workdir).free
    if free < 1.2 * size:
        shutil.rmtree(workdir)
        sys.exit(f"{workdir}: {free / 1e9:.1f} GB free, the file needs {size / 1e9:.1f} GB; "
                 "use --n-sigs or --workdir")
    path = workdir / f"level5_n{args.n_sigs}x{args.n_genes}.gctx"
    try:
        seconds = generate(path, args.n_sigs, args.n_genes, args.seed)
        print(f"wrote {path} ({path.stat().st_size / 1e9:.2f} GB) in {seconds:.1f} s with GCTXWriter")
        rng = np.random.default_rng(args.seed + 1)
        chosen = rng.choice(args.n_sigs, size=args.n_select, replace=False)
        ids_path = workdir / "ids.json"
        ids_path.write_text(json.dumps([f"SIG_{i:07d}" for i in chosen]))
        for cache in ("warm", "cold") if args.cache == "both" else (args.cache,):
            runs: dict[str, list[dict]] = {m: [] for m in METHODS}
            for _ in range(args.repeats):
                for method in METHODS:  # alternate, so that both see alike conditions
                    if cache == "cold":
                        evict_from_page_cache(path)
                    out = subprocess.run([sys.executable, __file__, "--measure", method, "--file",
                                          str(path), "--ids", str(ids_path)],
                                         check=True, capture_output=True, text=True).stdout
                    runs[method].append(json.loads(out.strip().splitlines()[-1]))
            report(runs, args, cache)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def report(runs: dict[str, list[dict]], args: argparse.Namespace, cache: str) -> None:
    ours, whole = runs["ours"][0], runs["whole"][0]
    if ours["shape"] != whole["shape"] or not np.isclose(ours["checksum"], whole["checksum"]):
        sys.exit(f"results differ: {ours} vs {whole}")
    median = {m: {k: statistics.median(r[k] for r in rs)
                  for k in ("wall_s", "peak_rss_mb", "baseline_rss_mb")} for m, rs in runs.items()}
    print(f"\n{args.n_select:,} random signatures x all {args.n_genes:,} genes of "
          f"{args.n_sigs:,}; {cache} page cache; median of {args.repeats} fresh processes")
    print(f"{'':28s}{'ours (read_gctx cids=)':>24s}{'whole (h5py ds[...])':>24s}")
    rows = [("wall time (s)", "wall_s", "{:.2f}"), ("peak RSS (MB)", "peak_rss_mb", "{:,.0f}"),
            ("peak RSS above start (MB)", None, "{:,.0f}")]
    for label, key, fmt in rows:
        cells = [median[m][key] if key else median[m]["peak_rss_mb"] - median[m]["baseline_rss_mb"]
                 for m in METHODS]
        print(f"{label:28s}" + "".join(f"{fmt.format(c):>24s}" for c in cells))
    print(f"result: {ours['shape'][0]:,} x {ours['shape'][1]:,} float32 = "
          f"{ours['shape'][0] * ours['shape'][1] * 4 / 1e6:,.0f} MB")


if __name__ == "__main__":
    main()
