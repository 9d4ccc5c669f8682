"""Cis-genotype data for GenoNet (TWAS stage 1): PLINK genotypes, expression, gene windows.

`read_genotype_data` reads a PLINK fileset (PREFIX.bed/.bim/.fam) with bed_reader and, for each
gene, only the variant columns inside its window [start - window, end + window]. Dosages count
the A1 allele (.bim column 5, PLINK's default; each window keeps its variants' A1/A2); NaN is
missing. Missing genotypes are NOT imputed
here: `impute_train_mean` does that per CV fold so held-out individuals never shape the fill.

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
from tfnet_jax.data.io.plink import (
    check_bed,
    first_duplicate,
    int_column,
    norm_chrom,
    read_bim,
    read_fam,
)
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

def _overlap(fam_iids: np.ndarray, expr_iids: np.ndarray, fam_path: Path, expr_path: Path,
             allow_missing: bool = False) -> np.ndarray:
    """Individuals in both files, in the expression table's order. Genotyped individuals
    without expression are normal (another tissue's); expressed ones without genotypes
    usually mean mismatched IDs: an error unless `allow_missing` (data.allow_missing_individuals)."""
    in_fam = pd.Index(expr_iids).isin(fam_iids)
    if not in_fam.any():
        raise DataError(f"no individual is in both {fam_path} (IIDs {preview(list(fam_iids), 4)}) and "
                        f"{expr_path} (first column {preview(list(expr_iids), 4)})")
    if not in_fam.all() and not allow_missing:
        raise DataError(f"{expr_path}: {(~in_fam).sum()} of {len(in_fam)} individuals are not in {fam_path}: "
                        f"{preview(list(expr_iids[~in_fam]), 4)}; fix the IDs, or set "
                        f"data.allow_missing_individuals=true to drop them")
    only_fam = int((~pd.Index(fam_iids).isin(expr_iids)).sum())
    if only_fam or not in_fam.all():
        log.warning("%d individuals in both %s and %s; %d only in the .fam, %d only in the expression "
                    "table (dropped)", in_fam.sum(), fam_path, expr_path, only_fam, (~in_fam).sum())
    return expr_iids[in_fam]


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


def read_genotype_data(source: GenotypeSource | dict) -> GenotypeData:
    """Gene windows of cis genotypes with expression (see the module docstring). `source`: the
    data config (a dict of its fields: GenotypeSource(**source), its defaults for the rest)."""
    from bed_reader import open_bed

    cfg = source if isinstance(source, GenotypeSource) else GenotypeSource(**source)
    for key in ("bed", "expression", "genes"):
        if getattr(cfg, key) in (None, "", MISSING):
            raise DataError(f"genotype config: '{key}' is required")
    window, maf, max_variants = int(cfg.window), float(cfg.maf), cfg.max_variants
    if window < 0 or not 0 <= maf <= 0.5 or (max_variants is not None and int(max_variants) < 1):
        raise DataError(f"genotype config: need window >= 0, 0 <= maf <= 0.5, max_variants >= 1 or null; "
                        f"got window={window}, maf={maf}, max_variants={max_variants}")
    prefix = str(cfg.bed)
    prefix = prefix[:-4] if prefix.endswith(".bed") else prefix
    bed_path, bim_path, fam_path = (Path(prefix + ext) for ext in (".bed", ".bim", ".fam"))

    fam, bim = read_fam(fam_path), read_bim(bim_path)
    check_bed(bed_path, len(fam), len(bim))
    expr_path = Path(cfg.expression)
    expr_ids, expr_genes, expr_values = read_id_matrix(expr_path, "individual")
    expression = pd.DataFrame(expr_values, index=pd.Index(expr_ids, name="IID"), columns=expr_genes)
    genes = read_genes(cfg.genes)

    fam_iids = fam["iid"].to_numpy(dtype=str)
    individuals = _overlap(fam_iids, expr_ids, fam_path, expr_path,
                           bool(cfg.allow_missing_individuals))
    covariates = None
    if cfg.covariates:
        cov_path = Path(cfg.covariates)
        cov_ids, cov_names, cov_values = read_id_matrix(cov_path, "individual")
        covariates = pd.DataFrame(cov_values, index=pd.Index(cov_ids, name="IID"), columns=cov_names)
        has_cov = pd.Index(individuals).isin(cov_ids)
        if not has_cov.any():
            raise DataError(f"no individual of {expr_path} and {fam_path} is in {cov_path} "
                            f"(first column {preview(list(cov_ids), 4)})")
        if not has_cov.all():
            log.warning("%d individuals have no row in %s (dropped)", (~has_cov).sum(), cov_path)
            individuals = individuals[has_cov]
        covariates = covariates.loc[individuals]
    expression = expression.loc[individuals]
    fam_row = pd.Series(np.arange(len(fam)), index=fam_iids)
    rows = fam_row.loc[individuals].to_numpy()

    annot_table, annot_names = None, None
    if cfg.annotations:
        annot_path = Path(cfg.annotations)
        annot_ids, annot_names, annot_values = read_id_matrix(annot_path, "variant")
        if not annot_names:
            raise DataError(f"{annot_path}: no feature columns after the variant id")
        first_duplicate(bim["sid"].to_numpy(dtype=str), bim.index, bim_path, "variant id")
        # Row of each .bim variant in the table (-1: absent -> column means), looked up once.
        annot_row = pd.Index(annot_ids).get_indexer(bim["sid"].to_numpy(dtype=str))
        annot_table = np.vstack([annot_values, annot_values.mean(axis=0, keepdims=True)])

    # Per chromosome: positions sorted once, with the .bim row of each.
    chrom_all, bp_all = bim["chrom"].to_numpy(dtype=str), bim["bp"].to_numpy()
    by_chrom = {}
    for chrom in np.unique(chrom_all):
        idx = np.flatnonzero(chrom_all == chrom)
        idx = idx[np.argsort(bp_all[idx], kind="stable")]
        by_chrom[chrom] = (bp_all[idx], idx)
    sids = bim["sid"].to_numpy(dtype=str)
    alleles = bim[["allele_1", "allele_2"]].to_numpy(dtype=str)

    wanted = genes
    skipped: dict[str, str] = {}
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

    windows, n_unannotated = [], 0
    # Counts passed in so bed_reader does not re-read the .fam/.bim.
    with open_bed(bed_path, iid_count=len(fam), sid_count=len(bim), skip_format_check=True) as bed:
        for gene, chrom, start, end in wanted[["gene", "chrom", "start", "end"]].itertuples(index=False):
            if gene not in expression.columns:
                skipped[gene] = f"not in the expression table {expr_path}"
                continue
            if chrom not in by_chrom:
                skipped[gene] = f"chromosome '{chrom}' is not in {bim_path}"
                continue
            pos, order = by_chrom[chrom]
            lo, hi = np.searchsorted(pos, start - window, "left"), np.searchsorted(pos, end + window, "right")
            if hi == lo:
                skipped[gene] = f"no variants within {window} bp of {chrom}:{start}-{end}"
                continue
            idx = order[lo:hi]
            # Read in file order (fast path), then restore genomic order.
            file_order = np.argsort(idx, kind="stable")
            dosages = np.empty((len(rows), len(idx)), np.float32)
            dosages[:, file_order] = bed.read(index=np.s_[rows, idx[file_order]], dtype="float32",
                                              num_threads=1)
            keep, n_mono, n_low = _variant_filter(dosages, maf)
            if not keep.any():
                skipped[gene] = (f"no variant left of {len(idx)} in the window: {n_mono} monomorphic, "
                                 f"{n_low} with MAF < {maf}")
                continue
            idx, dosages = idx[keep], dosages[:, keep]
            if max_variants is not None and len(idx) > int(max_variants):
                near = _nearest(bp_all[idx], start, end, int(max_variants))
                idx, dosages = idx[near], dosages[:, near]
            annotations = None
            if annot_table is not None:
                n_unannotated += int((annot_row[idx] < 0).sum())
                annotations = annot_table[annot_row[idx]]  # -1 picks the appended means row
            windows.append(GeneWindow(gene, chrom, int(start), int(end), sids[idx], bp_all[idx].astype(np.int64),
                                      np.ascontiguousarray(dosages), annotations, alleles[idx]))
    if not windows:
        raise DataError(f"{bed_path}: no gene could be loaded; reasons, e.g. {preview(list(skipped.items()), 3)}")
    if n_unannotated:
        log.warning("%d loaded variants are not in %s; they get the table's column means",
                    n_unannotated, cfg.annotations)
    if skipped:
        log.warning("%d genes skipped, e.g. %s", len(skipped), next(iter(skipped.items())))
    return GenotypeData(individuals=np.asarray(individuals, dtype=str),
                        expression=expression[[w.gene for w in windows]],
                        covariates=covariates, windows=windows, annotation_names=annot_names,
                        skipped=skipped, source=str(bed_path), extras={})


# ---------------------------------------------------------------- per-fold helpers

def _mask(train_mask, n: int) -> np.ndarray:
    mask = np.asarray(train_mask)
    if mask.dtype != bool or mask.shape != (n,):
        raise ValueError(f"train_mask must be a boolean array of shape ({n},), got {mask.dtype} {mask.shape}")
    if not mask.any():
        raise ValueError("train_mask selects no individual")
    return mask


def impute_train_mean(dosages: np.ndarray, train_mask) -> np.ndarray:
    """NaN -> the variant's mean over training rows (0 where all training rows are missing)."""
    dosages = np.asarray(dosages)
    mask = _mask(train_mask, dosages.shape[0])
    train = dosages[mask]
    n = (~np.isnan(train)).sum(axis=0)
    mean = np.where(n > 0, np.nansum(train, axis=0) / np.maximum(n, 1), 0.0).astype(dosages.dtype)
    return np.where(np.isnan(dosages), mean, dosages)


def regress_out_covariates(y: np.ndarray, covariates, train_mask) -> np.ndarray:
    """Residuals, for every row, of an OLS fit (with intercept) of y on covariates over training rows."""
    y = np.asarray(y, dtype=np.float64)
    c = np.asarray(covariates, dtype=np.float64)
    c = c[:, None] if c.ndim == 1 else c
    mask = _mask(train_mask, y.shape[0])
    design = np.column_stack([np.ones(len(c)), c])
    coef, *_ = np.linalg.lstsq(design[mask], y[mask], rcond=None)
    return y - design @ coef


def read_dosages(inputs, variant_ids: np.ndarray, alleles: np.ndarray | None = None) -> pd.DataFrame:
    """Individuals x `variant_ids` dosages from a PLINK prefix or a table (index: individual).

    A variant of the run missing from the input is an error naming it; NaN stays (imputed later).
    alleles: the run's (A1, A2) per variant id; a PLINK input with them swapped gets 2 - d, so
    the dosages count the run's allele (a table is taken as counting it).
    """
    if isinstance(inputs, pd.DataFrame):
        table, source = inputs.rename(columns=str), "inputs"
    else:
        from bed_reader import open_bed

        from tfnet_jax.data.io.plink import allele_flips, check_bed, read_bim, read_fam

        prefix = str(inputs)
        prefix = prefix[:-4] if prefix.endswith(".bed") else prefix
        fam, bim = read_fam(Path(prefix + ".fam")), read_bim(Path(prefix + ".bim"))
        check_bed(Path(prefix + ".bed"), len(fam), len(bim))
        sids = bim["sid"].to_numpy(dtype=str)
        column = pd.Series(np.arange(len(sids)), index=sids)
        column = column[~column.index.duplicated()]
        wanted = column.reindex(variant_ids).dropna().astype(int).to_numpy()
        with open_bed(Path(prefix + ".bed"), iid_count=len(fam), sid_count=len(bim),
                      skip_format_check=True) as bed:
            values = bed.read(index=np.s_[:, wanted], dtype="float32", num_threads=1) if len(wanted) \
                else np.zeros((len(fam), 0), np.float32)
        source = prefix + ".bim"
        if alleles is not None and len(wanted):
            found = bim[["allele_1", "allele_2"]].to_numpy(dtype=str)[wanted]
            expected = alleles[pd.Index(variant_ids).get_indexer(sids[wanted])]
            flip = allele_flips(expected, found, sids[wanted], source)
            values[:, flip] = 2 - values[:, flip]
        table = pd.DataFrame(values, index=fam["iid"].to_numpy(dtype=str), columns=sids[wanted])
    missing = [v for v in variant_ids if v not in table.columns]
    if missing:
        raise DataError(f"{source}: {len(missing)} variant(s) of the run are missing, e.g. "
                        f"{missing[:5]}; the model needs every variant of its gene windows")
    return table.loc[:, list(variant_ids)].astype(np.float32)
