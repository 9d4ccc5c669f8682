"""The container of genotype data (GenoNet): individuals, expression, and each gene's cis window."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tfnet_jax.data.genotype.dosage_store import DosageStore


@dataclass
class GeneWindow:
    gene: str
    chrom: str
    start: int
    end: int
    variant_ids: np.ndarray       # str [V], genomic order
    positions: np.ndarray         # int64 [V]
    store: DosageStore            # [individuals, V] A1 counts, compact; `float_dosages()` reads them
    annotations: np.ndarray | None = None  # float32 [V, k]
    alleles: np.ndarray | None = None      # str [V, 2]: .bim A1 (the counted allele), A2

    def __post_init__(self):
        if not isinstance(self.store, DosageStore):  # given as an array: encode it
            self.store = DosageStore.encode(self.store)

    def float_dosages(self, columns=None) -> np.ndarray:
        """float32 [individuals, V] (or the variants `columns`), NaN = missing: a fresh array."""
        return self.store.decode(columns)


@dataclass
class GenotypeData:
    individuals: np.ndarray
    expression: pd.DataFrame
    covariates: pd.DataFrame | None
    windows: list[GeneWindow]
    annotation_names: list[str] | None
    skipped: dict[str, str]
    source: str
    extras: dict = field(default_factory=dict)
