"""One interface over the genotype formats GenoNet reads: PLINK (`plink.py`), VCF (`vcf.py`) and
PredictDB dosage text (`dosage_text.py`). Everything downstream (the window loader, prediction
on new genotypes, TWAS) goes through `formats.open_genotypes` and a `GenotypeReader`, never a
format.

Conventions shared by every format:
- a window holds biallelic SNVs only, in genomic order; `alleles[:, 0]` is the COUNTED allele
  (PLINK's A1 = VCF's ALT = the dosage file's alt column) and `alleles[:, 1]` the other (A2 =
  REF), so weights exported as eff_allele = alleles[:, 0] mean the same whatever was read;
- a dosage is float32 in [0, 2] counting that allele, NaN = missing;
- chromosome names are compared without a leading "chr" ("chr1" == "1");
- a variant ID of "." becomes `chr{N}_{pos}_{ref}_{alt}` (+ `_b38` with data.genome_build),
  PredictDB/GTEx's varID, so every variant of a window has a usable key.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Region:
    chrom: str   # without "chr"
    start: int   # 1-based, inclusive
    end: int     # inclusive


@dataclass
class WindowGenotypes:
    ids: np.ndarray          # str [V]
    positions: np.ndarray    # int64 [V], ascending within a region
    alleles: np.ndarray      # str [V, 2]: counted allele, other allele
    dosages: np.ndarray      # float32 [individuals asked, V], NaN = missing

    @staticmethod
    def empty(n: int) -> WindowGenotypes:
        return WindowGenotypes(np.array([], str), np.array([], np.int64), np.zeros((0, 2), str),
                               np.zeros((n, 0), np.float32))

    def take(self, index) -> WindowGenotypes:
        return WindowGenotypes(self.ids[index], self.positions[index], self.alleles[index],
                               self.dosages[:, index])


class GenotypeReader(Protocol):
    path: str               # the file (or pattern) named in messages and data.source
    variants_path: str      # where the variant table is (.bim, the VCF, the dosage pattern)
    samples_path: str       # where `individuals` were read
    samples_label: str      # how messages call that place: ".fam", "VCF header", ...
    individuals: np.ndarray  # str IIDs, in the file's order
    skipped_records: dict   # records left out (multi-allelic, not an SNV, ...): counts

    def has_chrom(self, chrom: str) -> bool: ...

    def where(self, chrom: str) -> str:
        """The file a chromosome's variants are looked up in (for messages)."""

    def read_windows(self, regions: list[Region], rows: np.ndarray) -> Iterator[WindowGenotypes]:
        """One window per region, in order; dosages of the individuals `rows` (indices into
        `individuals`) in that order."""

    def read_ids(self, variants: pd.DataFrame) -> WindowGenotypes:
        """The variants (columns id, chrom, position) found by ID, for every individual; absent
        ones are left out (the caller names them)."""


def variant_key(chrom, pos, ref, alt, build: str | None) -> np.ndarray:
    """PredictDB/GTEx's varID: chr{N}_{pos}_{ref}_{alt}[_{build}] (b37: GTEx v7's {N}_..._b37).
    `chrom` (without "chr"): one name or one per variant."""
    pos = np.asarray(pos)
    parts = [np.broadcast_to(np.asarray(chrom, str), pos.shape), pos.astype(str),
             np.asarray(ref, str), np.asarray(alt, str)]
    key = pd.Series(parts[0], dtype=str).radd("" if build == "b37" else "chr")
    for part in parts[1:]:
        key = key + "_" + pd.Series(part, dtype=str)
    return (key + f"_{build}" if build else key).to_numpy(dtype=str)


def fill_missing_ids(ids: np.ndarray, chrom: str, positions, alleles: np.ndarray,
                     build: str | None) -> np.ndarray:
    ids = np.asarray(ids, dtype=object)
    blank = (ids == ".") | (ids == "") | pd.isna(ids)
    if blank.any():
        ids[blank] = variant_key(chrom, np.asarray(positions)[blank], alleles[blank, 1],
                                 alleles[blank, 0], build)
    return ids.astype(str)


def is_snv(ref: str, alt: str) -> bool:
    return len(ref) == 1 and len(alt) == 1 and ref.upper() in "ACGT" and alt.upper() in "ACGT"


@dataclass
class SkipCounter:
    """Distinct records left out, by reason (overlapping windows see a record more than once)."""
    seen: dict = field(default_factory=dict)

    def add(self, reason: str, key) -> None:
        self.seen.setdefault(reason, set()).add(key)

    def counts(self) -> dict:
        return {reason: len(keys) for reason, keys in sorted(self.seen.items())}


def clusters(positions: np.ndarray, gap: int = 100_000) -> list[tuple[int, int]]:
    """Sorted positions as (first, last) runs whose neighbours are within `gap` bp: the
    regions to fetch for a scattered set of variants."""
    positions = np.sort(np.asarray(positions, np.int64))
    if not len(positions):
        return []
    cut = np.flatnonzero(np.diff(positions) > gap) + 1
    return [(int(run[0]), int(run[-1])) for run in np.split(positions, cut)]


class RegionReader(ABC):
    """`read_ids` for formats read by region (VCF, dosage text): fetch the regions around the
    asked positions, keep the asked IDs (first occurrence)."""

    individuals: np.ndarray

    @abstractmethod
    def read_windows(self, regions, rows):
        """The genotypes of each region, in order (each format reads its own files)."""

    def read_ids(self, variants: pd.DataFrame) -> WindowGenotypes:
        regions = [Region(str(chrom), lo, hi) for chrom, part in variants.groupby("chrom", sort=True)
                   for lo, hi in clusters(part["position"].to_numpy())]
        rows = np.arange(len(self.individuals))
        parts = [w for w in self.read_windows(regions, rows) if len(w.ids)]
        if not parts:
            return WindowGenotypes.empty(len(rows))
        found = WindowGenotypes(np.concatenate([p.ids for p in parts]),
                                np.concatenate([p.positions for p in parts]),
                                np.concatenate([p.alleles for p in parts]),
                                np.concatenate([p.dosages for p in parts], axis=1))
        wanted = pd.Index(found.ids).isin(variants["id"].astype(str)) & ~pd.Index(found.ids).duplicated()
        return found.take(np.flatnonzero(wanted))
