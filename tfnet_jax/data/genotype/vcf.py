"""VCF/BCF genotypes as a GenotypeReader (`source.py`), read through cyvcf2.

Each window is an index REGION query (`VCF(path)("chr1:start-end")` on the .tbi/.csi index), so
memory follows the windows, not the file; only the individuals asked are decoded (`samples=`).
cyvcf2 hands a record's FORMAT field for every sample as one numpy array (pysam, which this
replaced, hands it one sample at a time: 5x slower, benchmarks/vcf_read.py). The dosage counts
the ALT allele (alleles = (ALT, REF), as PLINK's A1/A2 after `plink2 --vcf`): FORMAT/DS where the
record has it and data.vcf_field=DS, else the ALT count of FORMAT/GT (a missing call -> NaN).
Multi-allelic records and anything but an SNV (indels, symbolic or absent ALT) are skipped and
counted.
"""
from __future__ import annotations

import warnings
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

_INT32_MISSING = np.iinfo(np.int32).min + 1  # htslib: INT32_MIN = missing, INT32_MIN + 1 = vector end
_GT_MISSING, _GT_VECTOR_END = -1, -2         # cyvcf2's genotype.array() allele codes


def _is_read_error(err: Exception) -> bool:
    """What cyvcf2 / htslib raise for a file they cannot read: a bare Exception ("error parsing"),
    OSError, ValueError, AssertionError ("could not subset variant"); not our own DataError nor a
    bug (TypeError, ...)."""
    return not isinstance(err, DataError) and (type(err) is Exception
                                               or isinstance(err, (OSError, ValueError, AssertionError)))


@contextmanager
def _quiet_htslib():
    """htslib writes its own lines ("[E::idx_find_and_load] ...") to stderr; the errors raised
    here say it in one line instead. The level goes back to the one cyvcf2 sets at import (its
    CYVCF2_HTSLIB_LOG_LEVEL, else htslib's default): htslib's level cannot be read back."""
    from cyvcf2 import cyvcf2
    cyvcf2.set_htslib_log_level(0)
    try:
        yield
    finally:
        cyvcf2._init_logging_from_env()


class VcfGenotypes(RegionReader):
    samples_label = "VCF header"

    def __init__(self, path: str, field: str = "DS", genome_build: str | None = None):
        self.path = self.samples_path = self.variants_path = str(path)
        self.field, self.build = field, genome_build
        if not Path(path).is_file():
            raise DataError(f"{path}: file not found")
        with _quiet_htslib():
            handle = self._open()
            try:
                # cyvcf2 opens a file without an index and fails at the first region query (an
                # AssertionError); num_records loads the index now, a ValueError without one
                try:
                    handle.num_records  # noqa: B018
                except ValueError:
                    raise DataError(f"{path}: no tabix (.tbi) or CSI index beside it; index the bgzipped VCF "
                                    f"with `tabix -p vcf {path}` or `bcftools index {path}` (a plain or gzip "
                                    f"VCF: `bgzip` it first)") from None
                self.individuals = np.array(handle.samples, dtype=str)
                contigs = self._indexed_contigs(handle)
            finally:
                handle.close()
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

    def _open(self, samples: list[str] | None = None):
        from cyvcf2 import VCF
        try:
            return VCF(self.path, samples=samples)
        except (OSError, ValueError) as err:
            raise DataError(f"{self.path}: cannot read as VCF/BCF ({str(err).splitlines()[0]})") from None

    def _indexed_contigs(self, handle) -> list[str]:
        """The contigs the index holds records of, in the file's order. cyvcf2's `seqnames` are the
        header's contigs (with the tabix index's added), some maybe without a record; a contig
        without one is 'not in the file', as a contig absent from the header is."""
        found = []
        for contig in handle.seqnames:
            with warnings.catch_warnings(record=True) as warned:
                warnings.simplefilter("always")  # cyvcf2 warns "no intervals found": not in the index
                try:
                    first = next(iter(handle(contig)), None)
                except Exception as err:
                    if not _is_read_error(err):
                        raise
                    raise DataError(f"{self.path}: cannot read {contig} ({str(err).splitlines()[0]})") from None
            if first is not None:
                found.append(contig)
            elif not warned and not self._is_bcf():  # a tabix index names only contigs with records
                raise DataError(f"{self.path}: cannot read {contig} (a read error: is the file truncated or "
                                f"corrupt?)")
        return found

    def _is_bcf(self) -> bool:
        return self.path.endswith((".bcf", ".bcf.gz"))  # as cyvcf2 tells them (it picks the index so)

    def has_chrom(self, chrom: str) -> bool:
        return chrom in self.contigs

    def where(self, chrom: str) -> str:
        return self.path

    def read_windows(self, regions: list[Region], rows: np.ndarray) -> Iterator[WindowGenotypes]:
        names = self.individuals[rows]
        subset = len(names) < len(self.individuals)
        asked = set(names)
        kept = np.array([s for s in self.individuals if s in asked])  # the header's order
        order = pd.Index(kept).get_indexer(names)
        with _quiet_htslib():
            handle = self._open(list(kept) if subset else None)
            try:
                for region in regions:
                    contig = self.contigs.get(region.chrom)
                    if contig is None:
                        yield WindowGenotypes.empty(len(rows))
                        continue
                    try:
                        window = self._window(handle, contig, region, kept, order)
                        # cyvcf2 ends a query at an htslib read error (a corrupt or truncated block)
                        # as at its end; the error sticks to the handle, so the contig's first
                        # record (there is one: `contigs`) no longer reads
                        if next(iter(handle(contig)), None) is None:
                            raise OSError("a read error: is the file truncated or corrupt?")
                    except Exception as err:
                        if not _is_read_error(err):
                            raise
                        raise DataError(f"{self.path}: cannot read {contig}:{region.start}-{region.end} "
                                        f"({str(err).splitlines()[0]})") from None
                    yield window
            finally:
                handle.close()

    def _window(self, handle, contig: str, region: Region, kept: np.ndarray, order: np.ndarray) -> WindowGenotypes:
        ids, positions, alleles, columns, from_ds = [], [], [], [], []
        for rec in handle(f"{contig}:{max(region.start, 1)}-{region.end}"):
            pos = rec.POS
            if not region.start <= pos <= region.end:
                continue  # a long REF that starts before the window overlaps it
            alts = rec.ALT
            if len(alts) != 1 or not is_snv(rec.REF, alts[0]):
                self.skips.add("multiallelic" if len(alts) > 1 else "not_snv", (contig, pos, rec.REF, tuple(alts)))
                continue
            dosage, is_ds = self._dosage(rec)
            if dosage is None:
                self.skips.add("no_DS_or_GT", (contig, pos, rec.REF, tuple(alts)))
                continue
            ids.append(rec.ID or ".")
            positions.append(pos)
            alleles.append((alts[0], rec.REF))
            columns.append(dosage)
            from_ds.append(is_ds)
        if not ids:
            return WindowGenotypes.empty(len(order))
        positions = np.array(positions, np.int64)
        dosages = np.stack(columns, axis=1)  # [samples kept, V]
        self._check_ds(dosages[:, from_ds], contig, positions[from_ds], kept)
        alleles = np.array(alleles, dtype=str)
        chrom = norm_chrom(np.array([contig]))[0]
        return WindowGenotypes(fill_missing_ids(np.array(ids, dtype=object), chrom, positions, alleles, self.build),
                               positions, alleles, dosages[order])

    def _check_ds(self, ds: np.ndarray, contig: str, positions: np.ndarray, kept: np.ndarray) -> None:
        """A window's DS columns at once (per record it costs a tenth of the read); the first
        record with a DS outside [0, 2] is named."""
        bad = (ds < 0) | (ds > 2)
        if bad.any():
            j = int(np.flatnonzero(bad.any(axis=0))[0])
            raise DataError(f"{self.path}, {contig}:{positions[j]}: FORMAT/DS {ds[bad[:, j], j][0]:g} outside "
                            f"[0, 2] (sample {preview(list(kept[bad[:, j]]), 2)})")

    def _dosage(self, rec) -> tuple[np.ndarray | None, bool]:
        """(float32 [samples kept], the ALT count, or None when the record has neither DS nor GT;
        whether it is the DS)."""
        values = None
        if self.field == "DS":
            try:
                values = rec.format("DS")  # None when the record has no DS
            except KeyError:  # nor has the header
                pass
        if values is not None:
            values = values.reshape(len(values), -1)[:, 0]  # Number=A/G/.: the first; a String DS is 1-D
            if values.dtype.kind == "i":  # Type=Integer: htslib's missing / vector-end codes -> NaN
                values = np.where(values <= _INT32_MISSING, np.nan, values)
            return values.astype(np.float32), True  # a String DS that is not a number: ValueError
        if "GT" not in rec.FORMAT:
            return None, False
        called = rec.genotype.array()[:, :-1]  # [samples, ploidy]; the last column is the phase
        dosage = (called == 1).sum(axis=1).astype(np.float32)
        # a short (haploid) call is padded with vector-end codes; a missing allele, or one that is not
        # REF or the one ALT, makes it NaN
        unusable = (called == _GT_MISSING) | (called > 1)
        dosage[unusable.any(axis=1) | (called == _GT_VECTOR_END).all(axis=1)] = np.nan
        return dosage, False
