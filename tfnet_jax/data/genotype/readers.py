"""Cis-genotype data for GenoNet (TWAS stage 1): genotypes, expression, gene windows.

`read_genotype_data` reads the genotypes named by exactly one of data.bed (PLINK), data.vcf
(bgzipped, indexed VCF) or data.dosage (PredictDB dosage text) through one GenotypeReader
(`source.py`: the formats' shared conventions) and, for each gene, only the variants inside its
window [start - window, end + window]. Dosages count each variant's first allele (PLINK's A1 =
VCF's ALT; each window keeps its variants' alleles); NaN is missing. Missing genotypes are NOT
imputed here: `impute_train_mean` does that per CV fold so held-out individuals never shape the
fill.

Variant filters (monomorphic, MAF) use genotypes only, over the individuals kept, so they are
label-free and need not be refitted per fold. Chromosome names match with a leading "chr"
ignored ("chr1" == "1").
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from tfnet_jax.data.genotype.container import GeneWindow, GenotypeData
from tfnet_jax.data.genotype.dosage_store import DosageStore
from tfnet_jax.data.genotype.formats import open_genotypes
from tfnet_jax.data.genotype.source import GenotypeReader, Region
from tfnet_jax.data.io.plink import allele_flips, int_column, norm_chrom
from tfnet_jax.data.io.tables import (
    block_as_float,
    check_unique_keys,
    column_as_str,
    preview,
    read_table,
    require_columns,
)
from tfnet_jax.errors import DataError
from tfnet_jax.schemas.data import GenotypeSource
from tfnet_jax.schemas.run import MISSING

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- keyed tables

def read_id_matrix(path: str | Path, what: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    """A table whose first column is an id and the rest numbers (csv/tsv/txt[.gz] or parquet).

    Returns (ids, column names, float32 values). Non-numeric or non-finite cells and
    repeated ids are errors naming the file and the line (or parquet row).
    """
    path = Path(path)
    if path.suffix == ".parquet":
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        frame = pd.read_parquet(path)
        if not isinstance(frame.index, pd.RangeIndex):
            frame = frame.reset_index()
        frame.index = pd.RangeIndex(1, len(frame) + 1, name="row")
        for column in frame.columns[1:]:
            if not (pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column])):
                raise DataError(f"{path}, column '{column}': type {frame[column].dtype} is not numeric")
        frame = frame.astype({frame.columns[0]: str})
        id_col, names = str(frame.columns[0]), [str(c) for c in frame.columns[1:]]
        frame.columns = [id_col, *names]
        values = frame[names].to_numpy(dtype=np.float32) if names else np.zeros((len(frame), 0), np.float32)
        bad = ~np.isfinite(values)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise DataError(f"{path}, row {row + 1}, column '{names[col]}': non-finite value")
        ids = frame[id_col].to_numpy(dtype=str)
    else:
        frame = read_table(path)
        id_col, names = frame.columns[0], list(frame.columns[1:])
        ids = column_as_str(frame, id_col, path)
        values = block_as_float(frame, names, path) if names else np.zeros((len(frame), 0), np.float32)
    check_unique_keys(frame, [id_col], path, what)
    return ids, names, values


def read_genes(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    frame = read_table(path)
    require_columns(frame, ["gene", "chrom", "start", "end"], path)
    check_unique_keys(frame, ["gene"], path, "gene")
    out = pd.DataFrame({"gene": column_as_str(frame, "gene", path),
                        "chrom": norm_chrom(column_as_str(frame, "chrom", path)),
                        "start": int_column(frame, "start", path),
                        "end": int_column(frame, "end", path)}, index=frame.index)
    bad = (out["start"] < 0) | (out["end"] < out["start"])
    if bad.any():
        line = out.index[int(np.argmax(bad.to_numpy()))]
        raise DataError(f"{path}, line {line}: need 0 <= start <= end")
    return out


# ---------------------------------------------------------------- loader

def _overlap(geno_iids: np.ndarray, expr_iids: np.ndarray, geno_path, expr_path: Path,
             allow_missing: bool = False, label: str = ".fam") -> np.ndarray:
    """Individuals in both files, in the expression table's order. Genotyped individuals
    without expression are normal (another tissue's); expressed ones without genotypes
    usually mean mismatched IDs: an error unless `allow_missing` (data.allow_missing_individuals).
    `label` names where the genotypes' IIDs come from (".fam", "VCF header", "samples file")."""
    in_geno = pd.Index(expr_iids).isin(geno_iids)
    if not in_geno.any():
        raise DataError(f"no individual is in both {geno_path} (IIDs {preview(list(geno_iids), 4)}) and "
                        f"{expr_path} (first column {preview(list(expr_iids), 4)})")
    if not in_geno.all() and not allow_missing:
        raise DataError(f"{expr_path}: {(~in_geno).sum()} of {len(in_geno)} individuals are not in {geno_path}: "
                        f"{preview(list(expr_iids[~in_geno]), 4)}; fix the IDs, or set "
                        f"data.allow_missing_individuals=true to drop them")
    only_geno = int((~pd.Index(geno_iids).isin(expr_iids)).sum())
    if only_geno or not in_geno.all():
        log.warning("%d individuals in both %s and %s; %d only in the %s, %d only in the expression "
                    "table (dropped)", in_geno.sum(), geno_path, expr_path, only_geno, label, (~in_geno).sum())
    return expr_iids[in_geno]


def _variant_filter(dosages: np.ndarray, maf: float) -> tuple[np.ndarray, int, int]:
    """Keep mask, and the counts dropped as monomorphic / low MAF (all-missing counts as monomorphic)."""
    present = ~np.isnan(dosages)
    n = present.sum(axis=0)
    lo = np.where(present, dosages, np.inf).min(axis=0)
    hi = np.where(present, dosages, -np.inf).max(axis=0)
    freq = np.nansum(dosages, axis=0) / (2 * np.maximum(n, 1))
    mono = (n == 0) | (lo == hi)
    low = ~mono & (np.minimum(freq, 1 - freq) < maf)
    return ~mono & ~low, int(mono.sum()), int(low.sum())


def _nearest(positions: np.ndarray, start: int, end: int, k: int) -> np.ndarray:
    """Indices (genomic order) of the k variants nearest the gene body."""
    distance = np.maximum(start - positions, 0) + np.maximum(positions - end, 0)
    return np.sort(np.argsort(distance, kind="stable")[:k])


def _check_numbers(cfg: GenotypeSource) -> None:
    for key in ("expression", "genes"):
        if getattr(cfg, key) in (None, "", MISSING):
            raise DataError(f"genotype config: '{key}' is required")
    window, maf, max_variants = cfg.window, cfg.maf, cfg.max_variants
    if int(window) < 0 or not 0 <= float(maf) <= 0.5 or (max_variants is not None and int(max_variants) < 1):
        raise DataError(f"genotype config: need window >= 0, 0 <= maf <= 0.5, max_variants >= 1 or null; "
                        f"got window={window}, maf={maf}, max_variants={max_variants}")


def _wanted_genes(cfg: GenotypeSource, genes: pd.DataFrame, skipped: dict) -> pd.DataFrame:
    wanted = genes
    if cfg.genes_subset is not None:
        subset = [str(g) for g in cfg.genes_subset]
        for gene in sorted(set(subset) - set(genes["gene"])):
            skipped[gene] = f"not in the genes table {cfg.genes}"
        wanted = genes[genes["gene"].isin(subset)]
    if cfg.chrom is not None:  # one chromosome per run: a transcriptome splits into jobs
        chrom = norm_chrom(np.array([str(cfg.chrom)]))[0]
        wanted = wanted[wanted["chrom"] == chrom]
        if wanted.empty:
            raise DataError(f"{cfg.genes}: no gene on chromosome {chrom} (data.chrom); chromosomes "
                            f"there: {', '.join(sorted(set(genes['chrom'])))}")
    return wanted


def _check_unique_ids(ids: np.ndarray, gene: str, source: str) -> None:
    names, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{source}: variant id '{names[counts > 1][0]}' occurs twice in the window of "
                        f"{gene}; weights, annotations and predictions are keyed by the id, so it must be "
                        f"unique (a '.' id is replaced by chr_pos_ref_alt)")


def read_genotype_data(source: GenotypeSource | dict) -> GenotypeData:
    """Gene windows of cis genotypes with expression (see the module docstring). `source`: the
    data config (a dict of its fields: GenotypeSource(**source), its defaults for the rest)."""
    cfg = source if isinstance(source, GenotypeSource) else GenotypeSource(**source)
    _check_numbers(cfg)
    cfg.check()
    window, maf, max_variants = int(cfg.window), float(cfg.maf), cfg.max_variants
    expr_path = Path(cfg.expression)
    expr_ids, expr_genes, expr_values = read_id_matrix(expr_path, "individual")
    expression = pd.DataFrame(expr_values, index=pd.Index(expr_ids, name="IID"), columns=expr_genes)
    genes = read_genes(cfg.genes)
    reader: GenotypeReader = open_genotypes(cfg)

    individuals = _overlap(reader.individuals, expr_ids, reader.samples_path, expr_path,
                           bool(cfg.allow_missing_individuals), reader.samples_label)
    covariates = None
    if cfg.covariates:
        cov_path = Path(cfg.covariates)
        cov_ids, cov_names, cov_values = read_id_matrix(cov_path, "individual")
        covariates = pd.DataFrame(cov_values, index=pd.Index(cov_ids, name="IID"), columns=cov_names)
        has_cov = pd.Index(individuals).isin(cov_ids)
        if not has_cov.any():
            raise DataError(f"no individual of {expr_path} and {reader.samples_path} is in {cov_path} "
                            f"(first column {preview(list(cov_ids), 4)})")
        if not has_cov.all():
            log.warning("%d individuals have no row in %s (dropped)", (~has_cov).sum(), cov_path)
            individuals = individuals[has_cov]
        covariates = covariates.loc[individuals]
    expression = expression.loc[individuals]
    rows = pd.Index(reader.individuals).get_indexer(individuals)

    annot_index, annot_table, annot_names = None, None, None
    if cfg.annotations:
        annot_path = Path(cfg.annotations)
        annot_ids, annot_names, annot_values = read_id_matrix(annot_path, "variant")
        if not annot_names:
            raise DataError(f"{annot_path}: no feature columns after the variant id")
        annot_index = pd.Index(annot_ids)
        annot_table = np.vstack([annot_values, annot_values.mean(axis=0, keepdims=True)])

    skipped: dict[str, str] = {}
    todo = []  # (gene, chrom, start, end) whose window is read
    for gene, chrom, start, end in _wanted_genes(cfg, genes, skipped)[["gene", "chrom", "start", "end"]].itertuples(index=False):
        if gene not in expression.columns:
            skipped[gene] = f"not in the expression table {expr_path}"
        elif not reader.has_chrom(chrom):
            skipped[gene] = f"chromosome '{chrom}' is not in {reader.where(chrom)}"
        else:
            todo.append((gene, chrom, int(start), int(end)))
    regions = [Region(chrom, max(start - window, 0), end + window) for _, chrom, start, end in todo]

    windows, n_unannotated = [], 0
    for (gene, chrom, start, end), found in zip(todo, reader.read_windows(regions, rows)):
        if not len(found.ids):
            skipped[gene] = f"no variants within {window} bp of {chrom}:{start}-{end}"
            continue
        keep, n_mono, n_low = _variant_filter(found.dosages, maf)
        if not keep.any():
            skipped[gene] = (f"no variant left of {len(found.ids)} in the window: {n_mono} monomorphic, "
                             f"{n_low} with MAF < {maf}")
            continue
        found = found.take(np.flatnonzero(keep))
        if max_variants is not None and len(found.ids) > int(max_variants):
            found = found.take(_nearest(found.positions, start, end, int(max_variants)))
        _check_unique_ids(found.ids, gene, reader.path)
        annotations = None
        if annot_table is not None:
            annot_row = annot_index.get_indexer(found.ids)
            n_unannotated += int((annot_row < 0).sum())
            annotations = annot_table[annot_row]  # -1 picks the appended means row
        windows.append(GeneWindow(gene, chrom, start, end, found.ids, found.positions,
                                  DosageStore.encode(found.dosages), annotations, found.alleles))
    report = {"format": cfg.genotype_format()[0], "skipped_records": reader.skipped_records}
    if report["skipped_records"]:
        log.warning("%s: records skipped in the windows read (only biallelic SNVs are used): %s",
                    reader.path, ", ".join(f"{n} {why}" for why, n in report["skipped_records"].items()))
    if not windows:
        raise DataError(f"{reader.path}: no gene could be loaded; reasons, e.g. {preview(list(skipped.items()), 3)}")
    if n_unannotated:
        log.warning("%d loaded variants are not in %s; they get the table's column means",
                    n_unannotated, cfg.annotations)
    if skipped:
        log.warning("%d genes skipped, e.g. %s", len(skipped), next(iter(skipped.items())))
    return GenotypeData(individuals=np.asarray(individuals, dtype=str),
                        expression=expression[[w.gene for w in windows]],
                        covariates=covariates, windows=windows, annotation_names=annot_names,
                        skipped=skipped, source=reader.path,
                        extras={"genome_build": cfg.genome_build, "genotypes": report})


# ---------------------------------------------------------------- per-fold helpers

def _mask(train_mask, n: int) -> np.ndarray:
    mask = np.asarray(train_mask)
    if mask.dtype != bool or mask.shape != (n,):
        raise ValueError(f"train_mask must be a boolean array of shape ({n},), got {mask.dtype} {mask.shape}")
    if not mask.any():
        raise ValueError("train_mask selects no individual")
    return mask


def impute_train_mean(dosages: np.ndarray, train_mask) -> np.ndarray:
    """NaN -> the variant's mean over training rows (0 where all training rows are missing);
    rows on axis 0, any shape after. Without a NaN, `dosages` itself (a block's worth of
    dosages is large: no copy)."""
    dosages = np.asarray(dosages)
    mask = _mask(train_mask, dosages.shape[0])
    missing = np.isnan(dosages)
    if not missing.any():
        return dosages
    train = dosages[mask]
    n = (~missing[mask]).sum(axis=0)
    mean = np.where(n > 0, np.nansum(train, axis=0) / np.maximum(n, 1), 0.0).astype(dosages.dtype)
    return np.where(missing, mean, dosages)


def regress_out_covariates(y: np.ndarray, covariates, train_mask) -> np.ndarray:
    """Residuals, for every row, of an OLS fit (with intercept) of y on covariates over training rows."""
    y = np.asarray(y, dtype=np.float64)
    c = np.asarray(covariates, dtype=np.float64)
    c = c[:, None] if c.ndim == 1 else c
    mask = _mask(train_mask, y.shape[0])
    design = np.column_stack([np.ones(len(c)), c])
    coef, *_ = np.linalg.lstsq(design[mask], y[mask], rcond=None)
    return y - design @ coef


def read_dosages(inputs, variants: pd.DataFrame, genome_build: str | None = None) -> pd.DataFrame:
    """Individuals x variant-id dosages of `variants` (the run's: columns id, chrom, position,
    a1, a2) from genotype files (a PLINK prefix, a VCF path, or a genotype config dict: see
    `open_genotypes`) or a table (index: individual).

    A variant of the run missing from the input is an error naming it; NaN stays (imputed later).
    A file input whose alleles are the run's (a1, a2) swapped gets 2 - d, so the dosages count
    the run's allele (a table is taken as counting it; so are files where the run has no alleles).
    """
    variant_ids = variants["id"].astype(str).to_numpy()
    if isinstance(inputs, pd.DataFrame):
        table, source = inputs.rename(columns=str), "inputs"
    else:
        reader = open_genotypes(inputs, genome_build)
        found = reader.read_ids(variants)
        source = reader.variants_path
        values = found.dosages
        if len(found.ids) and variants["a1"].notna().all():
            expected = variants[["a1", "a2"]].to_numpy(dtype=str)[pd.Index(variant_ids).get_indexer(found.ids)]
            flip = allele_flips(expected, found.alleles, found.ids, source)
            values[:, flip] = 2 - values[:, flip]
        table = pd.DataFrame(values, index=reader.individuals, columns=found.ids)
    missing = [v for v in variant_ids if v not in table.columns]
    if missing:
        raise DataError(f"{source}: {len(missing)} variant(s) of the run are missing, e.g. "
                        f"{missing[:5]}; the model needs every variant of its gene windows")
    return table.loc[:, list(variant_ids)].astype(np.float32)
