"""The container of expression data (TFNet): one [samples, genes] matrix and its input/output genes."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np


@dataclass
class ExpressionData:
    """A [samples, genes] matrix plus which genes are model inputs (TFs) and outputs."""

    values: np.ndarray  # float32 [samples, genes], after transform, finite
    samples: np.ndarray  # str [samples]
    genes: np.ndarray  # str [genes]
    tf_genes: np.ndarray  # str, in TF-list order, subset of genes
    target_genes: np.ndarray  # str, subset of genes, disjoint from tf_genes
    groups: np.ndarray | None = None  # str [samples] (study / tissue) or None
    source: str = ""
    extras: dict = field(default_factory=dict)  # e.g. a generator's planted truth
    transform: str = "none"  # the per-sample transform applied to `values` (new inputs get it too)

    @cached_property
    def _position(self) -> dict[str, int]:
        return {g: i for i, g in enumerate(self.genes.tolist())}

    @property
    def tf_index(self) -> np.ndarray:
        return np.array([self._position[g] for g in self.tf_genes.tolist()], dtype=np.int64)

    @property
    def target_index(self) -> np.ndarray:
        return np.array([self._position[g] for g in self.target_genes.tolist()], dtype=np.int64)

    @property
    def num_samples(self) -> int:
        return int(self.values.shape[0])

    def inputs(self) -> np.ndarray:
        return self.values[:, self.tf_index]

    def targets(self) -> np.ndarray:
        return self.values[:, self.target_index]
