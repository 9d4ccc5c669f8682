#!/usr/bin/env python
"""tfnet-networks at STRING's full human size, beside a bare pandas reader of the same file.

A script, not a test: it prints figures and asserts nothing about time. It generates (once,
cached in --workdir) a STRING v12-format `9606.protein.links.detailed.v12.0.txt.gz` of
STRING's human size (6.85 M pairs listed in both directions = 13.7 M lines over 19,600
proteins, degrees skewed, combined scores from 150 with ~6 % >= 700 as in STRING, sub-scores
mostly 0), its `protein.info` and an NCBI `gene_info` (2 % of proteins named by no gene). Then,
each in a fresh process (peak RSS = the child's own ru_maxrss):
- tfnet_jax: `build_networks(string=..., string_info=..., gene_info=...,
  string_channels=[combined,experimental])`: both layers mapped to Entrez IDs, written with
  report.json;
- peer: `pandas.read_csv` of the links (the same columns) + a merge onto the info file's
  names for both proteins + the >= 700 filter of the same two channels; no gene mapping, no
  deduplication, nothing written: the least any converter has to do.

    python benchmarks/networks_build.py [--workdir DIR] [--lines 13700000] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROTEINS = 19_600
FULL_LINES = 13_700_000
CHANNELS = ("neighborhood", "fusion", "cooccurence", "coexpression", "experimental", "database",
            "textmining")
NONZERO = (0.05, 0.01, 0.05, 0.4, 0.2, 0.05, 0.6)  # share of pairs with evidence per channel


def protein_name(i) -> str:
    return f"9606.ENSP{i:011d}"


def generate(folder: Path, lines: int, seed: int = 0) -> dict:
    """The three files (skipped when already there for this size)."""
    import gzip

    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    folder.mkdir(parents=True, exist_ok=True)
    files = {"string": folder / f"9606.protein.links.detailed.{lines}.txt.gz",
             "string_info": folder / "9606.protein.info.v12.0.txt.gz",
             "gene_info": folder / "Homo_sapiens.gene_info.gz"}
    if all(p.is_file() for p in files.values()):
        return files
    rng = np.random.default_rng(seed)
    names = np.array([protein_name(i) for i in range(PROTEINS)], dtype=object)
    with gzip.open(files["string_info"], "wt", compresslevel=1) as handle:
        handle.write("#string_protein_id\tpreferred_name\tprotein_size\tannotation\n")
        for i, name in enumerate(names):
            symbol = f"GENE{i}" if i % 50 else f"ORPHAN{i}"  # 2 %: no gene_info gene
            handle.write(f"{name}\t{symbol}\t{300 + i % 700}\tsynthetic protein {i}\n")
    with gzip.open(files["gene_info"], "wt", compresslevel=1) as handle:
        handle.write("#tax_id\tGeneID\tSymbol\tLocusTag\tSynonyms\tdbXrefs\tchromosome\t"
                     "map_location\tdescription\ttype_of_gene\n")
        for i in range(PROTEINS + 2000):
            handle.write(f"9606\t{100 + i}\tGENE{i}\t-\tALIAS{i}|G{i}\tEnsembl:ENSG{i:011d}\t1\t-\t"
                         f"gene {i}\tprotein-coding\n")
    pairs = lines // 2
    # Skewed degrees: proteins drawn with probability ~ rank^-0.6 (hubs and a long tail).
    weights = 1.0 / np.arange(1, PROTEINS + 1) ** 0.6
    weights = rng.permutation(weights / weights.sum())
    found = np.zeros(0, np.int64)
    while len(found) < pairs:
        a = rng.choice(PROTEINS, size=pairs, p=weights)
        b = rng.choice(PROTEINS, size=pairs, p=weights)
        keep = a != b
        code = np.minimum(a, b)[keep].astype(np.int64) * PROTEINS + np.maximum(a, b)[keep]
        found = np.unique(np.concatenate([found, code]))
    code = rng.permutation(found)[:pairs]
    p1, p2 = code // PROTEINS, code % PROTEINS
    combined = np.minimum(150 + rng.exponential(200, pairs), 999).astype(np.int32)
    sub = {c: np.where(rng.random(pairs) < share, rng.integers(40, 1000, pairs) * combined // 1000, 0)
           for c, share in zip(CHANNELS, NONZERO)}
    # Both directions, sorted by protein1 as STRING lists them.
    first = np.concatenate([p1, p2])
    second = np.concatenate([p2, p1])
    order = np.lexsort((second, first))
    columns = {"protein1": first[order], "protein2": second[order],
               **{c: np.concatenate([v, v])[order].astype(np.int32) for c, v in sub.items()},
               "combined_score": np.concatenate([combined, combined])[order]}
    options = pacsv.WriteOptions(delimiter=" ", quoting_style="none", include_header=False)
    tmp = files["string"].with_suffix(".part")
    with gzip.open(tmp, "wb", compresslevel=1) as handle:
        handle.write(("protein1 protein2 " + " ".join(CHANNELS) + " combined_score\n").encode())
        dictionary = pa.array(names.tolist())
        for start in range(0, len(order), 1 << 20):
            stop = start + (1 << 20)
            table = pa.table({
                name: (pa.DictionaryArray.from_arrays(pa.array(values[start:stop].astype(np.int32)),
                                                      dictionary).cast(pa.string())
                       if name.startswith("protein") else pa.array(values[start:stop]))
                for name, values in columns.items()})
            sink = pa.BufferOutputStream()
            pacsv.write_csv(table, sink, options)
            handle.write(sink.getvalue().to_pybytes())
    tmp.rename(files["string"])
    return files


def child_tfnet(files: dict, out: Path) -> dict:
    from tfnet_jax.data.sources.build import build_networks
    report = build_networks(out, gene_info=files["gene_info"], string=files["string"],
                            string_info=files["string_info"],
                            string_channels=["combined", "experimental"])
    return {name: layer["edges"] for name, layer in report["layers"].items()}


def child_peer(files: dict, out: Path) -> dict:
    import pandas as pd
    info = pd.read_csv(files["string_info"], sep="\t", usecols=[0, 1], names=["protein", "name"],
                       skiprows=1)
    links = pd.read_csv(files["string"], sep=" ",
                        usecols=["protein1", "protein2", "experimental", "combined_score"])
    for side in ("1", "2"):
        links = links.merge(info.rename(columns={"protein": f"protein{side}", "name": f"name{side}"}),
                            on=f"protein{side}", how="left")
    return {"string_combined": int((links["combined_score"] >= 700).sum()),
            "string_experimental": int((links["experimental"] >= 700).sum())}


def run_child(which: str, files: dict, out: Path) -> dict:
    """Run one side in a fresh process; its wall time, peak RSS and result."""
    code = (f"import json, resource, sys, time; sys.path.insert(0, {str(ROOT)!r}); "
            f"sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import networks_build as b; "
            f"from pathlib import Path; t = time.perf_counter(); "
            f"r = b.child_{which}({ {k: str(v) for k, v in files.items()} !r}, Path({str(out)!r})); "
            f"r = dict(result=r, wall_s=time.perf_counter() - t, "
            f"peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20); "
            f"print('RESULT', json.dumps(r))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode:
        raise SystemExit(f"{which} failed:\n{done.stderr[-3000:]}")
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "tfnet_networks_bench")
    parser.add_argument("--lines", type=int, default=FULL_LINES)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    files = generate(args.workdir, args.lines)
    size = files["string"].stat().st_size / 2**20
    print(f"input: {files['string'].name}: {args.lines:,} lines, {size:.0f} MiB gzip "
          f"(generated/cached in {time.perf_counter() - started:.0f} s); {os.cpu_count()} CPUs")
    results = {"lines": args.lines,
               "tfnet_jax": run_child("tfnet", files, args.workdir / "out"),
               "peer_pandas": run_child("peer", files, args.workdir / "peer")}
    print(f"{'':28}{'tfnet_jax build_networks':>26}{'peer: pandas read+merge+filter':>32}")
    for key, label in (("wall_s", "wall (s)"), ("peak_rss_gb", "peak RSS (GB)")):
        print(f"{label:28}{results['tfnet_jax'][key]:>26.2f}{results['peer_pandas'][key]:>32.2f}")
    for layer, edges in results["tfnet_jax"]["result"].items():
        print(f"{layer + ' (edges / rows)':28}{edges:>26,}{results['peer_pandas']['result'][layer]:>32,}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
