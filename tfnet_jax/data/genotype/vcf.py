"""VCF/BCF genotypes as a GenotypeReader (`source.py`), read through pysam.VariantFile.

Each window is an index REGION query (`fetch(contig, start, end)` on the .tbi/.csi index), so
memory follows the windows, not the file; only the individuals asked are decoded
(`subset_samples`). The dosage counts the ALT allele (alleles = (ALT, REF), as PLINK's A1/A2
after `plink2 --vcf`): FORMAT/DS where the record has it and data.vcf_field=DS, else the ALT
count of FORMAT/GT (a missing call -> NaN). Multi-allelic records and anything but an SNV
(indels, symbolic or absent ALT) are skipped and counted.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from tfnet_jax.data.genotype.source import (
    Region,
    RegionReader,
    SkipCounter,
    WindowGenotypes,
    fill_missing_ids,
    is_snv,
)
from tfnet_jax.data.io.plink import norm_chrom
from tfnet_jax.data.io.tables import preview
from tfnet_jax.errors import DataError


@contextmanager
def _quiet_htslib():
    """htslib writes its own lines ("[E::idx_find_and_load] ...") to stderr; the errors raised
    here say it in one line instead."""
    import pysam
    level = pysam.set_verbosity(0)
    try:
        yield
    finally:
        pysam.set_verbosity(level)


class VcfGenotypes(RegionReader):
    samples_label = "VCF header"

    def __init__(self, path: str, field: str = "DS", genome_build: str | None = None):
        self.path = self.samples_path = self.variants_path = str(path)
        self.field, self.build = field, genome_build
        if not Path(path).is_file():
            raise DataError(f"{path}: file not found")
        with _quiet_htslib(), self._open() as handle:
            if handle.index is None:
                raise DataError(f"{path}: no tabix (.tbi) or CSI index beside it; index the bgzipped VCF "
                                f"with `tabix -p vcf {path}` or `bcftools index {path}` (a plain or gzip "
                                f"VCF: `bgzip` it first)")
            self.individuals = np.array(list(handle.header.samples), dtype=str)
            contigs = list(handle.index.keys())
        names, counts = np.unique(self.individuals, return_counts=True)
        if (counts > 1).any():
            raise DataError(f"{path}: sample '{names[counts > 1][0]}' is listed twice in the header")
        if not len(self.individuals):
            raise DataError(f"{path}: no samples in the header (a sites-only VCF has no genotypes)")
        # "chr1" and "1" name one chromosome: the genes table's name -> the file's contig
        self.contigs = dict(zip(norm_chrom(np.array(contigs, dtype=str)), contigs)) if contigs else {}
        self.skips = SkipCounter()

    @property
    def skipped_records(self) -> dict:
        return self.skips.counts()

    def _open(self):
        import pysam
        try:
            return pysam.VariantFile(self.path)
        except (OSError, ValueError) as err:
            raise DataError(f"{self.path}: cannot read as VCF/BCF ({str(err).splitlines()[0]})") from None

    def has_chrom(self, chrom: str) -> bool:
        return chrom in self.contigs

    def where(self, chrom: str) -> str:
        return self.path

    def read_windows(self, regions: list[Region], rows: np.ndarray) -> Iterator[WindowGenotypes]:
        names = self.individuals[rows]
        with _quiet_htslib(), self._open() as handle:
            if len(names) < len(self.individuals):
                handle.subset_samples(list(names))
            asked = set(names)
            kept = [s for s in self.individuals if s in asked]  # the header's order
            order = pd.Index(kept).get_indexer(names)
            for region in regions:
                contig = self.contigs.get(region.chrom)
                if contig is None:
                    yield WindowGenotypes.empty(len(rows))
                    continue
                try:
                    yield self._window(handle, contig, region, order)
                except (OSError, ValueError) as err:
                    raise DataError(f"{self.path}: cannot read {contig}:{region.start}-{region.end} "
                                    f"({str(err).splitlines()[0]})") from None

    def _window(self, handle, contig: str, region: Region, order: np.ndarray) -> WindowGenotypes:
        ids, positions, alleles, columns = [], [], [], []
        for rec in handle.fetch(contig, max(region.start - 1, 0), region.end):
            if not region.start <= rec.pos <= region.end:
                continue  # a long REF that starts before the window overlaps it
            alts = rec.alts or ()
            if len(alts) != 1 or not is_snv(rec.ref, alts[0]):
                self.skips.add("multiallelic" if len(alts) > 1 else "not_snv", (contig, rec.pos, rec.ref, alts))
                continue
            dosage = self._dosage(rec)
            if dosage is None:
                self.skips.add("no_DS_or_GT", (contig, rec.pos, rec.ref, alts))
                continue
            ids.append(rec.id or ".")
            positions.append(rec.pos)
            alleles.append((alts[0], rec.ref))
            columns.append(dosage)
        if not ids:
            return WindowGenotypes.empty(len(order))
        positions = np.array(positions, np.int64)
        alleles = np.array(alleles, dtype=str)
        chrom = norm_chrom(np.array([contig]))[0]
        return WindowGenotypes(fill_missing_ids(np.array(ids, dtype=object), chrom, positions, alleles, self.build),
                               positions, alleles, np.stack(columns, axis=1)[order])

    def _dosage(self, rec) -> np.ndarray | None:
        """float32 [samples kept], the ALT count; None when the record has neither DS nor GT."""
        samples = rec.samples
        if self.field == "DS" and "DS" in rec.format:
            values = [s["DS"] for s in samples.itervalues()]
            try:
                dosage = np.array(values, dtype=np.float32).reshape(len(values))  # None -> NaN
            except (TypeError, ValueError):  # Number=A / '.' mixed with tuples
                dosage = np.array([v[0] if isinstance(v, tuple) else v for v in values], dtype=np.float32)
            bad = (dosage < 0) | (dosage > 2)
            if bad.any():
                raise DataError(f"{self.path}, {rec.chrom}:{rec.pos}: FORMAT/DS {dosage[bad][0]:g} outside "
                                f"[0, 2] (sample {preview(list(np.array(list(samples))[bad]), 2)})")
            return dosage
        if "GT" not in rec.format:
            return None
        calls = [s.allele_indices for s in samples.itervalues()]
        try:
            called = np.array(calls, dtype=np.float32)  # [n, ploidy], None -> NaN
        except ValueError:  # mixed ploidy: pad the short calls
            width = max(len(c) for c in calls)
            called = np.array([tuple(c) + (0,) * (width - len(c)) for c in calls], dtype=np.float32)
        called = called.reshape(len(calls), -1)
        dosage = (called == 1).sum(axis=1).astype(np.float32)
        dosage[np.isnan(called).any(axis=1) | (called.shape[1] == 0)] = np.nan
        return dosage
