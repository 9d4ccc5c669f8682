"""Reading GenoNet's cis windows from a large VCF: our reader (cyvcf2 region queries) vs a plain
cyvcf2 loop and a pysam region-query reader (the reader before cyvcf2).

Generates once, cached in --workdir: a bgzipped, tabix-indexed VCF of 500 individuals x
1,000,000 biallelic SNVs (FORMAT/DS only; 20 chromosomes x 50,000 variants, one every 3 kb, so
a +-1 Mb window holds ~670 variants; mostly hard dosages, 10% imputed-looking decimals),
written as vectorised text through pysam's BGZF writer (no per-record pysam writes), plus a
genes table of 1,000 genes (50 per chromosome, 30 kb bodies) and a random expression table.
Then times, each in a fresh subprocess (peak RSS = Linux VmHWM reset after the imports):
  (a) ours:    VcfGenotypes.read_windows over the 1,000 windows (window +-1 Mb), each window
               dropped after a checksum: the reader's own cost and memory (SNV filter, DS range
               check, GT fallback, IDs, sample order)
  (b) cyvcf2:  the named peer, the floor for cyvcf2: the same region queries, each record's
               `variant.format("DS")[:, 0]` collected into a list, no checks at all
  (c) pysam:   the second peer, the reader as it was before cyvcf2: pysam region queries, the
               same SNV filter, DS taken one sample at a time (`rec.samples[...]["DS"]`)
  (d) loader:  read_genotype_data (data.vcf=..., data.window=1000000, maf 0, max_variants
               null): what GenoNet holds, every window's dosages (n x variants x 4 bytes)
  (e) scan:    one sequential pysam pass over the whole file decoding DS: the floor for
               reading it all through pysam (only with --scan: it decodes every record)

    python benchmarks/vcf_read.py --workdir /tmp/vcf_bench            # generate once, then time
    python benchmarks/vcf_read.py --workdir /tmp/vcf_bench --variants 100000 --genes 100  # quick
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from probes import reset_peak_rss, status_mb  # benchmarks/, the script's own directory

WINDOW = 1_000_000
SPACING = 3_000
CHROMS = 20
GENE_LENGTH = 30_000


# ---------------------------------------------------------------- data

def generate(workdir: Path, individuals: int, variants: int, genes: int, seed: int = 0) -> dict:
    """The VCF (+ .tbi), genes.csv and expr.csv in `workdir`; reused when `done.json` matches."""
    import pysam
    from pysam.libcbgzf import BGZFile

    workdir.mkdir(parents=True, exist_ok=True)
    spec = {"individuals": individuals, "variants": variants, "genes": genes, "seed": seed}
    paths = {"vcf": str(workdir / "cohort.vcf.gz"), "genes": str(workdir / "genes.csv"),
             "expression": str(workdir / "expr.csv")}
    done = workdir / "done.json"
    if done.exists() and json.loads(done.read_text()) == spec:
        return paths
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    per_chrom = variants // CHROMS
    iids = [f"ind{i:04d}" for i in range(individuals)]
    # DS strings by 0.001 step: a lookup table, so each row is one join of table entries.
    table = np.array([f"{v / 1000:.3f}".rstrip("0").rstrip(".") for v in range(2001)], dtype=object)
    bases = np.array(list("ACGT"))
    header = ["##fileformat=VCFv4.2"]
    header += [f"##contig=<ID=chr{c},length={per_chrom * SPACING + 10 * WINDOW}>" for c in range(1, CHROMS + 1)]
    header += ['##FORMAT=<ID=DS,Number=1,Type=Float,Description="ALT dosage">',
               "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *iids])]
    with BGZFile(paths["vcf"], "wb1") as out:  # zlib level 1: 9x faster to write, 30% larger
        out.write(("\n".join(header) + "\n").encode())
        for c in range(1, CHROMS + 1):
            for lo in range(0, per_chrom, 10_000):
                k = min(10_000, per_chrom - lo)
                pos = SPACING * (np.arange(lo, lo + k) + 1)
                freq = rng.uniform(0.02, 0.5, k)
                hard = rng.binomial(2, freq[:, None], size=(k, individuals)).astype(np.float64)
                soft = np.clip(hard + rng.normal(0, 0.3, hard.shape), 0, 2)
                ds = np.where(rng.random(hard.shape) < 0.1, soft, hard)
                cells = table[np.rint(ds * 1000).astype(np.int64)]
                ref = rng.integers(0, 4, k)
                alt = (ref + rng.integers(1, 4, k)) % 4
                lines = [f"chr{c}\t{p}\trs{c}_{p}\t{bases[r]}\t{bases[a]}\t.\tPASS\t.\tDS\t" + "\t".join(row)
                         for p, r, a, row in zip(pos, ref, alt, cells)]
                out.write(("\n".join(lines) + "\n").encode())
    pysam.tabix_index(paths["vcf"], preset="vcf", force=True)
    span = per_chrom * SPACING
    per = genes // CHROMS
    frame = pd.DataFrame({"gene": [f"g{i:05d}" for i in range(per * CHROMS)],
                          "chrom": np.repeat([f"chr{c}" for c in range(1, CHROMS + 1)], per),
                          "start": np.concatenate([np.sort(rng.integers(0, span - GENE_LENGTH, per))
                                                   for _ in range(CHROMS)])})
    frame["end"] = frame["start"] + GENE_LENGTH
    frame.to_csv(paths["genes"], index=False)
    pd.DataFrame(rng.normal(size=(individuals, len(frame))), index=pd.Index(iids, name="IID"),
                 columns=frame["gene"]).to_csv(paths["expression"])
    print(f"generated {paths['vcf']} ({Path(paths['vcf']).stat().st_size / 1e9:.2f} GB) in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    done.write_text(json.dumps(spec))
    return paths


def _regions(genes_csv: str):
    from tfnet_jax.data.genotype.source import Region
    genes = pd.read_csv(genes_csv)
    return [Region(c.replace("chr", ""), max(s - WINDOW, 1), e + WINDOW)
            for c, s, e in genes[["chrom", "start", "end"]].itertuples(index=False)]


# ---------------------------------------------------------------- one measurement (child process)

def measure(method: str, paths: dict) -> dict:
    regions = _regions(paths["genes"])
    if method == "ours":
        from tfnet_jax.data.genotype.vcf import VcfGenotypes
        reader = VcfGenotypes(paths["vcf"])
        rows = np.arange(len(reader.individuals))
        reset_peak_rss()
        start = time.perf_counter()
        records = checksum = 0
        for window in reader.read_windows(regions, rows):
            records += len(window.ids)
            checksum += float(np.nansum(window.dosages, dtype=np.float64))
    elif method == "cyvcf2":
        from cyvcf2 import VCF
        vcf = VCF(paths["vcf"])
        reset_peak_rss()
        start = time.perf_counter()
        records = checksum = 0
        for r in regions:
            columns = [v.format("DS")[:, 0] for v in vcf(f"chr{r.chrom}:{r.start}-{r.end}")]
            if columns:
                block = np.stack(columns, axis=1)
                records += block.shape[1]
                checksum += float(np.nansum(block, dtype=np.float64))
    elif method == "pysam":
        import pysam
        vf = pysam.VariantFile(paths["vcf"])
        reset_peak_rss()
        start = time.perf_counter()
        records = checksum = 0
        for r in regions:
            columns = []
            for rec in vf.fetch(f"chr{r.chrom}", r.start - 1, r.end):
                alts = rec.alts or ()
                if len(alts) != 1 or len(rec.ref) != 1 or len(alts[0]) != 1:
                    continue
                columns.append(np.array([s["DS"] for s in rec.samples.itervalues()], np.float32))
            if columns:
                block = np.stack(columns, axis=1)
                records += block.shape[1]
                checksum += float(np.nansum(block, dtype=np.float64))
    elif method == "loader":
        from tfnet_jax.data.genotype.readers import read_genotype_data
        reset_peak_rss()
        start = time.perf_counter()
        data = read_genotype_data({"vcf": paths["vcf"], "expression": paths["expression"],
                                   "genes": paths["genes"], "window": WINDOW, "maf": 0.0,
                                   "max_variants": None})
        records = sum(len(w.variant_ids) for w in data.windows)
        checksum = float(sum(np.nansum(w.float_dosages(), dtype=np.float64) for w in data.windows))
    elif method == "scan":
        import pysam
        vf = pysam.VariantFile(paths["vcf"])
        reset_peak_rss()
        start = time.perf_counter()
        records, checksum = 0, 0.0
        for rec in vf:
            d = np.array([s["DS"] for s in rec.samples.itervalues()], np.float32)
            records += 1
            checksum += float(d.sum(dtype=np.float64))
    else:
        raise ValueError(method)
    wall = time.perf_counter() - start
    return {"method": method, "wall_s": wall, "peak_rss_mb": status_mb("VmHWM"), "records": records,
            "checksum": checksum}


def run_child(method: str, paths: dict) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import vcf_read; "
            f"print(json.dumps(vcf_read.measure({method!r}, json.loads(sys.argv[1]))))")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(paths)], capture_output=True, text=True,
                          check=False)
    if done.returncode:
        raise SystemExit(f"{method} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "tfnet_jax_vcf_bench"))
    parser.add_argument("--individuals", type=int, default=500)
    parser.add_argument("--variants", type=int, default=1_000_000)
    parser.add_argument("--genes", type=int, default=1_000)
    parser.add_argument("--scan", action="store_true", help="also time a full sequential pysam scan")
    args = parser.parse_args(argv)
    paths = generate(Path(args.workdir), args.individuals, args.variants, args.genes)
    size_mb = Path(paths["vcf"]).stat().st_size / 2 ** 20
    methods = ["ours", "cyvcf2", "pysam", "loader"] + (["scan"] if args.scan else [])
    results = [run_child(m, paths) for m in methods]
    print(f"\n{args.individuals} individuals x {args.variants:,} variants, VCF {size_mb:,.0f} MiB; "
          f"{args.genes} windows of +-{WINDOW // 1_000_000} Mb")
    print(f"{'method':8} {'wall s':>8} {'records':>10} {'us/record':>10} {'peak RSS MiB':>13} {'RSS/file':>9}")
    for r in results:
        print(f"{r['method']:8} {r['wall_s']:8.1f} {r['records']:10,} {r['wall_s'] / max(r['records'], 1) * 1e6:10.1f} "
              f"{r['peak_rss_mb']:13.0f} {r['peak_rss_mb'] / size_mb:9.2f}")
    same = {round(r["checksum"], 0) for r in results if r["method"] != "scan"}
    print("checksums agree" if len(same) == 1 else f"checksums differ: {same}")


if __name__ == "__main__":
    main()
