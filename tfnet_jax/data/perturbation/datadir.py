"""Loading a perturbation data set from a directory of plain tables.

Layout:
    ROOT/networks/<layer>.{tsv,csv,txt}[.gz]   one edge list per layer (at least one); a
                                               report.json (tfnet-networks) is skipped
    ROOT/signatures/<TYPE>.csv[.gz]            one signature table per perturbation type
    ROOT/node_features*.csv[.gz]               optional, at most one file besides
                                               node_features_go.csv.gz (or the tables of
                                               data.node_feature_files, concatenated)
    ROOT/splits.csv                            optional: pert_type, pert_gene, split
    ROOT/gene_meta*.csv[.gz]                   optional gene table (symbols of predictions)

Layers and types are ordered by name. Every signature file must have the same set of
readout columns; they are put in the first file's order. The gene index is the sorted
union of all layer, perturbed, readout and node-feature genes. By key (`priors`):
data.extra_networks adds layers after ROOT/networks' (in the order given); data.go_features
(default ROOT/node_features_go.csv.gz when present) is the GO baselines' annotation table.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from tfnet_jax.data.io.tables import preview, split_table_name
from tfnet_jax.data.networks import layer_from_edges, read_edge_list
from tfnet_jax.data.perturbation.container import GENE_TABLE, PerturbationData, SignatureTable
from tfnet_jax.data.perturbation.priors import (
    DEFAULT_GO_FEATURES,
    FeatureTable,
    concatenate_feature_tables,
    go_features_path,
    read_feature_tables,
    read_gene_annotations,
    resolve,
)
from tfnet_jax.data.perturbation.signatures import read_signature_table, read_splits_table
from tfnet_jax.errors import ConfigError, DataError

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
        # tfnet-networks' GO table beside the root's own table: the own one, as before the build
        # (GO joins the node features only by data.node_feature_files; the GO baselines read it).
        candidates = [p for p in candidates if p.name != DEFAULT_GO_FEATURES] or candidates
    if len(candidates) > 1:
        raise DataError(f"{root}: more than one node-features file: {[p.name for p in candidates]} "
                        f"(choose with data.node_feature_files=[...])")
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


NETWORK_EXTENSIONS = (".tsv", ".csv", ".txt")


def read_network_layers(directory: Path) -> dict[str, pd.DataFrame]:
    """Canonical edge lists of every layer file in `directory`, by layer name (sorted)."""
    # report.json: what tfnet-networks (data/sources/build.py) writes beside the layers
    files = _tables_by_name(directory, NETWORK_EXTENSIONS, "network layer", expected=("report.json",))
    return {name: read_edge_list(path) for name, path in files.items()}


def read_extra_networks(paths: Sequence[Path], known: Sequence[str],
                        key: str = "data.extra_networks") -> dict[str, pd.DataFrame]:
    """Edge lists of each directory (every layer table in it) or file (one layer, named by its
    stem) of `paths`, in the order given; a name already in `known` (or given twice) is an error."""
    layers: dict[str, pd.DataFrame] = {}
    names = set(known)
    for path in paths:
        if path.is_dir():
            found = read_network_layers(path)
        elif path.is_file():
            named = split_table_name(path)
            if named is None or named[1] not in NETWORK_EXTENSIONS:
                raise DataError(f"{key}: {path}: not a network layer file "
                                f"({'/'.join(NETWORK_EXTENSIONS)}, optionally .gz)")
            found = {named[0]: read_edge_list(path)}
        else:
            raise DataError(f"{key}: {path}: no such file or directory")
        for name, edges in found.items():
            if name in names:
                raise ConfigError(f"{key}: layer '{name}' of {path} clashes with a layer of that "
                                  f"name already loaded ({sorted(names)})")
            names.add(name)
            layers[name] = edges
    return layers


def assemble_perturbation_data(
        edge_lists: dict[str, pd.DataFrame], readout_genes: np.ndarray,
        tables: dict[str, tuple[np.ndarray, np.ndarray]],
        feature_tables: Sequence[FeatureTable] = (), source: str = "") -> PerturbationData:
    """The one place where the gene index is built (shared by every file-based loader).

    `tables` maps a perturbation type to (perturbed genes str [n], values float32 [n, R]);
    `feature_tables` holds the node-feature tables (name, genes, values), concatenated in
    order; the gene index is the sorted union of layer, perturbed, readout and feature genes.
    """
    gene_set: set[str] = set(readout_genes.tolist())
    for _, feature_genes, _ in feature_tables:
        gene_set.update(feature_genes.tolist())
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

    node_features = has_features = blocks = None
    if feature_tables:
        node_features, has_features, blocks = concatenate_feature_tables(feature_tables, position,
                                                                          len(genes))

    log.info("%s: %d genes, layers %s, types %s, %d readouts%s", source, len(genes),
             [layer.name for layer in layers], list(signatures), len(readout_genes),
             "".join(f", node features '{b.name}' for {int(b.present.sum())} genes"
                     for b in blocks or []))
    return PerturbationData(genes=genes, layers=layers, readout_genes=readout_genes,
                            signatures=signatures, node_features=node_features,
                            has_features=has_features, feature_blocks=blocks, source=source)


def node_feature_paths(root: Path, files: Sequence[str] | None) -> list[Path]:
    """data.node_feature_files under the root (absolute as given); unset: the root's one
    node_features*.csv[.gz], if any."""
    if files is None:
        found = _optional_node_features_file(root)
        return [found] if found else []
    return [resolve(root, f) for f in files]


def load_data_dir(root: str | Path, node_feature_files: Sequence[str] | None = None,
                  extra_networks: Sequence[str] = (), go_features: str | None = None) -> PerturbationData:
    """Load ROOT (layout in the module docstring) into a `PerturbationData`; the keyword
    arguments are the data=dir keys of the same names."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data directory not found")

    edge_lists = read_network_layers(root / "networks")
    edge_lists.update(read_extra_networks([resolve(root, p) for p in extra_networks],
                                          list(edge_lists)))

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

    feature_tables = read_feature_tables(node_feature_paths(root, node_feature_files),
                                         "data.node_feature_files")
    data = assemble_perturbation_data(edge_lists, readout_genes, tables, feature_tables,
                                      source=str(root))
    annotations = go_features_path(root, go_features)
    if annotations is not None:
        data.go_features = read_gene_annotations(annotations, data.gene_position())
    splits_path = root / "splits.csv"
    if splits_path.is_file():
        data.splits = _splits_by_type(read_splits_table(splits_path), splits_path, data.signatures)
    gene_tables = sorted(root.glob("gene_meta*.csv*"))
    if gene_tables:
        data.extras[GENE_TABLE] = str(gene_tables[0])
    return data
