#!/usr/bin/env python
"""Genome scale from files: a `data=dir` directory loaded and built into graphs, beside a bare
pandas + scipy reader of the same files.

A script, not a test: it prints figures and asserts nothing about time. It writes the
`data=synthetic_genome` data set (27,000 genes, 7 edge lists with ~1.0M undirected edges
in all, 7,200 signatures x 978 readouts, node features) as a data directory (edge lists
.tsv.gz like the real subset, signature tables .csv), then, each in a fresh process:
- tfnet_jax: `load_data_dir` (every check of the edge-list and signature policies: IDs,
  weights, duplicates, NaN, readout alignment) + `multiplex_graphs` (symmetric, self-looped,
  receiver-normalised, sharded edge blocks);
- peer: `pandas.read_csv` of the same files + a scipy.sparse CSR per layer (no checks), the
  least any loader has to do.

    python benchmarks/data_dir_scale.py [--workdir DIR] [--keep] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_directory(root: Path) -> dict:
    import numpy as np
    import pandas as pd
    from omegaconf import OmegaConf

    from tfnet_jax.data.perturbation.synthetic import SyntheticConfig, make_synthetic
    values = OmegaConf.to_container(OmegaConf.load(ROOT / "configs/data/synthetic_genome.yaml"))
    values.pop("defaults", None)
    data = make_synthetic(SyntheticConfig(**values))
    (root / "networks").mkdir(parents=True)
    (root / "signatures").mkdir()
    for layer in data.layers:
        pd.DataFrame({"gene_a": data.genes[layer.senders], "gene_b": data.genes[layer.receivers],
                      "weight": np.round(layer.weights, 4)}).to_csv(
            root / "networks" / f"{layer.name}.tsv.gz", sep="\t", index=False)
    for t, table in data.signatures.items():
        frame = pd.DataFrame(table.values, columns=data.readout_genes)
        frame.insert(0, "pert_gene", table.pert_genes)
        frame.to_csv(root / "signatures" / f"{t}.csv", index=False, float_format="%.5g")
    features = pd.DataFrame(data.node_features, columns=[f"f{i}" for i in range(data.node_features.shape[1])])
    features.insert(0, "gene", data.genes)
    features.to_csv(root / "node_features.csv", index=False, float_format="%.5g")
    return {"genes": int(data.num_genes), "undirected_edges": int(sum(len(l.senders) for l in data.layers)),
            "signatures": int(sum(len(t.pert_genes) for t in data.signatures.values()))}


def measure(side: str, root: str) -> dict:
    """Runs in a fresh process: wall seconds and peak RSS of one side."""
    start = time.perf_counter()
    if side == "tfnet_jax":
        from tfnet_jax.data.perturbation.datadir import load_data_dir
        from tfnet_jax.graph.multiplex import multiplex_graphs
        data = load_data_dir(root)
        loaded = time.perf_counter()
        graphs = multiplex_graphs(data.layers, data.num_genes)
        edges = sum(g.num_edges for g in graphs)
    else:
        import numpy as np
        import pandas as pd
        import scipy.sparse as sp
        tables = [pd.read_csv(p, sep="\t") for p in sorted(Path(root, "networks").glob("*.tsv.gz"))]
        signatures = [pd.read_csv(p) for p in sorted(Path(root, "signatures").glob("*.csv"))]
        pd.read_csv(Path(root, "node_features.csv"))
        genes = pd.Index(pd.unique(np.concatenate([np.concatenate([t.gene_a.astype(str), t.gene_b.astype(str)])
                                                   for t in tables])))
        loaded = time.perf_counter()
        edges = 0
        for t in tables:
            a, b = genes.get_indexer(t.gene_a.astype(str)), genes.get_indexer(t.gene_b.astype(str))
            w = t.weight.to_numpy(np.float32)
            adj = sp.coo_matrix((np.concatenate([w, w]), (np.concatenate([a, b]), np.concatenate([b, a]))),
                                shape=(len(genes), len(genes))).tocsr()
            edges += adj.nnz
        del signatures
    done = time.perf_counter()
    peak = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmHWM")) / 2 ** 20
    return {"load_s": loaded - start, "graph_s": done - loaded, "total_s": done - start,
            "directed_edges": int(edges), "peak_rss_gb": peak}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, help="where to write the directory (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the written directory")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--measure", nargs=2, metavar=("SIDE", "ROOT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    base = Path(tempfile.mkdtemp(dir=args.workdir))
    root = base / "genome_dir"
    start = time.perf_counter()
    sizes = write_directory(root)
    print(f"wrote {root} in {time.perf_counter() - start:.1f} s: {sizes['genes']:,} genes, "
          f"{sizes['undirected_edges']:,} undirected edges in 7 edge lists, {sizes['signatures']:,} signatures")
    results = {"sizes": sizes}
    for side in ("tfnet_jax", "peer"):
        out = subprocess.run([sys.executable, __file__, "--measure", side, str(root)],
                             capture_output=True, text=True, check=True)
        results[side] = json.loads(out.stdout.strip().splitlines()[-1])
    rows = [("load (s)", "load_s"), ("graph build (s)", "graph_s"), ("total (s)", "total_s"),
            ("peak RSS (GB)", "peak_rss_gb"), ("directed edges", "directed_edges")]
    print(f"\n{'':18}{'tfnet_jax (checked)':>22}{'pandas+scipy (bare)':>22}")
    for label, key in rows:
        a, b = results["tfnet_jax"][key], results["peer"][key]
        fmt = (lambda v: f"{v:,}") if key == "directed_edges" else (lambda v: f"{v:.2f}")
        print(f"{label:18}{fmt(a):>22}{fmt(b):>22}")
    print("(peer's edges: no self-loops; tfnet_jax adds one per gene per layer)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if not args.keep:
        import shutil
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
