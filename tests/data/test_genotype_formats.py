"""GenoNet's genotype formats: the same cohort as PLINK, VCF (DS; GT only) and PredictDB dosage
text must give the same GenotypeData, the same elastic nets and the same TWAS alleles."""
import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from genotype_files import (
    GENES,
    WINDOW,
    make_cohort,
    write_all,
    write_dosage_text,
    write_vcf,
)

from tfnet_jax.data.genotype.formats import open_genotypes
from tfnet_jax.data.genotype.readers import read_dosages, read_genotype_data
from tfnet_jax.data.genotype.source import Region
from tfnet_jax.errors import ConfigError, DataError

FORMATS = ("plink", "vcf_ds", "vcf_gt", "dosage")
GENOTYPE_KEYS = ("bed", "vcf", "dosage", "dosage_samples")


@pytest.fixture(scope="module")
def cohort():
    return make_cohort()


@pytest.fixture(scope="module")
def files(cohort, tmp_path_factory):
    return write_all(cohort, tmp_path_factory.mktemp("formats"))


def _windows_equal(a, b):
    assert [w.gene for w in a.windows] == [w.gene for w in b.windows]
    np.testing.assert_array_equal(a.individuals, b.individuals)
    pd.testing.assert_frame_equal(a.expression, b.expression)
    for wa, wb in zip(a.windows, b.windows):
        assert wa.chrom == wb.chrom
        np.testing.assert_array_equal(wa.variant_ids, wb.variant_ids)
        np.testing.assert_array_equal(wa.positions, wb.positions)
        np.testing.assert_array_equal(wa.alleles, wb.alleles)
        np.testing.assert_array_equal(wa.float_dosages(), wb.float_dosages())  # NaN at the same places


def test_every_format_gives_the_same_genotype_data(cohort, files):
    loaded = {name: read_genotype_data(cfg) for name, cfg in files.items()}
    for name in FORMATS[1:]:
        _windows_equal(loaded["plink"], loaded[name])
    data, v = loaded["dosage"], cohort["variants"]
    # By hand: each gene's window holds its 40 SNVs (less the monomorphic one), never the
    # two variants outside every window nor the multi-allelic and indel records.
    iid_row = pd.Index(cohort["iids"]).get_indexer(data.individuals)
    for w, gene in zip(data.windows, GENES.itertuples()):
        chrom = gene.chrom.replace("chr", "")
        inside = ((v["chrom"] == chrom) & (v["pos"] >= gene.start - WINDOW) & (v["pos"] <= gene.end + WINDOW)).to_numpy()
        inside[50] = False
        cols = np.flatnonzero(inside)
        assert len(w.variant_ids) == len(cols) >= 35
        np.testing.assert_array_equal(w.positions, v["pos"].to_numpy()[cols])
        np.testing.assert_array_equal(w.alleles, v[["alt", "ref"]].to_numpy()[cols])  # (counted ALT, REF)
        np.testing.assert_array_equal(w.float_dosages(), cohort["dosages"][iid_row][:, cols])
    first = data.windows[0]
    row = v.iloc[3]
    assert first.variant_ids[0] == "rs1000" and f"chr1_{row.pos}_{row.ref}_{row.alt}" in first.variant_ids
    assert np.isnan(np.concatenate([w.float_dosages() for w in data.windows], axis=1)).sum() == 2
    assert list(data.individuals) == list(cohort["expression"].index)  # the expression's order
    # The skipped records are counted, once each (format and report in extras, for metrics.json).
    for name, key in [("vcf_ds", "vcf"), ("vcf_gt", "vcf"), ("dosage", "dosage")]:
        assert loaded[name].extras["genotypes"] == {"format": key, "skipped_records": {"multiallelic": 1,
                                                                                      "not_snv": 1}}
    assert loaded["plink"].extras["genotypes"] == {"format": "bed", "skipped_records": {}}


def test_genes_subset_and_chrom_read_only_their_windows(files, cohort):
    for name in FORMATS:
        one = read_genotype_data({**files[name], "genes_subset": ["gC", "gA"]})
        assert [w.gene for w in one.windows] == ["gA", "gC"]  # the genes table's order
        two = read_genotype_data({**files[name], "chrom": "chr2"})
        assert [w.gene for w in two.windows] == ["gC"]
    full = read_genotype_data(files["vcf_ds"])
    np.testing.assert_array_equal(one.windows[1].float_dosages(), full.windows[2].float_dosages())
    # Windows of 200 kb overlap (gA's and gB's both hold the multi-allelic record): counted once.
    wide = read_genotype_data({**files["vcf_ds"], "window": 200_000})
    assert wide.extras["genotypes"]["skipped_records"] == {"multiallelic": 1, "not_snv": 1}
    assert set(wide.windows[0].variant_ids) & set(wide.windows[1].variant_ids)


def test_vcf_field_ds_reads_dosages_and_gt_reads_hard_calls(tmp_path):
    """A hand-made VCF: DS differs from GT, so the choice shows; a record without DS falls back
    to GT under DS; a missing call is NaN; a haploid call counts its one allele."""
    import pysam
    text = "\n".join([
        "##fileformat=VCFv4.2", "##contig=<ID=1,length=1000000>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="g">',
        '##FORMAT=<ID=DS,Number=1,Type=Float,Description="d">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ta\tb\tc",
        "1\t100\trsA\tC\tT\t.\tPASS\t.\tGT:DS\t0/1:0.9\t1/1:1.75\t./.:.",
        "1\t200\t.\tG\tA\t.\tPASS\t.\tGT\t0|1\t1|1\t0|0",
        "1\t300\trsC\tA\tG\t.\tPASS\t.\tGT:DS\t1:0.8\t0/0:0.1\t0/1:1.2"]) + "\n"
    (tmp_path / "x.vcf").write_text(text)
    path = pysam.tabix_index(str(tmp_path / "x.vcf"), preset="vcf", csi=True)  # a CSI index works too
    for field, want in [("DS", [[0.9, 1.0, 0.8], [1.75, 2.0, 0.1], [np.nan, 0.0, 1.2]]),
                        ("GT", [[1.0, 1.0, 1.0], [2.0, 2.0, 0.0], [np.nan, 0.0, 1.0]])]:
        reader = open_genotypes({"vcf": path, "vcf_field": field, "genome_build": "b38"})
        (window,) = reader.read_windows([Region("1", 1, 1000)], np.array([2, 0, 1]))  # c, a, b
        np.testing.assert_allclose(window.dosages, np.array(want, np.float32)[[2, 0, 1]])
        assert list(window.ids) == ["rsA", "chr1_200_G_A_b38", "rsC"]
        np.testing.assert_array_equal(window.alleles, [["T", "C"], ["A", "G"], ["G", "A"]])



def _indexed_vcf(path: Path, format_lines: list[str], records: list[str], contigs=("1",)) -> str:
    import pysam
    path.write_text("\n".join(["##fileformat=VCFv4.2", *[f"##contig=<ID={c},length=1000000>" for c in contigs],
                                *format_lines, "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ta\tb\tc",
                                *records]) + "\n")
    return pysam.tabix_index(str(path), preset="vcf", force=True)


def test_vcf_calls_ploidy_integer_ds_and_empty_contigs(tmp_path):
    """GT: a haploid or triploid call counts its ALT alleles, an allele index past the one ALT is
    missing; an Integer DS's '.' is NaN; a header contig without records is not in the file."""
    gt = '##FORMAT=<ID=GT,Number=1,Type=String,Description="g">'
    path = _indexed_vcf(tmp_path / "calls.vcf", [gt, '##FORMAT=<ID=DS,Number=1,Type=Integer,Description="d">'],
                        ["1\t100\trsA\tC\tT\t.\tPASS\t.\tGT\t1\t1/1/0\t1/2",
                         "1\t200\trsB\tG\tA\t.\tPASS\t.\tDS\t1\t.\t2"], contigs=("1", "7"))
    reader = open_genotypes({"vcf": path})
    assert reader.has_chrom("1") and not reader.has_chrom("7")
    (window,) = reader.read_windows([Region("1", 1, 1000)], np.array([0, 1, 2]))
    np.testing.assert_array_equal(window.dosages, np.array([[1, 1], [2, np.nan], [np.nan, 2]], np.float32))


def test_vcf_ds_outside_0_2_is_one_line_naming_record_and_sample(tmp_path):
    path = _indexed_vcf(tmp_path / "bad.vcf", ['##FORMAT=<ID=DS,Number=1,Type=Float,Description="d">'],
                        ["1\t100\trsA\tC\tT\t.\tPASS\t.\tDS\t1\t2.5\t0"])
    reader = open_genotypes({"vcf": path})
    with pytest.raises(DataError, match=r"^\S*bad.vcf.gz, 1:100: FORMAT/DS 2.5 outside \[0, 2\] \(sample \[b\] \(1 in all\)\)$"):
        list(reader.read_windows([Region("1", 1, 1000)], np.array([2, 1])))


def test_vcf_corrupt_block_is_an_error_not_a_short_window(tmp_path):
    """cyvcf2 ends a region query at an htslib read error as at its end: the reader must say so."""
    records = [f"1\t{10 * i + 1}\trs{i}\tA\tG\t.\tPASS\t.\tDS\t{i % 3}\t0.5\t1" for i in range(6000)]
    path = Path(_indexed_vcf(tmp_path / "big.vcf", ['##FORMAT=<ID=DS,Number=1,Type=Float,Description="d">'], records))
    reader = open_genotypes({"vcf": str(path)})
    (whole,) = reader.read_windows([Region("1", 1, 60_000)], np.arange(3))
    assert whole.dosages.shape == (3, 6000)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"big.vcf.gz: cannot read 1:1-60000 \(a read error: is the file truncated"):
        list(open_genotypes({"vcf": str(path)}).read_windows([Region("1", 1, 60_000)], np.arange(3)))

def test_read_dosages_from_every_format_aligns_swapped_alleles(files, cohort, tmp_path):
    data = read_genotype_data(files["plink"])
    from tfnet_jax.tasks.genonet.family import run_variants
    variants = run_variants(data)
    tables = {name: read_dosages({k: v for k, v in files[name].items() if k in GENOTYPE_KEYS}, variants)
              for name in FORMATS}
    tables["vcf path"] = read_dosages(files["vcf_ds"]["vcf"], variants)
    for name, table in tables.items():
        pd.testing.assert_frame_equal(table.loc[tables["plink"].index], tables["plink"], obj=name)
    # Dosage files with REF/ALT exchanged on every other variant (dosage 2 - d): aligned back.
    swapped = dict(cohort, variants=cohort["variants"].copy(), dosages=cohort["dosages"].copy())
    flip = np.arange(len(swapped["variants"])) % 2 == 0
    v = swapped["variants"]
    v.loc[3, "id"] = f"chr1_{v.loc[3, 'pos']}_{v.loc[3, 'ref']}_{v.loc[3, 'alt']}"  # the run's, written out
    v.loc[flip, ["ref", "alt"]] = v.loc[flip, ["alt", "ref"]].to_numpy()
    swapped["dosages"][:, flip] = 2 - swapped["dosages"][:, flip]
    pattern, samples = write_dosage_text(swapped, tmp_path / "swapped")
    again = read_dosages({"dosage": pattern, "dosage_samples": samples}, variants)
    pd.testing.assert_frame_equal(again.loc[tables["plink"].index], tables["plink"])
    with pytest.raises(DataError, match=r"unknown key\(s\) \['samples'\]"):
        read_dosages({"dosage": pattern, "samples": samples}, variants)
    with pytest.raises(DataError, match="variant.s. of the run are missing"):
        read_dosages({"dosage": pattern, "dosage_samples": samples},
                     pd.concat([variants, variants.iloc[:1].assign(id="rs_nowhere")], ignore_index=True))


# ---------------------------------------------------------------- GenoNet per format

TINY = ["split.folds=2", "model.elastic_net.inner_folds=2", "model.elastic_net.n_lambdas=6",
        "model.elastic_net.block=4", "model.elastic_net.max_iter=30", "model.genes_per_block=3",
        "model.channels=2", "model.hidden=4", "model.kernel=3", "model.epistasis_variants=0",
        "train.max_steps=4", "train.eval_every=2", "train.log_every=2", "train.patience=1",
        "train.batch_size=16", "train.eval_batch_size=64", "train.warmup_steps=1"]
SUBSET = "data.genes_subset=[gC,gA]"


def _overrides(cfg: dict) -> list[str]:
    out = ["data=genotypes"]
    for key, value in cfg.items():
        out.append(f"data.{key}='{value}'" if isinstance(value, str) else f"data.{key}={value}")
    return out


def _elastic_net(cfg: dict, extra: list[str]):
    """(genes.csv's columns, weights.csv) of the elastic net alone, as a GenoNet run computes
    them (the family's load / split / prepare, then its elastic-net fit and export table)."""
    from conftest import compose_genonet

    from tfnet_jax.schemas.typed import typed_config
    from tfnet_jax.tasks.genonet.export import weight_table
    from tfnet_jax.tasks.genonet.family import GenoNetFamily
    from tfnet_jax.tasks.genonet.enet_fits import fit_elastic_net
    from tfnet_jax.tasks.genonet.scores import gene_table
    run_cfg = typed_config(compose_genonet([*_overrides(cfg), *extra, *TINY]))
    family = GenoNetFamily()
    data = family.load(run_cfg)
    prepared = family.prepare(run_cfg, data, family.split(run_cfg, data))
    en = fit_elastic_net(data, prepared.blocks, prepared.folds, run_cfg.model.elastic_net, run_cfg.seed)
    return gene_table(prepared, {"elastic_net": en["pred"]}), weight_table(data, prepared.blocks, en["coef"])


def _assert_same_elastic_net(genes: dict, weights: dict, cohort, want_genes: list[str]):
    assert list(genes["plink"]["gene"]) == want_genes and len(weights["plink"]) > 0
    for name in FORMATS[1:]:
        assert list(genes[name]["gene"]) == want_genes
        np.testing.assert_allclose(genes[name]["r2_elastic_net"], genes["plink"]["r2_elastic_net"], atol=1e-6)
        columns = ["gene", "variant", "varID", "ref_allele", "eff_allele"]
        pd.testing.assert_frame_equal(weights[name][columns].astype(str), weights["plink"][columns].astype(str),
                                      obj=name)
        np.testing.assert_allclose(weights[name]["weight"], weights["plink"]["weight"], atol=1e-6)
    # eff_allele is the VCF's ALT (the counted allele) and varID chr_pos_REF_ALT, by hand.
    by_key = cohort["variants"].set_index(("chr" + cohort["variants"]["chrom"] + "_"
                                           + cohort["variants"]["pos"].astype(str)).to_numpy())
    w = weights["vcf_ds"]
    keys = ("chr" + w["chrom"].astype(str) + "_" + w["position"].astype(str)).to_numpy()
    np.testing.assert_array_equal(w["eff_allele"].to_numpy(str), by_key.loc[keys, "alt"].to_numpy(str))
    np.testing.assert_array_equal(w["varID"].to_numpy(str), keys + "_" + w["ref_allele"] + "_" + w["eff_allele"])


@pytest.mark.parametrize("subset", [False, True])
def test_elastic_net_and_twas_alleles_equal_across_formats(files, cohort, subset):
    extra = [SUBSET] if subset else []
    fits = {name: _elastic_net(files[name], extra) for name in FORMATS}
    _assert_same_elastic_net({n: f[0] for n, f in fits.items()}, {n: f[1] for n, f in fits.items()}, cohort,
                             ["gA", "gC"] if subset else ["gA", "gB", "gC"])


def test_genome_build_names_the_varids(files):
    _, w = _elastic_net({**files["vcf_ds"], "genome_build": "b38"}, [])
    assert len(w) and (w["varID"] == "chr" + w["chrom"] + "_" + w["position"].astype(str) + "_"
                       + w["ref_allele"] + "_" + w["eff_allele"] + "_b38").all()


@pytest.fixture(scope="module")
def runs(files, tmp_path_factory):
    from conftest import compose_genonet

    from tfnet_jax.run import train_and_evaluate
    out = {}
    for subset in (False, True):
        for name in FORMATS:
            run_dir = tmp_path_factory.mktemp(f"{name}_{'subset' if subset else 'all'}")
            overrides = [*_overrides(files[name]), *([SUBSET] if subset else []), *TINY]
            train_and_evaluate(compose_genonet(overrides), run_dir)
            out[name, subset] = run_dir
    return out


@pytest.mark.slow
@pytest.mark.parametrize("subset", [False, True])
def test_genonet_runs_agree_across_formats(runs, cohort, subset):
    """Whole tiny GenoNet runs (8 of them, hence slow): genes.csv and weights.csv as above."""
    genes = {name: pd.read_csv(runs[name, subset] / "genes.csv") for name in FORMATS}
    weights = {name: pd.read_csv(runs[name, subset] / "weights.csv", dtype={"chrom": str}) for name in FORMATS}
    _assert_same_elastic_net(genes, weights, cohort, ["gA", "gC"] if subset else ["gA", "gB", "gC"])


@pytest.mark.slow
def test_predict_and_twas_read_vcf_and_dosage_genotypes(runs, files):
    import tfnet_jax
    from tfnet_jax.analysis.twas import associate
    run = tfnet_jax.load_run(runs["vcf_ds", False])
    plink = run.predict(files["plink"]["bed"]).set_index("individual")
    vcf = run.predict(files["vcf_gt"]["vcf"]).set_index("individual")
    dosage = run.predict({"dosage": files["dosage"]["dosage"], "dosage_samples": files["dosage"]["dosage_samples"]}
                         ).set_index("individual")
    pd.testing.assert_frame_equal(vcf.loc[plink.index], plink)
    pd.testing.assert_frame_equal(dosage.loc[plink.index], plink)
    trait = pd.DataFrame({"IID": plink.index, "trait": plink["gA"].to_numpy() + np.arange(len(plink)) % 3})
    trait.to_csv(runs["vcf_ds", False] / "trait.csv", index=False)
    z = associate(runs["vcf_ds", False], runs["vcf_ds", False] / "trait.csv")  # stage 2 re-reads the VCF
    assert set(z["gene"]) <= {"gA", "gB", "gC"} and np.isfinite(z["z"]).all()


# ---------------------------------------------------------------- bad inputs

def test_exactly_one_genotype_input(files):
    from tfnet_jax.data.load import check_data_config, load_genotype_data
    both = {**files["plink"], "vcf": files["vcf_ds"]["vcf"]}
    for cfg, got in [(both, "data.bed and data.vcf"), ({**files["plink"], "bed": None}, "none")]:
        with pytest.raises(ConfigError, match=rf"data.bed, data.vcf, data.dosage: give exactly one \(got {got}\)"):
            load_genotype_data({"name": "genotypes", **cfg})
        with pytest.raises(ConfigError, match="give exactly one"):
            read_genotype_data(cfg)
    with pytest.raises(ConfigError, match="data.dosage_samples: required"):
        check_data_config({"name": "genotypes", "dosage": "d/chr{chrom}.txt", "window": 1, "max_variants": 1,
                           "maf": 0.0})
    with pytest.raises(ConfigError, match="data.dosage=.*needs \\{chrom\\}"):
        read_genotype_data({**files["dosage"], "dosage": files["dosage"]["dosage"].replace("{chrom}", "1")})
    with pytest.raises(ConfigError, match="data.vcf_field='AD'"):
        read_genotype_data({**files["vcf_ds"], "vcf_field": "AD"})


def test_vcf_without_index_says_how_to_index(files, tmp_path):
    import pysam
    plain = tmp_path / "noindex.vcf"
    with gzip.open(files["vcf_ds"]["vcf"], "rt") as handle:
        plain.write_text(handle.read())
    pysam.tabix_compress(str(plain), str(plain) + ".gz")
    with pytest.raises(DataError, match=r"noindex.vcf.gz: no tabix \(.tbi\) or CSI index .*`tabix -p vcf .*"
                                        r"noindex.vcf.gz` or `bcftools index"):
        read_genotype_data({**files["vcf_ds"], "vcf": str(plain) + ".gz"})


def test_vcf_samples_not_in_the_expression_table(files, cohort, tmp_path):
    other = dict(cohort, iids=np.array([f"x{i}" for i in range(len(cohort["iids"]))]))
    path = write_vcf(other, tmp_path / "other.vcf")
    with pytest.raises(DataError, match=r"no individual is in both .*other.vcf.gz \(IIDs \[x0, x1, x2, x3, \.\.\.\] "
                                        r"\(61 in all\)\) and .*expr.csv \(first column \[id00"):
        read_genotype_data({**files["vcf_ds"], "vcf": path})
    # Some expressed individuals without genotypes: listed, unless allowed (then dropped).
    some = dict(cohort, iids=np.where(cohort["iids"] == "id03", "zz", cohort["iids"]))
    path = write_vcf(some, tmp_path / "some.vcf")
    with pytest.raises(DataError, match=r"expr.csv: 1 of 60 individuals are not in .*some.vcf.gz: \[id03\]"):
        read_genotype_data({**files["vcf_ds"], "vcf": path})
    data = read_genotype_data({**files["vcf_ds"], "vcf": path, "allow_missing_individuals": True})
    assert len(data.individuals) == 59 and "id03" not in data.individuals


def test_dosage_file_columns_must_match_its_samples(files, tmp_path):
    pattern, samples = files["dosage"]["dosage"], files["dosage"]["dosage_samples"]
    short = tmp_path / "samples.txt"
    iids = Path(samples).read_text().split()
    short.write_text("\n".join(i for i in iids if i != "extra") + "\n")
    with pytest.raises(DataError, match=r"chr1.txt.gz, line 1: 67 fields, expected 6 \+ 60 .*samples.txt"):
        read_genotype_data({**files["dosage"], "dosage_samples": str(short)})
    # A short line inside a window is named by its number; outside every window it is not parsed.
    with gzip.open(pattern.format(chrom="1"), "rt") as handle:
        lines = handle.read().splitlines()
    outside = next(i for i, line in enumerate(lines) if line.split()[2] == "200000")
    (tmp_path / "chr2.txt.gz").symlink_to(pattern.format(chrom="2"))
    for broken, error in [(10, r"chr1.txt.gz, line 11: 65 fields, expected 6 \+ 61"), (outside, None)]:
        edited = list(lines)
        edited[broken] = " ".join(edited[broken].split()[:-2])
        with gzip.open(tmp_path / "chr1.txt.gz", "wt") as handle:
            handle.write("\n".join(edited) + "\n")
        cfg = {**files["dosage"], "dosage": str(tmp_path / "chr{chrom}.txt.gz")}
        if error:
            with pytest.raises(DataError, match=error):
                read_genotype_data(cfg)
        else:
            _windows_equal(read_genotype_data(cfg), read_genotype_data(files["dosage"]))
