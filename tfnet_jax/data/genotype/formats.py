"""The genotype formats by name: `open_genotypes` picks the GenotypeReader (`source.py`) for a
genotype config or a path. cyvcf2 and bed_reader are imported by the readers that need them."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from tfnet_jax.data.genotype.dosage_text import DosageTextGenotypes
from tfnet_jax.data.genotype.plink import PlinkGenotypes
from tfnet_jax.data.genotype.source import GenotypeReader
from tfnet_jax.data.genotype.vcf import VcfGenotypes
from tfnet_jax.errors import DataError
from tfnet_jax.schemas.data import GenotypeSource

VCF_SUFFIXES = (".vcf.gz", ".vcf.bgz", ".bcf", ".vcf")


def open_genotypes(spec, genome_build: str | None = None) -> GenotypeReader:
    """A reader for a genotype config (GenotypeSource, or a dict of its fields) or a path: a
    PLINK prefix, or a VCF by its suffix (.vcf.gz, .vcf.bgz, .bcf). Dosage text needs its
    samples file: pass {"dosage": PATTERN, "dosage_samples": FILE}."""
    if isinstance(spec, (str, Path)):
        text = str(spec)
        if "{chrom}" in text:
            raise DataError(f"{text}: dosage text files need their samples file; pass "
                            f"{{'dosage': PATTERN, 'dosage_samples': FILE}}")
        spec = {"vcf" if text.endswith(VCF_SUFFIXES) else "bed": text, "genome_build": genome_build}
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - {f.name for f in fields(GenotypeSource)})
        if unknown:
            raise DataError(f"genotype inputs: unknown key(s) {unknown}; give one of bed, vcf, dosage "
                            f"(with dosage_samples), and optionally vcf_field, genome_build")
        spec = GenotypeSource(**{"genome_build": genome_build, **spec})
    spec.check()
    key, value = spec.genotype_format()
    if key == "bed":
        return PlinkGenotypes(value, spec.genome_build)
    if key == "vcf":
        return VcfGenotypes(value, spec.vcf_field, spec.genome_build)
    return DosageTextGenotypes(value, spec.dosage_samples, spec.genome_build)
