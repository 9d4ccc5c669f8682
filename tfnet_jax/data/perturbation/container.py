"""In-memory containers shared by every loader and generator of perturbation data.

Everything downstream (graph building, models, baselines, metrics) reads only these
objects, never files, so `data=dir`, `data=synthetic` (and later `data=cmap`) are
interchangeable.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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
    has_features: np.ndarray | None = None  # bool [N]
    splits: dict[str, np.ndarray] | None = None  # type -> str [n] in SPLIT_NAMES
    source: str = ""
    extras: dict = field(default_factory=dict)  # e.g. the synthetic oracle's scores

    @property
    def num_genes(self) -> int:
        return int(self.genes.shape[0])

    @property
    def pert_types(self) -> list[str]:
        return list(self.signatures)

    def gene_position(self) -> dict[str, int]:
        return {g: i for i, g in enumerate(self.genes.tolist())}

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
        chosen = [layer for layer in self.layers if layer.name in names]
        return PerturbationData(
            genes=self.genes, layers=chosen, readout_genes=self.readout_genes,
            signatures=self.signatures, node_features=self.node_features,
            has_features=self.has_features, splits=self.splits, source=self.source,
            extras=self.extras)

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
        return PerturbationData(
            genes=self.genes, layers=self.layers, readout_genes=self.readout_genes,
            signatures=sigs, node_features=self.node_features, has_features=self.has_features,
            splits=splits, source=self.source, extras=self.extras)
