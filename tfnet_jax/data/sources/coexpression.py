"""A co-expression layer `coexpression` from a samples x genes matrix (h5ad, var_names = genes;
or CSV: first column sample ID, header = genes): weight |Pearson r|, each gene's top-k
neighbours by |r|, the union of those pairs, each once.

Correlations are computed a block of genes at a time (block x all genes), so 20k genes never
need the 20k x 20k matrix in memory.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from tfnet_jax.data.sources.edges import (
    Layer,
    ToEntrez,
    canonical,
    names_to_entrez,
    source_entry,
)
from tfnet_jax.errors import DataError

log = logging.getLogger(__name__)

BLOCK_CELLS = 1 << 25  # correlations held at once (~128 MB in float32)


def read_matrix(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(genes str [G], values float32 [samples, G])."""
    if path.name.endswith(".h5ad"):
        import anndata
        try:
            adata = anndata.read_h5ad(path)
        except (OSError, KeyError, ValueError) as err:
            raise DataError(f"{path}: cannot read the h5ad file ({err})") from err
        values = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
        genes = adata.var_names.to_numpy(dtype=str)
    else:
        sep = "\t" if path.name.endswith((".tsv", ".tsv.gz", ".txt", ".txt.gz")) else ","
        try:
            frame = pd.read_csv(path, index_col=0, sep=sep)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise DataError(f"{path}: cannot read the expression table ({str(err).splitlines()[0]})") from err
        numeric = frame.apply(pd.to_numeric, errors="coerce")
        bad = numeric.isna().to_numpy()
        if bad.any():
            row, column = map(int, np.argwhere(bad)[0])
            raise DataError(f"{path}, line {row + 2}, column {frame.columns[column]!r}: "
                            f"{frame.iat[row, column]!r} is not a number")
        values, genes = numeric.to_numpy(dtype=np.float32), frame.columns.to_numpy(dtype=str)
    values = np.asarray(values, dtype=np.float32)
    if not np.isfinite(values).all():
        raise DataError(f"{path}: the expression matrix has NaN or infinite values")
    return genes, values


def top_k_pairs(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gene i, gene j, |r|) for each gene i's k highest-|r| partners j (columns of `values`
    with non-zero variance only)."""
    centred = values - values.mean(axis=0, dtype=np.float64).astype(np.float32)
    norms = np.linalg.norm(centred, axis=0)
    z = centred / norms
    num_genes = z.shape[1]
    k = min(k, num_genes - 1)
    rows = max(1, BLOCK_CELLS // max(num_genes, 1))
    out_i, out_j, out_r = [], [], []
    for start in range(0, num_genes, rows):
        stop = min(start + rows, num_genes)
        block = np.abs(z[:, start:stop].T @ z)  # [block, G]
        block[np.arange(stop - start), np.arange(start, stop)] = -1.0  # no self partner
        partners = np.argpartition(-block, k - 1, axis=1)[:, :k]
        out_i.append(np.repeat(np.arange(start, stop), k))
        out_j.append(partners.ravel())
        out_r.append(np.take_along_axis(block, partners, axis=1).ravel())
    return np.concatenate(out_i), np.concatenate(out_j), np.minimum(np.concatenate(out_r), 1.0)


def read_coexpression(path: Path, to_entrez: ToEntrez, top_k: int) -> tuple[Layer, dict]:
    genes, values = read_matrix(path)
    ids, mapped, unmapped = names_to_entrez(genes, to_entrez)
    first = pd.Series(ids).duplicated().to_numpy() | (ids < 0)  # unmapped or a repeat of a gene
    varies = values.std(axis=0) > 0
    keep = ~first & varies
    if keep.sum() < 2:
        raise DataError(f"{path}: fewer than two mapped genes that vary across samples")
    i, j, r = top_k_pairs(values[:, keep], top_k)
    gene_ids = ids[keep]
    edges, _ = canonical(gene_ids[i], gene_ids[j], r)
    dropped = {"gene mapped to no gene ID": int((ids < 0).sum()),
               "gene column repeated (after mapping)": int((first & (ids >= 0)).sum()),
               "gene constant across samples": int((~first & ~varies).sum())}
    entry = source_entry(path, values.shape[1], int(keep.sum()), dropped)
    entry["samples"] = int(values.shape[0])
    return Layer(edges, mapped, unmapped), entry
