"""Simulated cis-eQTL data for GenoNet, written as real PLINK files with a planted truth.

Each gene gets its own msprime coalescent region (so LD is realistic), placed on chromosome
1 + (g % 22) with regions `region_spacing` bp apart, the gene body in the middle. Annotations
drive which variants are causal; expression is additive or additive + non-additive parts of the
causal variants (dominance, pairwise dosage products, recessive, carrier x carrier), scaled to
the gene's heritability (fixed, or drawn per gene; 0 for null genes). Each gene's truth records
the MEASURED non-additive share of its genetic value (1 - R^2 of an additive fit on its causal
dosages). With `effect_seed`, effects come from their own random stream, so one genotype
simulation (`Regions`) serves every architecture (benchmarks/genonet_panel.py).

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

# Per-gene heritability under heritability_draw="beta": 0.02 + 0.48 x Beta(1, 4), so most genes
# lie in 0.02-0.2 (85%; median 0.10) with a tail to 0.5 (cis-eQTL h2 in GTEx-like cohorts).
H2_LOW, H2_SPAN, H2_BETA = 0.02, 0.48, (1.0, 4.0)
GENOTYPE_FIELDS = ("num_genes", "num_individuals", "region_length", "mutation_rate", "recombination_rate",
                   "population_size", "maf", "max_variants", "num_annotations", "seed")


def nonadditive_shares(cfg: GenoSimConfig) -> dict[str, float]:
    """The nominal share of genetic variance of each non-additive part ({} in additive mode)."""
    if cfg.mode == "additive":
        return {}
    return {"dominance": cfg.dominance_share, "interaction": cfg.interaction_share,
            "recessive": cfg.recessive_share or 0.0, "carrier": cfg.carrier_share or 0.0}


def _check(cfg: GenoSimConfig) -> None:
    if cfg.mode not in ("additive", "nonadditive"):
        raise ValueError(f"GenoSimConfig.mode must be 'additive' or 'nonadditive', not {cfg.mode!r}")
    shares = [cfg.dominance_share, cfg.interaction_share, cfg.recessive_share or 0.0, cfg.carrier_share or 0.0]
    if min(shares) < 0 or sum(shares) > 1:
        raise ValueError("GenoSimConfig: need dominance_share, interaction_share, recessive_share, "
                         "carrier_share >= 0 with sum <= 1")
    if cfg.heritability_draw not in (None, "beta"):
        raise ValueError(f"GenoSimConfig.heritability_draw must be None or 'beta', not {cfg.heritability_draw!r}")
    if cfg.causal_annotation is not None and not 0 <= cfg.causal_annotation < cfg.num_annotations:
        raise ValueError(f"GenoSimConfig.causal_annotation={cfg.causal_annotation}: needs an annotation "
                         f"index below num_annotations={cfg.num_annotations}")
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


def _pair_sum(coding: np.ndarray, pairs: list, weights: np.ndarray) -> np.ndarray:
    return sum((w * coding[:, i] * coding[:, j] for (i, j), w in zip(pairs, weights)), np.zeros(len(coding)))


def _genetic_value(cfg: GenoSimConfig, x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Genetic value (unit variance) of the causal dosages x [n, c], and its effect sizes.

    Parts, each scaled to unit variance, then weighted by the square root of its share:
    additive (centred dosages), dominance (heterozygote), interaction (products of centred
    dosages over pairs), recessive (homozygous for the minor allele), carrier (both of a pair
    carry the minor allele). A part constant in the sample adds nothing (its share is lost).
    """
    c = x.shape[1]
    centred = x - x.mean(axis=0)
    beta = rng.normal(size=c)
    shares = nonadditive_shares(cfg)
    parts = {"additive": (_unit(centred @ beta), 1.0 - sum(shares.values()))}
    effects = {"additive": beta.tolist()}
    if cfg.mode == "nonadditive":
        delta = rng.normal(size=c)
        pairs = [(i, j) for i in range(c) for j in range(i + 1, c)]
        gamma = rng.normal(size=len(pairs))
        het = (x == 1).astype(float)
        parts["dominance"] = (_unit(het @ delta), shares["dominance"])
        parts["interaction"] = (_unit(_pair_sum(centred, pairs, gamma)), shares["interaction"])
        effects.update(dominance=delta.tolist(), interaction_pairs=pairs, interaction=gamma.tolist())
        minor = np.where(x.mean(axis=0) > 1, 2 - x, x)  # minor-allele counts
        if shares["recessive"] > 0:
            rho = rng.normal(size=c)
            parts["recessive"] = (_unit((minor == 2).astype(float) @ rho), shares["recessive"])
            effects["recessive"] = rho.tolist()
        if shares["carrier"] > 0:
            kappa = rng.normal(size=len(pairs))
            parts["carrier"] = (_unit(_pair_sum((minor > 0).astype(float), pairs, kappa)), shares["carrier"])
            effects["carrier"] = kappa.tolist()
    g = sum(np.sqrt(share) * part for part, share in parts.values())
    return _unit(g), effects


def nonadditive_share(value: np.ndarray, x: np.ndarray) -> float:
    """1 - R^2 of the least-squares fit of a genetic value [n] on its causal dosages x [n, c]
    (with an intercept): the share of genetic variance no additive model of them explains."""
    design = np.column_stack([np.ones(len(x)), x])
    fitted = design @ np.linalg.lstsq(design, value, rcond=None)[0]
    total = np.sum((value - value.mean()) ** 2)
    return float(np.sum((value - fitted) ** 2) / total) if total > 0 else 0.0


@dataclasses.dataclass
class Regions:
    """The msprime regions of one genotype simulation (per gene: positions, int8 dosages),
    reusable by every config that shares its `GENOTYPE_FIELDS` (with an effect_seed)."""
    key: dict
    regions: list[tuple[np.ndarray, np.ndarray]]


def _genotype_key(cfg: GenoSimConfig) -> dict:
    return {name: getattr(cfg, name) for name in GENOTYPE_FIELDS}


@dataclasses.dataclass
class Simulation:
    """One simulation in memory: what `write_simulation` writes (see the module docstring)."""
    config: GenoSimConfig
    individuals: np.ndarray
    gene_rows: list[tuple]           # (gene, chrom, start, end)
    variants: list[tuple]            # per gene: (chrom, bp [V], ids [V], int8 dosages [n, V], annotations [V, k])
    expression: dict[str, np.ndarray]
    genetic: dict[str, np.ndarray]
    truth: dict
    trait: np.ndarray
    regions: Regions


def simulate(cfg: GenoSimConfig, regions: Regions | None = None) -> Simulation:
    """Simulate in memory; `regions` (a previous Simulation's, same GENOTYPE_FIELDS, with an
    effect_seed) skips msprime."""
    _check(cfg)
    if regions is not None and (cfg.effect_seed is None or regions.key != _genotype_key(cfg)):
        raise ValueError("simulate: regions are reusable only with an effect_seed and the "
                         "same genotype fields (GENOTYPE_FIELDS)")
    rng = np.random.default_rng(cfg.seed)
    effect_rng = rng if cfg.effect_seed is None else np.random.default_rng([cfg.seed, cfg.effect_seed])
    n, k = cfg.num_individuals, cfg.num_annotations
    iids = np.array([f"ind{i:05d}" for i in range(n)])
    genes = [f"gene{g:04d}" for g in range(cfg.num_genes)]
    w = rng.normal(size=k)
    w = w / np.linalg.norm(w) if k else w
    if cfg.causal_annotation is not None:
        w = np.eye(k)[cfg.causal_annotation]
    null = set(rng.permutation(cfg.num_genes)[: int(round(cfg.null_fraction * cfg.num_genes))].tolist())

    gene_rows, variant_blocks, truth_genes, simulated = [], [], {}, []
    expression, genetic = {}, {}
    for g, gene in enumerate(genes):
        chrom = 1 + g % 22
        offset = 1_000_000 + (g // 22) * cfg.region_spacing
        body = min(cfg.gene_length, cfg.region_length)
        start = offset + (cfg.region_length - body) // 2
        gene_rows.append((gene, str(chrom), start, start + body - 1))
        region_seed = int(rng.integers(1, 2**31 - 2))
        positions, dosages = regions.regions[g] if regions else _simulate_region(cfg, seed=region_seed)
        simulated.append((positions, dosages))
        v = len(positions)
        ids = np.array([f"{gene}_v{j:04d}" for j in range(v)])
        annotations = rng.standard_normal((v, k))
        variant_blocks.append((chrom, offset + positions + 1, ids, dosages, annotations))

        h2 = 0.0 if g in null else cfg.heritability
        if g not in null and cfg.heritability_draw == "beta":
            h2 = H2_LOW + H2_SPAN * effect_rng.beta(*H2_BETA)
        record = {"chrom": str(chrom), "heritability": h2, "mode": cfg.mode, "num_variants": v,
                  "causal": [], "causal_prob": []}
        value = np.zeros(n)
        if h2 > 0 and v > 0:
            logits = cfg.annotation_effect * annotations @ w
            p = np.exp(logits - logits.max())
            p /= p.sum()
            causal = np.sort(effect_rng.choice(v, size=min(cfg.num_causal, v), replace=False, p=p))
            x = dosages[:, causal].astype(float)
            value, effects = _genetic_value(cfg, x, effect_rng)
            value = np.sqrt(h2) * value
            record.update(causal=ids[causal].tolist(), causal_prob=p[causal].tolist(),
                          nonadditive_share=nonadditive_share(value, x), **effects)
        noise = effect_rng.normal(scale=np.sqrt(1 - h2), size=n)
        genetic[gene], expression[gene] = value, value + noise
        truth_genes[gene] = record

    # Stage-2 trait: standardised genetic expression of a few heritable genes plus noise.
    heritable = [gene for g, gene in enumerate(genes) if g not in null and truth_genes[gene]["causal"]]
    chosen = sorted(effect_rng.choice(heritable, size=min(cfg.trait_genes, len(heritable)), replace=False).tolist())
    alpha = effect_rng.choice([-1.0, 1.0], size=len(chosen))
    trait_g = _unit(sum((a * _unit(genetic[gene]) for a, gene in zip(alpha, chosen)), np.zeros(n)))
    trait = np.sqrt(cfg.trait_heritability) * trait_g + effect_rng.normal(scale=np.sqrt(1 - cfg.trait_heritability), size=n)

    if cfg.untyped_causal:  # the causal variants stay in the truth, not in the files
        causal = {c for record in truth_genes.values() for c in record["causal"]}
        variant_blocks = [(chrom, bp[keep], ids[keep], dosages[:, keep], annot[keep])
                          for chrom, bp, ids, dosages, annot in variant_blocks
                          for keep in [~np.isin(ids, list(causal))]]

    truth = {"config": dataclasses.asdict(cfg), "annotation_weights": w.tolist(), "genes": truth_genes,
             "trait": {"genes": chosen, "signs": alpha.tolist(), "heritability": cfg.trait_heritability}}
    return Simulation(cfg, iids, gene_rows, variant_blocks, expression, genetic, truth, trait,
                      Regions(_genotype_key(cfg), simulated))


def combine_simulations(sims: list[Simulation], owner: np.ndarray) -> Simulation:
    """One cohort whose gene g comes from sims[owner[g]] (its expression, genetic value, truth
    and typed variants): simulations of one `Regions` under several architectures, run as one
    data set. The truth's genes gain "part" (the owner's index); its config is sims[0]'s."""
    first = sims[0]
    if any(s.regions.key != first.regions.key or s.config.effect_seed is None for s in sims):
        raise ValueError("combine_simulations: needs simulations of one Regions, each with an effect_seed")
    genes = [row[0] for row in first.gene_rows]
    truth = {**first.truth, "parts": [dataclasses.asdict(s.config) for s in sims],
             "genes": {gene: {**sims[o].truth["genes"][gene], "part": int(o)} for gene, o in zip(genes, owner)}}
    return Simulation(first.config, first.individuals, first.gene_rows,
                      [sims[o].variants[g] for g, o in enumerate(owner)],
                      {gene: sims[o].expression[gene] for gene, o in zip(genes, owner)},
                      {gene: sims[o].genetic[gene] for gene, o in zip(genes, owner)},
                      truth, first.trait, first.regions)


def write_simulation(sim: Simulation, out_dir) -> dict:
    """Write every file (see the module docstring) and return their paths; also "window" (a
    load window that recovers exactly each gene's region), "variant_ids" and "dosages" (int8
    [individuals, variants], as written to the .bed). truth.json is written last."""
    from bed_reader import to_bed

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    iids, variant_blocks, k = sim.individuals, sim.variants, sim.config.num_annotations
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
    pd.DataFrame(sim.expression, index=pd.Index(iids, name="IID")).to_csv(paths["expression"], float_format="%.6g")
    pd.DataFrame(sim.gene_rows, columns=["gene", "chrom", "start", "end"]).to_csv(paths["genes"], index=False)
    pd.DataFrame(all_annotations, index=pd.Index(sids, name="variant"),
                 columns=[f"annot{j}" for j in range(k)]).to_csv(paths["annotations"], float_format="%.6g")
    pd.DataFrame(sim.genetic, index=pd.Index(iids, name="IID")).to_csv(paths["genetic"], float_format="%.6g")
    pd.DataFrame({"IID": iids, "trait": sim.trait}).to_csv(paths["trait"], index=False, float_format="%.6g")
    paths["truth"] = out / "truth.json"
    paths["truth"].write_text(json.dumps(sim.truth, indent=1))
    return {"bed": str(prefix), **{name: str(p) for name, p in paths.items()},
            "window": sim.config.region_length, "variant_ids": sids, "dosages": all_dosages}


def simulate_genotypes(cfg: GenoSimConfig, out_dir) -> dict:
    """`simulate` and `write_simulation` into `out_dir`: the files' paths (see write_simulation)."""
    return write_simulation(simulate(cfg), out_dir)





def _set_fields(config: dict) -> dict:
    """The config as JSON, without fields left at None (a cache from before they existed matches)."""
    return {k: v for k, v in json.loads(json.dumps(config)).items() if v is not None}


def load_simulated(cfg: GenoSimConfig, out_dir, **load_options):
    """Simulate into `out_dir` (or reuse a finished simulation of the same config there: its
    `truth.json`, written last, holds the config), then read it with `read_genotype_data`; the
    truth, genetic values and file paths go in `extras`."""
    from tfnet_jax.data.genotype.readers import read_genotype_data

    out = Path(out_dir)
    truth_file = out / "truth.json"
    config = _set_fields(dataclasses.asdict(cfg))
    if not (truth_file.exists() and _set_fields(json.loads(truth_file.read_text()).get("config", {})) == config):
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
