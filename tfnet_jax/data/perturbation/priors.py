"""Optional prior knowledge a perturbation loader adds by key, beside its own files:

- data.node_feature_files: several gene-keyed node-feature tables, concatenated (`FeatureBlock`s);
- data.extra_networks: more network layers (read by `datadir.read_extra_networks`);
- data.go_features: a gene x GO-term membership table for the baselines that read it.

Relative paths are read from the data root (absolute paths as they are).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from tfnet_jax.data.io.tables import preview, split_table_name
from tfnet_jax.data.perturbation.container import FeatureBlock, GeneAnnotations
from tfnet_jax.data.perturbation.signatures import read_gene_feature_table, read_node_features
from tfnet_jax.errors import ConfigError, DataError

log = logging.getLogger(__name__)

# data.go_features when unset: this file of the data root, when present (tfnet-networks writes it).
DEFAULT_GO_FEATURES = "node_features_go.csv.gz"

# (table name, genes str [n], values float32 [n, F])
FeatureTable = tuple[str, np.ndarray, np.ndarray]


def resolve(root: Path | None, path: str | Path) -> Path:
    """`path` as given when absolute (or without a root), else under `root`."""
    path = Path(path)
    return path if path.is_absolute() or root is None else root / path


def table_stem(path: Path) -> str:
    named = split_table_name(path)
    return named[0] if named is not None else path.name


def read_feature_tables(paths: Sequence[Path], key: str) -> list[FeatureTable]:
    """Each node-feature table of `paths` (config field `key`), named by its file's stem."""
    tables: list[FeatureTable] = []
    seen: dict[str, Path] = {}
    for path in paths:
        if not path.is_file():
            raise DataError(f"{key}: {path}: file not found")
        name = table_stem(path)
        if name in seen:
            raise ConfigError(f"{key}: two tables named '{name}': {seen[name]} and {path}")
        seen[name] = path
        tables.append((name, *read_node_features(path)))
    return tables


def concatenate_feature_tables(tables: Sequence[FeatureTable], position: dict[str, int],
                               num_genes: int) -> tuple[np.ndarray, np.ndarray, list[FeatureBlock]]:
    """(node_features float32 [N, sum F], has_features bool [N]: in any table, the blocks);
    a gene a table lacks holds zeros in that table's columns."""
    width = sum(values.shape[1] for _, _, values in tables)
    features = np.zeros((num_genes, width), dtype=np.float32)
    has = np.zeros(num_genes, dtype=bool)
    blocks, start = [], 0
    for name, genes, values in tables:
        rows = np.asarray([position[g] for g in genes.tolist()], dtype=np.int64)
        columns = slice(start, start + values.shape[1])
        features[rows, columns] = values
        present = np.zeros(num_genes, dtype=bool)
        present[rows] = True
        has |= present
        blocks.append(FeatureBlock(name, columns, present))
        start = columns.stop
    return features, has, blocks


def go_features_path(root: Path | None, explicit: str | None) -> Path | None:
    """data.go_features: the file given (which must exist), else the root's
    DEFAULT_GO_FEATURES when present, else None (the GO baselines are off)."""
    if explicit:
        path = resolve(root, explicit)
        if not path.is_file():
            raise DataError(f"data.go_features: {path}: file not found")
        return path
    default = None if root is None else root / DEFAULT_GO_FEATURES
    return default if default is not None and default.is_file() else None


def read_gene_annotations(path: Path, position: dict[str, int]) -> GeneAnnotations:
    """A gene x term table mapped onto the gene index (genes outside it are left out: no
    baseline ever asks for them), kept sparse."""
    genes, terms, values = read_gene_feature_table(path)
    keep = np.asarray([g in position for g in genes.tolist()], dtype=bool)
    rows = np.asarray([position[g] for g in genes[keep].tolist()], dtype=np.int64)
    kept = sp.coo_matrix(values[keep])
    present = np.zeros(len(position), dtype=bool)
    present[rows] = True
    if not keep.all():
        log.info("%s: %d of %d genes are not in the gene index and are left out (e.g. %s)", path,
                 int((~keep).sum()), len(genes), preview(genes[~keep].tolist(), 3))
    matrix = sp.csr_matrix((kept.data.astype(np.float32), (rows[kept.row], kept.col)),
                           shape=(len(position), len(terms)))
    return GeneAnnotations(values=matrix, present=present, terms=terms, source=str(path))
