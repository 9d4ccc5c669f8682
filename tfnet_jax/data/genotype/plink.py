"""PLINK 1 genotypes (PREFIX.bed/.bim/.fam) as a GenotypeReader (`source.py`), read with
bed_reader: a window reads only its variants' columns. Dosages count the .bim's A1 (column 5,
bed_reader's count_A1), so alleles = (A1, A2)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from tfnet_jax.data.genotype.source import Region, WindowGenotypes, fill_missing_ids
from tfnet_jax.data.io.plink import check_bed, read_bim, read_fam


class PlinkGenotypes:
    samples_label = ".fam"

    def __init__(self, prefix: str, genome_build: str | None = None):
        prefix = prefix.removesuffix(".bed")
        self.bed_path, bim_path, fam_path = (Path(prefix + ext) for ext in (".bed", ".bim", ".fam"))
        self.path, self.samples_path, self.variants_path = str(self.bed_path), str(fam_path), str(bim_path)
        fam, bim = read_fam(fam_path), read_bim(bim_path)
        check_bed(self.bed_path, len(fam), len(bim))
        self.individuals = fam["iid"].to_numpy(dtype=str)
        self.n_variants = len(bim)
        self.skipped_records: dict = {}
        chrom, bp = bim["chrom"].to_numpy(dtype=str), bim["bp"].to_numpy()
        self.alleles = bim[["allele_1", "allele_2"]].to_numpy(dtype=str)
        ids = bim["sid"].to_numpy(dtype=object)  # object: a filled-in id may be longer than the rest
        for c in np.unique(chrom[ids == "."]):
            at = np.flatnonzero((chrom == c) & (ids == "."))
            ids[at] = fill_missing_ids(ids[at], c, bp[at], self.alleles[at], genome_build)
        self.ids = ids.astype(str)
        self.bp = bp
        # Per chromosome: positions sorted once, with the .bim row of each.
        self.by_chrom = {}
        for c in np.unique(chrom):
            idx = np.flatnonzero(chrom == c)
            idx = idx[np.argsort(bp[idx], kind="stable")]
            self.by_chrom[c] = (bp[idx], idx)

    def has_chrom(self, chrom: str) -> bool:
        return chrom in self.by_chrom

    def where(self, chrom: str) -> str:
        return self.variants_path

    def _open(self):
        from bed_reader import open_bed
        # Counts passed in so bed_reader does not re-read the .fam/.bim.
        return open_bed(self.bed_path, iid_count=len(self.individuals), sid_count=self.n_variants,
                        skip_format_check=True)

    def _read(self, bed, rows, idx: np.ndarray) -> WindowGenotypes:
        # Read in file order (bed_reader's fast path), then restore the asked order.
        file_order = np.argsort(idx, kind="stable")
        dosages = np.empty((len(rows), len(idx)), np.float32)
        if len(idx):
            dosages[:, file_order] = bed.read(index=np.s_[rows, idx[file_order]], dtype="float32",
                                              num_threads=1)
        return WindowGenotypes(self.ids[idx], self.bp[idx].astype(np.int64), self.alleles[idx], dosages)

    def read_windows(self, regions: list[Region], rows: np.ndarray) -> Iterator[WindowGenotypes]:
        with self._open() as bed:
            for region in regions:
                if region.chrom not in self.by_chrom:
                    yield WindowGenotypes.empty(len(rows))
                    continue
                pos, order = self.by_chrom[region.chrom]
                lo = np.searchsorted(pos, region.start, "left")
                hi = np.searchsorted(pos, region.end, "right")
                yield self._read(bed, rows, order[lo:hi])

    def read_ids(self, variants: pd.DataFrame) -> WindowGenotypes:
        """By ID over the whole .bim (positions not used: another cohort's .bim may differ)."""
        column = pd.Series(np.arange(len(self.ids)), index=self.ids)
        column = column[~column.index.duplicated()]
        wanted = column.reindex(variants["id"].astype(str)).dropna().astype(int).to_numpy()
        with self._open() as bed:
            return self._read(bed, np.arange(len(self.individuals)), wanted)
