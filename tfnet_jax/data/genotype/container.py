"""The container of genotype data (GenoNet): individuals, expression, and each gene's cis window."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class GeneWindow:
    gene: str
    chrom: str
    start: int
    end: int
    variant_ids: np.ndarray       # str [V], genomic order
    positions: np.ndarray         # int64 [V]
    dosages: np.ndarray           # float32 [individuals, V], A1 count, NaN = missing
    annotations: np.ndarray | None = None  # float32 [V, k]
    alleles: np.ndarray | None = None      # str [V, 2]: .bim A1 (the counted allele), A2


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
