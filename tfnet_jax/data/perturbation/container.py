"""In-memory containers shared by every loader and generator of perturbation data.

Everything downstream (graph building, models, baselines, metrics) reads only these
objects, never files, so `data=dir`, `data=synthetic` (and later `data=cmap`) are
interchangeable.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from tfnet_jax.data.networks import NetworkLayer
from tfnet_jax.errors import DataError

SPLIT_NAMES = ("train", "valid", "test")
# extras key: {type: (genes, half A, half B)}, each half the mean of a seeded half of a
# perturbation's replicate signatures (data=cmap), for the split-half replicate ceiling.
REPLICATE_HALVES = "replicate_halves"
# extras key: a gene table (Entrez ID, symbol, ...) that came with the data, for predictions' symbols.
GENE_TABLE = "gene_table"


@dataclass(frozen=True)
class SignatureTable:
    """Observed signatures of one perturbation type: one row per perturbed gene."""

    pert_type: str
    pert_genes: np.ndarray  # str [n]
    pert_index: np.ndarray  # int32 [n], rows into PerturbationData.genes
    values: np.ndarray  # float32 [n, R], columns = PerturbationData.readout_genes

    @property
    def num_perts(self) -> int:
        return int(self.pert_genes.shape[0])


@dataclass(frozen=True)
class FeatureBlock:
    """One node-feature table inside `PerturbationData.node_features`: its columns and genes."""

    name: str  # the table's file name without extensions
    columns: slice  # its columns in node_features
    present: np.ndarray  # bool [N]: genes the table lists (the others hold zeros)


@dataclass(frozen=True)
class GeneAnnotations:
    """A gene x term membership table (e.g. GO) mapped onto the gene index, for the baselines
    that read annotations; independent of the model's node features."""

    values: sp.csr_matrix  # float32 [N, G]; rows of genes the table lacks are empty
    present: np.ndarray  # bool [N]: genes the table lists
    terms: np.ndarray  # str [G]
    source: str = ""


@dataclass
class PerturbationData:
    """A multiplex of gene networks plus per-type perturbation signatures.

    `genes` is the one node index: the union of every layer's genes, every perturbed
    gene, every readout gene (and every gene with node features).
    """

    genes: np.ndarray  # str [N]
    layers: list[NetworkLayer]
    readout_genes: np.ndarray  # str [R]
    signatures: dict[str, SignatureTable]
    node_features: np.ndarray | None = None  # float32 [N, F]; zeros where missing
    has_features: np.ndarray | None = None  # bool [N]: in any node-feature table
    # The tables concatenated in node_features, in column order; None: one table (its genes:
    # has_features), as every source without data.node_feature_files gives.
    feature_blocks: list[FeatureBlock] | None = None
    go_features: GeneAnnotations | None = None  # data.go_features (the GO baselines' input)
    splits: dict[str, np.ndarray] | None = None  # type -> str [n] in SPLIT_NAMES
    source: str = ""
    extras: dict = field(default_factory=dict)  # e.g. the synthetic oracle's scores
    # Arrays derived once per object (e.g. the baselines' spectral embedding); a selection
    # (select_layers / select_types) starts empty, as its layers may differ.
    derived: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def num_genes(self) -> int:
        return int(self.genes.shape[0])

    @property
    def pert_types(self) -> list[str]:
        return list(self.signatures)

    def gene_position(self) -> dict[str, int]:
        return {g: i for i, g in enumerate(self.genes.tolist())}

    def blocks(self) -> list[FeatureBlock]:
        """The node-feature tables (one covering every column when not given); [] without features."""
        if self.node_features is None:
            return []
        if self.feature_blocks is not None:
            return list(self.feature_blocks)
        has = self.has_features if self.has_features is not None else np.ones(self.num_genes, bool)
        return [FeatureBlock("node_features", slice(0, self.node_features.shape[1]), has)]

    def without_node_features(self) -> "PerturbationData":
        return replace(self, node_features=None, has_features=None, feature_blocks=None)

    def select_layers(self, names: list[str] | None) -> "PerturbationData":
        """Keep only the named layers (all when `names` is None); the node index is unchanged."""
        if names is None:
            return self
        known = [layer.name for layer in self.layers]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise DataError(f"network.layers: unknown layer(s) {unknown}; available: {known}")
        if not names:
            raise DataError("network.layers: at least one layer must be selected")
        return replace(self, layers=[layer for layer in self.layers if layer.name in names])

    def select_types(self, names: list[str] | None) -> "PerturbationData":
        """Keep only the named perturbation types (all when `names` is None)."""
        if names is None:
            return self
        unknown = [n for n in names if n not in self.signatures]
        if unknown:
            raise DataError(
                f"data.pert_types: unknown perturbation type(s) {unknown}; available: {self.pert_types}")
        sigs = {n: self.signatures[n] for n in names}
        splits = None if self.splits is None else {n: self.splits[n] for n in names if n in self.splits}
        return replace(self, signatures=sigs, splits=splits)
