"""One small random cohort written in every genotype format GenoNet reads: PLINK, VCF with DS,
VCF with GT only, PredictDB dosage text (tests/data/test_genotype_formats.py, the bad-input
catalogue). Hard calls, so every format holds the same dosages."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

GENES = pd.DataFrame({"gene": ["gA", "gB", "gC"], "chrom": ["1", "chr1", "2"],
                      "start": [100_000, 300_000, 50_000], "end": [110_000, 305_000, 60_000]})
WINDOW = 20_000
PER_GENE = 40


def _gt(d: float) -> str:
    return "./." if np.isnan(d) else ("0/0", "0/1", "1/1")[int(d)]


def _ds(d: float) -> str:
    return "." if np.isnan(d) else f"{d:g}"


def make_cohort(seed: int = 0, n: int = 60) -> dict:
    """Variants (ids, chrom, pos, ref, alt) sorted by chromosome and position, dosages of the ALT
    allele [individuals, variants] with two missing calls and one monomorphic variant, the
    genotyped individuals (shuffled, plus one without expression) and their expression."""
    rng = np.random.default_rng(seed)
    rows = []
    for gene in GENES.itertuples():
        chrom = gene.chrom.replace("chr", "")
        pos = rng.choice(np.arange(gene.start - WINDOW, gene.end + WINDOW), PER_GENE, replace=False)
        rows += [(chrom, int(p)) for p in pos]
    rows += [("1", 200_000), ("2", 150_000)]  # outside every window
    variants = pd.DataFrame(rows, columns=["chrom", "pos"]).sort_values(["chrom", "pos"], ignore_index=True)
    bases = np.array(list("ACGT"))
    pairs = np.array([rng.choice(bases, 2, replace=False) for _ in range(len(variants))])
    variants["ref"], variants["alt"] = pairs[:, 0], pairs[:, 1]
    variants["id"] = [f"rs{1000 + i}" for i in range(len(variants))]
    variants.loc[3, "id"] = "."  # becomes chr1_{pos}_{ref}_{alt}
    iids = np.array([f"id{i:02d}" for i in range(n)] + ["extra"])
    geno_order = rng.permutation(len(iids))
    freq = rng.uniform(0.1, 0.5, len(variants))
    dosages = rng.binomial(2, freq, size=(len(iids), len(variants))).astype(np.float32)
    dosages[:, 50] = 0.0                      # monomorphic: dropped by every format alike
    dosages[5, 7] = dosages[17, 44] = np.nan  # missing calls
    x = np.nan_to_num(dosages[:n])
    expression = pd.DataFrame(index=pd.Index(iids[:n], name="IID"))
    for g, gene in enumerate(GENES["gene"]):
        cols = g * PER_GENE + np.arange(0, PER_GENE, 8)
        expression[gene] = x[:, cols] @ rng.normal(size=len(cols)) + rng.normal(size=n)
    return {"variants": variants, "dosages": dosages[geno_order], "iids": iids[geno_order],
            "expression": expression}


def write_plink(cohort: dict, prefix: Path) -> str:
    from bed_reader import to_bed
    v = cohort["variants"]
    to_bed(Path(str(prefix) + ".bed"), cohort["dosages"], count_A1=True, num_threads=1, properties={
        "iid": cohort["iids"], "fid": cohort["iids"], "sid": v["id"], "chromosome": v["chrom"],
        "bp_position": v["pos"], "allele_1": v["alt"], "allele_2": v["ref"]})
    return str(prefix)


def _extra_records(chrom: str) -> list[tuple]:
    """(pos, id, ref, alt) of a multi-allelic and an indel record in gA's window (chromosome 1)."""
    return [(101_001, "multi1", "A", "C,T"), (102_002, "indel1", "AT", "A")] if chrom == "1" else []


def write_vcf(cohort: dict, path: Path, field: str = "DS", contig_prefix: str = "chr",
              no_ds_every: int = 9) -> str:
    """A bgzipped, tabix-indexed VCF. field=DS: FORMAT GT:DS, but every `no_ds_every`-th record
    GT only (read through GT); field=GT: hard calls only."""
    import pysam
    v, d, iids = cohort["variants"], cohort["dosages"], cohort["iids"]
    lines = ["##fileformat=VCFv4.2"]
    lines += [f"##contig=<ID={contig_prefix}{c},length=10000000>" for c in ("1", "2")]
    lines += ['##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
              '##FORMAT=<ID=DS,Number=1,Type=Float,Description="ALT dosage">',
              "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *iids])]
    records = []
    for j, row in v.iterrows():
        with_ds = field == "DS" and j % no_ds_every != 1
        cells = [f"{_gt(x)}:{_ds(x)}" if with_ds else _gt(x) for x in d[:, j]]
        records.append((row.chrom, row.pos, [row.id, row.ref, row.alt, ".", "PASS", ".",
                                             "GT:DS" if with_ds else "GT", *cells]))
    for chrom in ("1", "2"):
        for pos, vid, ref, alt in _extra_records(chrom):
            records.append((chrom, pos, [vid, ref, alt, ".", "PASS", ".", "GT", *["0/1"] * len(iids)]))
    records.sort(key=lambda r: (r[0], r[1]))
    lines += ["\t".join([contig_prefix + chrom, str(pos), *rest]) for chrom, pos, rest in records]
    Path(path).write_text("\n".join(lines) + "\n")
    return pysam.tabix_index(str(path), preset="vcf", force=True)


def write_dosage_text(cohort: dict, folder: Path) -> tuple[str, str]:
    """PredictDB dosage files chr1.txt.gz (gzipped) and chr2.txt (plain), and samples.txt.
    Returns (pattern, samples file)."""
    v, d, iids = cohort["variants"], cohort["dosages"], cohort["iids"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "samples.txt").write_text("\n".join(iids) + "\n")
    for chrom in ("1", "2"):
        lines = []
        for j in np.flatnonzero(v["chrom"].to_numpy() == chrom):
            row = v.iloc[j]
            maf = np.nanmean(d[:, j]) / 2
            cells = ["NA" if np.isnan(x) else f"{x:g}" for x in d[:, j]]
            lines.append(" ".join([chrom, row.id, str(row.pos), row.ref, row.alt, f"{maf:.3f}", *cells]))
        for pos, vid, ref, alt in _extra_records(chrom):
            lines.append(" ".join([chrom, vid, str(pos), ref, alt, "0.5", *["1"] * len(iids)]))
        text = "\n".join(lines) + "\n"
        if chrom == "1":
            with gzip.open(folder / "chr1.txt.gz", "wt") as handle:
                handle.write(text)
        else:
            (folder / "chr2.txt").write_text(text)
    # {chrom} -> one file per chromosome; the two files differ in compression only.
    (folder / "chr2.txt.gz").symlink_to(folder / "chr2.txt")
    return str(folder / "chr{chrom}.txt.gz"), str(folder / "samples.txt")


def write_all(cohort: dict, root: Path) -> dict:
    """Every format plus the expression and genes tables; the data config keys of each."""
    root.mkdir(parents=True, exist_ok=True)
    cohort["expression"].to_csv(root / "expr.csv")
    GENES.to_csv(root / "genes.csv", index=False)
    pattern, samples = write_dosage_text(cohort, root / "dosage")
    common = {"expression": str(root / "expr.csv"), "genes": str(root / "genes.csv"), "window": WINDOW}
    return {"plink": {**common, "bed": write_plink(cohort, root / "geno")},
            "vcf_ds": {**common, "vcf": write_vcf(cohort, root / "ds.vcf", "DS", "chr")},
            "vcf_gt": {**common, "vcf": write_vcf(cohort, root / "gt.vcf", "GT", "")},
            "dosage": {**common, "dosage": pattern, "dosage_samples": samples}}
