"""Loading a Perturb-seq .h5ad through `data=anndata`: wall time and memory above start.

Writes a synthetic screen (default 40,000 cells x 4,000 genes, sparse CSR, 5% non-zero
counts, 500 perturbed genes + 10% non-targeting controls, 8 gem groups) and a ring network
over the perturbed genes, then loads it in a fresh subprocess with `data.log1p=true` and
`data.batch_column=gem_group`, reporting wall time and peak RSS above the imports
(Linux VmHWM, reset after them) against the size of X held dense as float64.

    python benchmarks/perturbseq_load.py
    python benchmarks/perturbseq_load.py --cells 200000 --genes 8000
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

MEASURE = """
import sys, time
from pathlib import Path
import anndata, tfnet_jax.data.perturbation.perturbseq  # imports are not the load's memory
from tfnet_jax.data.load import load_perturbation_data
def status_mb(key):
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(key))
    return int(line.split()[1]) / 1024
Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
before = status_mb("VmRSS")
start = time.perf_counter()
data = load_perturbation_data({"name": "anndata", "path": sys.argv[1], "networks": sys.argv[2],
                               "batch_column": "gem_group", "log1p": True})
seconds = time.perf_counter() - start
print(f"{seconds:.1f} s, peak {status_mb('VmHWM') - before:.0f} MB above start; "
      f"signatures {data.signatures['CRISPR'].values.shape}")
"""


def write_screen(folder: Path, cells: int, genes: int, perturbed: int) -> Path:
    import anndata
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    x = sp.random(cells, genes, density=0.05, format="csr", dtype=np.float32, random_state=0)
    x.data = np.round(x.data * 10) + 1
    names = [f"P{i}" for i in range(perturbed)]
    labels = np.where(rng.random(cells) < 0.1, "non-targeting", rng.choice(names, cells))
    obs = pd.DataFrame({"gene": labels, "gem_group": rng.integers(0, 8, cells).astype(str)},
                       index=[f"c{i}" for i in range(cells)])
    path = folder / "screen.h5ad"
    anndata.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"R{j}" for j in range(genes)])
                    ).write_h5ad(path)
    (folder / "networks").mkdir()
    pd.DataFrame({"gene_a": names, "gene_b": names[1:] + names[:1]}).to_csv(
        folder / "networks" / "ring.tsv", sep="\t", index=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=40_000)
    parser.add_argument("--genes", type=int, default=4_000)
    parser.add_argument("--perturbed", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_screen(Path(tmp), args.cells, args.genes, args.perturbed)
        print(f"{args.cells} cells x {args.genes} genes: file {path.stat().st_size / 1e6:.0f} MB, "
              f"X dense (float64) {args.cells * args.genes * 8 / 1e6:.0f} MB")
        subprocess.run([sys.executable, "-c", MEASURE, str(path), str(Path(tmp) / "networks")],
                       check=True)


if __name__ == "__main__":
    main()
