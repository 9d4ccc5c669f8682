"""Simulated cis-eQTL data for GenoNet, written as real PLINK files with a planted truth.

Each gene gets its own msprime coalescent region (so LD is realistic), placed on chromosome
1 + (g % 22) with regions `region_spacing` bp apart, the gene body in the middle. Annotations
drive which variants are causal; expression is additive or additive + dominance + pairwise
interaction of the causal variants, scaled to the gene's heritability (0 for null genes).

Files in out_dir: geno.bed/.bim/.fam (A1 = derived allele, dosage = its count),
expression.csv (IID + genes), genes.csv, annotations.csv, genetic.csv (true genetic value
per individual and gene), trait.csv (stage-2 trait from a few genes) and truth.json.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from tfnet_jax.schemas import GenoSimConfig  # noqa: F401 (re-exported: defined with the configs)


def _check(cfg: GenoSimConfig) -> None:
    if cfg.mode not in ("additive", "nonadditive"):
        raise ValueError(f"GenoSimConfig.mode must be 'additive' or 'nonadditive', not {cfg.mode!r}")
    if cfg.dominance_share < 0 or cfg.interaction_share < 0 or cfg.dominance_share + cfg.interaction_share > 1:
        raise ValueError("GenoSimConfig: need dominance_share, interaction_share >= 0 with sum <= 1")
    if not 0 <= cfg.heritability <= 1 or not 0 <= cfg.null_fraction <= 1:
        raise ValueError("GenoSimConfig: heritability and null_fraction must lie in [0, 1]")
    if cfg.region_spacing < cfg.region_length + 2_000_000:
        raise ValueError("GenoSimConfig.region_spacing must exceed region_length by >= 2 Mb, "
                         "so a 1 Mb window never reaches a neighbouring gene's region")


def _simulate_region(cfg: GenoSimConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Common biallelic variants of one region: (positions [V] 0-based, dosages int8 [n, V])."""
    import msprime

    ts = msprime.sim_ancestry(samples=cfg.num_individuals, ploidy=2, sequence_length=cfg.region_length,
                              recombination_rate=cfg.recombination_rate,
                              population_size=cfg.population_size, random_seed=seed)
    ts = msprime.sim_mutations(ts, rate=cfg.mutation_rate, model=msprime.BinaryMutationModel(),
                               random_seed=seed + 1)
    if ts.num_sites == 0:
        return np.zeros(0, np.int64), np.zeros((cfg.num_individuals, 0), np.int8)
    haplotypes = ts.genotype_matrix()                     # [sites, 2n], sample nodes 2i, 2i+1 = individual i
    dosages = (haplotypes[:, 0::2] + haplotypes[:, 1::2]).T.astype(np.int8)
    positions = ts.tables.sites.position.astype(np.int64)
    freq = dosages.mean(axis=0) / 2
    keep = np.flatnonzero(np.minimum(freq, 1 - freq) >= cfg.maf)
    if len(keep) > cfg.max_variants:
        keep = keep[np.unique(np.linspace(0, len(keep) - 1, cfg.max_variants).round().astype(int))]
    return positions[keep], dosages[:, keep]


def _unit(x: np.ndarray) -> np.ndarray:
    """Centred, unit-variance copy (zeros when x is constant)."""
    x = x - x.mean()
    sd = x.std()
    return x / sd if sd > 0 else np.zeros_like(x)


def _genetic_value(cfg: GenoSimConfig, x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Genetic value (unit variance) of the causal dosages x [n, c], and its effect sizes."""
    c = x.shape[1]
    centred = x - x.mean(axis=0)
    beta = rng.normal(size=c)
    parts = {"additive": (_unit(centred @ beta), 1.0)}
    effects = {"additive": beta.tolist()}
    if cfg.mode == "nonadditive":
        delta = rng.normal(size=c)
        pairs = [(i, j) for i in range(c) for j in range(i + 1, c)]
        gamma = rng.normal(size=len(pairs))
        het = (x == 1).astype(float)
        inter = sum((g * centred[:, i] * centred[:, j] for (i, j), g in zip(pairs, gamma)), np.zeros(len(x)))
        parts["additive"] = (parts["additive"][0], 1 - cfg.dominance_share - cfg.interaction_share)
        parts["dominance"] = (_unit(het @ delta), cfg.dominance_share)
        parts["interaction"] = (_unit(inter), cfg.interaction_share)
        effects.update(dominance=delta.tolist(), interaction_pairs=pairs, interaction=gamma.tolist())
    g = sum(np.sqrt(share) * part for part, share in parts.values())
    return _unit(g), effects


def simulate_genotypes(cfg: GenoSimConfig, out_dir) -> dict:
    """Simulate, write every file (see the module docstring) and return their paths.

    Also returned: "window" (a load window that recovers exactly each gene's region),
    "variant_ids" and "dosages" (int8 [individuals, variants], as written to the .bed).
    """
    from bed_reader import to_bed

    _check(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    n, k = cfg.num_individuals, cfg.num_annotations
    iids = np.array([f"ind{i:05d}" for i in range(n)])
    genes = [f"gene{g:04d}" for g in range(cfg.num_genes)]
    w = rng.normal(size=k)
    w = w / np.linalg.norm(w) if k else w
    null = set(rng.permutation(cfg.num_genes)[: int(round(cfg.null_fraction * cfg.num_genes))].tolist())

    gene_rows, variant_blocks, truth_genes = [], [], {}
    expression, genetic = {}, {}
    for g, gene in enumerate(genes):
        chrom = 1 + g % 22
        offset = 1_000_000 + (g // 22) * cfg.region_spacing
        body = min(cfg.gene_length, cfg.region_length)
        start = offset + (cfg.region_length - body) // 2
        gene_rows.append((gene, str(chrom), start, start + body - 1))
        positions, dosages = _simulate_region(cfg, seed=int(rng.integers(1, 2**31 - 2)))
        v = len(positions)
        ids = np.array([f"{gene}_v{j:04d}" for j in range(v)])
        annotations = rng.standard_normal((v, k))
        variant_blocks.append((chrom, offset + positions + 1, ids, dosages, annotations))

        h2 = 0.0 if g in null else cfg.heritability
        record = {"chrom": str(chrom), "heritability": h2, "mode": cfg.mode, "num_variants": v,
                  "causal": [], "causal_prob": []}
        value = np.zeros(n)
        if h2 > 0 and v > 0:
            logits = cfg.annotation_effect * annotations @ w
            p = np.exp(logits - logits.max())
            p /= p.sum()
            causal = np.sort(rng.choice(v, size=min(cfg.num_causal, v), replace=False, p=p))
            value, effects = _genetic_value(cfg, dosages[:, causal].astype(float), rng)
            value = np.sqrt(h2) * value
            record.update(causal=ids[causal].tolist(), causal_prob=p[causal].tolist(), **effects)
        noise = rng.normal(scale=np.sqrt(1 - h2), size=n)
        genetic[gene], expression[gene] = value, value + noise
        truth_genes[gene] = record

    # Stage-2 trait: standardised genetic expression of a few heritable genes plus noise.
    heritable = [gene for g, gene in enumerate(genes) if g not in null and truth_genes[gene]["causal"]]
    chosen = sorted(rng.choice(heritable, size=min(cfg.trait_genes, len(heritable)), replace=False).tolist())
    alpha = rng.choice([-1.0, 1.0], size=len(chosen))
    trait_g = _unit(sum((a * _unit(genetic[gene]) for a, gene in zip(alpha, chosen)), np.zeros(n)))
    trait = np.sqrt(cfg.trait_heritability) * trait_g + rng.normal(scale=np.sqrt(1 - cfg.trait_heritability), size=n)

    chroms = np.concatenate([np.full(len(b[1]), b[0]) for b in variant_blocks])
    bps = np.concatenate([b[1] for b in variant_blocks])
    order = np.lexsort((bps, chroms))  # genomic order across genes
    sids = np.concatenate([b[2] for b in variant_blocks])[order]
    all_dosages = np.concatenate([b[3] for b in variant_blocks], axis=1)[:, order]
    all_annotations = np.concatenate([b[4] for b in variant_blocks], axis=0)[order]
    chroms, bps = chroms[order], bps[order]

    prefix = out / "geno"
    to_bed(prefix.with_suffix(".bed"), all_dosages, count_A1=True, num_threads=1, properties={
        "iid": iids, "fid": iids, "sid": sids, "chromosome": chroms.astype(str), "bp_position": bps,
        "allele_1": np.full(len(sids), "T"), "allele_2": np.full(len(sids), "C")})
    paths = {name: out / f"{name}.csv" for name in ("expression", "genes", "annotations", "genetic", "trait")}
    pd.DataFrame(expression, index=pd.Index(iids, name="IID")).to_csv(paths["expression"], float_format="%.6g")
    pd.DataFrame(gene_rows, columns=["gene", "chrom", "start", "end"]).to_csv(paths["genes"], index=False)
    pd.DataFrame(all_annotations, index=pd.Index(sids, name="variant"),
                 columns=[f"annot{j}" for j in range(k)]).to_csv(paths["annotations"], float_format="%.6g")
    pd.DataFrame(genetic, index=pd.Index(iids, name="IID")).to_csv(paths["genetic"], float_format="%.6g")
    pd.DataFrame({"IID": iids, "trait": trait}).to_csv(paths["trait"], index=False, float_format="%.6g")
    truth = {"config": dataclasses.asdict(cfg), "annotation_weights": w.tolist(), "genes": truth_genes,
             "trait": {"genes": chosen, "signs": alpha.tolist(), "heritability": cfg.trait_heritability}}
    paths["truth"] = out / "truth.json"
    paths["truth"].write_text(json.dumps(truth, indent=1))
    return {"bed": str(prefix), **{name: str(p) for name, p in paths.items()},
            "window": cfg.region_length, "variant_ids": sids, "dosages": all_dosages}


def load_simulated(cfg: GenoSimConfig, out_dir, **load_options):
    """Simulate into `out_dir` (or reuse a finished simulation of the same config there: its
    `truth.json`, written last, holds the config), then read it with `read_genotype_data`; the
    truth, genetic values and file paths go in `extras`."""
    from tfnet_jax.data.genotype.readers import read_genotype_data

    out = Path(out_dir)
    truth_file = out / "truth.json"
    config = json.loads(json.dumps(dataclasses.asdict(cfg)))
    if not (truth_file.exists() and json.loads(truth_file.read_text()).get("config") == config):
        simulate_genotypes(cfg, out)
    paths = {name: str(out / f"{name}.csv") for name in ("expression", "genes", "annotations", "genetic", "trait")}
    paths.update(bed=str(out / "geno"), truth=str(truth_file))
    data = read_genotype_data({"bed": paths["bed"], "expression": paths["expression"], "genes": paths["genes"],
                               "annotations": paths["annotations"], "window": cfg.region_length, **load_options})
    data.source = f"genosim:{out_dir}"
    data.extras = {**data.extras, "truth": json.loads(truth_file.read_text()),
                   "genetic": pd.read_csv(paths["genetic"], index_col=0, dtype={"IID": str}),
                   "trait": paths["trait"], "paths": paths}
    return data
