"""PredictDB / PrediXcan dosage text as a GenotypeReader (`source.py`).

One file per chromosome (data.dosage, a pattern with {chrom}: the genes table's chromosome
without "chr"), whitespace-separated, plain or gzipped, no header; per line
`chr snp_ID pos ref alt maf` then one dosage per individual of data.dosage_samples (one IID per
line; PrediXcan's two-column `FID IID` also works: the last field is the IID). The dosage counts
the ALT allele (the 5th column; MetaXcan's text-genotype reader names the columns chromosome,
id, position, ref_allele, alt_allele, frequency), so alleles = (alt, ref). NA / NaN / . are
missing.

A chromosome's file is streamed once, at its first window, keeping only the lines inside any
asked window of that chromosome (memory: those lines, not the file); it is dropped after its
last window. Only lines that are kept are split in full: their field count must be 6 + the
samples file's individuals (the first line of a file is always checked).
"""
from __future__ import annotations

import zlib
from bisect import bisect_right
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tfnet_jax.data.genotype.source import (
    Region,
    RegionReader,
    SkipCounter,
    WindowGenotypes,
    fill_missing_ids,
    is_snv,
)
from tfnet_jax.data.io.plink import first_duplicate, norm_chrom, read_plink_text
from tfnet_jax.data.io.text import open_text
from tfnet_jax.errors import DataError

MISSING_TEXT = {"NA", "NaN", "nan", "."}


def _read_samples(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: file not found (data.dosage_samples)")
    lines = [line.split() for line in path.read_text().splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise DataError(f"{path}: empty file (data.dosage_samples)")
    width = len(lines[0])
    if width == 2:  # PrediXcan's samples file: FID IID
        frame = read_plink_text(path, ["fid", "iid"])
    else:
        frame = read_plink_text(path, ["iid"])
    ids = frame["iid"].to_numpy(dtype=str)
    first_duplicate(ids, frame.index, path, "individual (IID)")
    return ids


class DosageTextGenotypes(RegionReader):
    samples_label = "samples file"

    def __init__(self, pattern: str, samples: str, genome_build: str | None = None):
        self.path, self.samples_path, self.build = pattern, str(samples), genome_build
        self.variants_path = pattern
        self.individuals = _read_samples(Path(samples))
        self.skips = SkipCounter()

    @property
    def skipped_records(self) -> dict:
        return self.skips.counts()

    def file_for(self, chrom: str) -> Path:
        return Path(self.path.replace("{chrom}", chrom))

    def has_chrom(self, chrom: str) -> bool:
        return self.file_for(chrom).is_file()

    def where(self, chrom: str) -> str:
        return f"{self.file_for(chrom)} (no such file)" if not self.has_chrom(chrom) else str(self.file_for(chrom))

    def read_windows(self, regions: list[Region], rows: np.ndarray) -> Iterator[WindowGenotypes]:
        left = {}
        for region in regions:
            left[region.chrom] = left.get(region.chrom, 0) + 1
        loaded: dict[str, WindowGenotypes] = {}
        for region in regions:
            if not self.has_chrom(region.chrom):
                yield WindowGenotypes.empty(len(rows))
                continue
            if region.chrom not in loaded:
                loaded[region.chrom] = self._load(region.chrom, [r for r in regions if r.chrom == region.chrom], rows)
            lines = loaded[region.chrom]
            lo = np.searchsorted(lines.positions, region.start, "left")
            hi = np.searchsorted(lines.positions, region.end, "right")
            yield lines.take(np.arange(lo, hi))
            left[region.chrom] -= 1
            if not left[region.chrom]:
                del loaded[region.chrom]

    def _load(self, chrom: str, regions: list[Region], rows: np.ndarray) -> WindowGenotypes:
        """The file's lines inside any of `regions`, sorted by position."""
        path = self.file_for(chrom)
        spans = sorted((r.start, r.end) for r in regions)
        starts, ends = [], []
        for start, end in spans:  # merged, so one bisect finds a position's span
            if starts and start <= ends[-1] + 1:
                ends[-1] = max(ends[-1], end)
            else:
                starts.append(start)
                ends.append(end)
        n = len(self.individuals)
        ids, positions, alleles, columns = [], [], [], []
        try:
            with open_text(Path(path)) as handle:
                for number, line in enumerate(handle, 1):
                    head = line.split(None, 6)
                    if not head:
                        continue
                    if len(head) < 7:
                        raise DataError(f"{path}, line {number}: {len(head)} fields, expected 6 + {n} "
                                        f"(chr snp_ID pos ref alt maf, then one per individual of {self.samples_path})")
                    try:
                        pos = int(head[2])
                    except ValueError:
                        raise DataError(f"{path}, line {number}, field 3 (pos): '{head[2]}' is not an integer") from None
                    span = bisect_right(starts, pos) - 1
                    if number > 1 and (span < 0 or pos > ends[span]):
                        continue
                    values = head[6].split()
                    if len(values) != n:
                        raise DataError(f"{path}, line {number}: {6 + len(values)} fields, expected 6 + {n} "
                                        f"(one dosage per individual of {self.samples_path})")
                    if norm_chrom(np.array([head[0]]))[0] != chrom:
                        raise DataError(f"{path}, line {number}: chromosome '{head[0]}', but the file is "
                                        f"chromosome {chrom}'s (data.dosage={self.path})")
                    if span < 0 or pos > ends[span]:
                        continue  # line 1, checked but outside every window
                    ref, alt = head[3], head[4]
                    if "," in alt or not is_snv(ref, alt):
                        self.skips.add("multiallelic" if "," in alt else "not_snv", (chrom, pos, ref, alt))
                        continue
                    ids.append(head[1])
                    positions.append(pos)
                    alleles.append((alt, ref))
                    columns.append(self._dosages(values, path, number)[rows])
        except (OSError, EOFError, UnicodeDecodeError, zlib.error) as err:  # zlib: a corrupt .gz
            raise DataError(f"{path}: cannot read the file ({err})") from None
        if not ids:
            return WindowGenotypes.empty(len(rows))
        positions = np.array(positions, np.int64)
        order = np.argsort(positions, kind="stable")
        alleles = np.array(alleles, dtype=str)
        ids = fill_missing_ids(np.array(ids, dtype=object), chrom, positions, alleles, self.build)
        return WindowGenotypes(ids, positions, alleles, np.stack(columns, axis=1)).take(order)

    def _dosages(self, values: list[str], path: Path, number: int) -> np.ndarray:
        try:
            dosage = np.array(values, dtype=np.float32)
        except ValueError:
            dosage = np.empty(len(values), np.float32)
            for i, text in enumerate(values):
                if text in MISSING_TEXT:
                    dosage[i] = np.nan
                    continue
                try:
                    dosage[i] = float(text)
                except ValueError:
                    raise DataError(f"{path}, line {number}, field {7 + i}: '{text}' is not a dosage "
                                    f"(a number in [0, 2], or NA)") from None
        bad = (dosage < 0) | (dosage > 2)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{path}, line {number}, field {7 + i}: dosage {values[i]} outside [0, 2]")
        return dosage
