"""Loading a perturbation data set from a directory of plain tables.

Layout:
    ROOT/networks/<layer>.{tsv,csv,txt}[.gz]   one edge list per layer (at least one); a
                                               report.json (tfnet-networks) is skipped
    ROOT/signatures/<TYPE>.csv[.gz]            one signature table per perturbation type
    ROOT/node_features*.csv[.gz]               optional, at most one file
    ROOT/splits.csv                            optional: pert_type, pert_gene, split
    ROOT/gene_meta*.csv[.gz]                   optional gene table (symbols of predictions)

Layers and types are ordered by name. Every signature file must have the same set of
readout columns; they are put in the first file's order. The gene index is the sorted
union of all layer, perturbed, readout and node-feature genes.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from tfnet_jax.data.io.tables import preview, split_table_name
from tfnet_jax.data.networks import layer_from_edges, read_edge_list
from tfnet_jax.data.perturbation.container import GENE_TABLE, PerturbationData, SignatureTable
from tfnet_jax.data.perturbation.signatures import (
    read_node_features,
    read_signature_table,
    read_splits_table,
)
from tfnet_jax.errors import DataError

log = logging.getLogger(__name__)


def _tables_by_name(directory: Path, extensions: tuple[str, ...], what: str,
                    expected: tuple[str, ...] = ()) -> dict[str, Path]:
    """Table files of `directory` keyed by name without extensions, sorted; at least one.
    Files named in `expected` are skipped without a warning."""
    if not directory.is_dir():
        raise DataError(f"{directory}: missing directory of {what}")
    found: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        named = split_table_name(path) if path.is_file() else None
        if named is None or named[1] not in extensions:
            if not path.name.startswith(".") and path.name not in expected:
                log.warning("%s: ignored (not a %s file)", path, "/".join(extensions))
            continue
        name = named[0]
        if name in found:
            raise DataError(f"{directory}: two files for {what} '{name}': {found[name].name}, {path.name}")
        found[name] = path
    if not found:
        raise DataError(f"{directory}: no {what} files ({'/'.join(extensions)}, optionally .gz)")
    return dict(sorted(found.items()))


def _optional_node_features_file(root: Path) -> Path | None:
    candidates = sorted({*root.glob("node_features*.csv"), *root.glob("node_features*.csv.gz")})
    if len(candidates) > 1:
        raise DataError(f"{root}: more than one node-features file: {[p.name for p in candidates]}")
    return candidates[0] if candidates else None


def _aligned_readouts(first_readouts: np.ndarray, first_path: Path, readouts: np.ndarray,
                      values: np.ndarray, path: Path) -> np.ndarray:
    """`values` with columns reordered to `first_readouts`; a different gene set is an error."""
    if np.array_equal(readouts, first_readouts):
        return values
    extra = sorted(set(readouts.tolist()) - set(first_readouts.tolist()))
    missing = sorted(set(first_readouts.tolist()) - set(readouts.tolist()))
    if extra or missing:
        raise DataError(
            f"{path}: readout columns differ from those of {first_path.name}: "
            f"not in {first_path.name}: {preview(extra, 5)}; missing here: {preview(missing, 5)}")
    column_of = {gene: i for i, gene in enumerate(readouts.tolist())}
    return values[:, [column_of[g] for g in first_readouts.tolist()]]


def _splits_by_type(splits: pd.DataFrame, path: Path,
                    signatures: dict[str, SignatureTable]) -> dict[str, np.ndarray]:
    """Per-type split arrays aligned with signature rows; unlisted genes are 'train'."""
    result: dict[str, np.ndarray] = {}
    row_of = {t: {g: i for i, g in enumerate(s.pert_genes.tolist())} for t, s in signatures.items()}
    for line, pert_type, gene, split in zip(splits.index, splits["pert_type"],
                                            splits["pert_gene"], splits["split"]):
        if pert_type not in signatures:
            raise DataError(f"{path}, line {line}: perturbation type '{pert_type}' has no "
                            f"signature file; known types: {sorted(signatures)}")
        if gene not in row_of[pert_type]:
            raise DataError(f"{path}, line {line}: gene '{gene}' is not a perturbed gene "
                            f"of type '{pert_type}'")
        if pert_type not in result:
            result[pert_type] = np.full(signatures[pert_type].num_perts, "train", dtype="<U5")
        result[pert_type][row_of[pert_type][gene]] = split
    return {t: result[t] for t in signatures if t in result}


def read_network_layers(directory: Path) -> dict[str, pd.DataFrame]:
    """Canonical edge lists of every layer file in `directory`, by layer name (sorted)."""
    # report.json: what tfnet-networks (data/sources/build.py) writes beside the layers
    files = _tables_by_name(directory, (".tsv", ".csv", ".txt"), "network layer",
                            expected=("report.json",))
    return {name: read_edge_list(path) for name, path in files.items()}


def assemble_perturbation_data(
        edge_lists: dict[str, pd.DataFrame], readout_genes: np.ndarray,
        tables: dict[str, tuple[np.ndarray, np.ndarray]], feature_genes: np.ndarray | None = None,
        features: np.ndarray | None = None, source: str = "") -> PerturbationData:
    """The one place where the gene index is built (shared by every file-based loader).

    `tables` maps a perturbation type to (perturbed genes str [n], values float32 [n, R]);
    the gene index is the sorted union of layer, perturbed, readout and feature genes.
    """
    feature_genes = np.asarray([], dtype=str) if feature_genes is None else feature_genes
    gene_set: set[str] = set(readout_genes.tolist()) | set(feature_genes.tolist())
    for edges in edge_lists.values():
        # Each distinct gene once (a layer names far fewer genes than it has edges).
        gene_set.update(pd.unique(np.concatenate([edges["gene_a"].to_numpy(dtype=object),
                                                  edges["gene_b"].to_numpy(dtype=object)])).tolist())
    for pert_genes, _ in tables.values():
        gene_set.update(pert_genes.tolist())
    genes = np.asarray(sorted(gene_set), dtype=str)
    position = {g: i for i, g in enumerate(genes.tolist())}

    layers = [layer_from_edges(name, edges, position) for name, edges in edge_lists.items()]
    signatures = {
        pert_type: SignatureTable(
            pert_type=pert_type, pert_genes=pert_genes,
            pert_index=np.asarray([position[g] for g in pert_genes.tolist()], dtype=np.int32),
            values=values)
        for pert_type, (pert_genes, values) in tables.items()}

    node_features = has_features = None
    if features is not None:
        rows = np.asarray([position[g] for g in feature_genes.tolist()], dtype=np.int64)
        node_features = np.zeros((len(genes), features.shape[1]), dtype=np.float32)
        node_features[rows] = features
        has_features = np.zeros(len(genes), dtype=bool)
        has_features[rows] = True

    log.info("%s: %d genes, layers %s, types %s, %d readouts%s", source, len(genes),
             [layer.name for layer in layers], list(signatures), len(readout_genes),
             f", node features for {len(feature_genes)} genes" if features is not None else "")
    return PerturbationData(genes=genes, layers=layers, readout_genes=readout_genes,
                            signatures=signatures, node_features=node_features,
                            has_features=has_features, source=source)


def load_data_dir(root: str | Path) -> PerturbationData:
    """Load ROOT (layout in the module docstring) into a `PerturbationData`."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data directory not found")

    edge_lists = read_network_layers(root / "networks")

    signature_files = _tables_by_name(root / "signatures", (".csv",), "signature")
    tables: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    first_path: Path | None = None
    readout_genes = np.asarray([], dtype=str)
    for pert_type, path in signature_files.items():
        pert_genes, readouts, values = read_signature_table(path)
        if first_path is None:
            first_path, readout_genes = path, readouts
        values = _aligned_readouts(readout_genes, first_path, readouts, values, path)
        tables[pert_type] = (pert_genes, values)

    features_path = _optional_node_features_file(root)
    feature_genes, features = read_node_features(features_path) if features_path else (None, None)

    data = assemble_perturbation_data(edge_lists, readout_genes, tables, feature_genes, features,
                                      source=str(root))
    splits_path = root / "splits.csv"
    if splits_path.is_file():
        data.splits = _splits_by_type(read_splits_table(splits_path), splits_path, data.signatures)
    gene_tables = sorted(root.glob("gene_meta*.csv*"))
    if gene_tables:
        data.extras[GENE_TABLE] = str(gene_tables[0])
    return data
