"""GenoNet's TWAS exports: weights.csv alleles, the PredictDB-style SQLite database, the SNP
covariance file, and applying the database to PLINK genotypes as PrediXcan does."""
import logging
import sqlite3

import numpy as np
import pandas as pd
import pytest

from tfnet_jax.data.genotype.blocks import Block
from tfnet_jax.errors import DataError

WEIGHT_COLUMNS = ["gene", "rsid", "varID", "ref_allele", "eff_allele", "weight"]
EXTRA_COLUMNS = ["gene", "genename", "n.snps.in.model", "pred.perf.R2", "pred.perf.pval",
                 "intercept", "genonet.R2", "genonet_chosen"]


def _read_plink(prefix):
    from bed_reader import open_bed
    with open_bed(prefix + ".bed", count_A1=True, num_threads=1) as bed:
        dosages = bed.read(dtype="float64", num_threads=1)
        return (pd.DataFrame(dosages, index=bed.iid, columns=bed.sid),
                pd.DataFrame({"a1": bed.allele_1, "a2": bed.allele_2}, index=bed.sid))


def _apply_db(db_path, prefix, align=True):
    """PrediXcan by hand: per weight, the dosage of its eff_allele (2 - d where the .bim counts
    its ref_allele), times the weight, summed per gene, plus extra.intercept."""
    with sqlite3.connect(db_path) as db:
        weights = pd.read_sql("SELECT * FROM weights", db)
        intercept = pd.read_sql("SELECT gene, intercept FROM extra", db).set_index("gene")["intercept"]
    dosages, alleles = _read_plink(prefix)
    found = alleles.loc[weights["rsid"]]
    same = (found["a1"].to_numpy() == weights["eff_allele"]) & (found["a2"].to_numpy() == weights["ref_allele"])
    swapped = (found["a1"].to_numpy() == weights["ref_allele"]) & (found["a2"].to_numpy() == weights["eff_allele"])
    assert (same | swapped).all()
    d = dosages[weights["rsid"]].to_numpy()
    if align:
        d = np.where(swapped.to_numpy(), 2 - d, d)
    terms = pd.DataFrame(d * weights["weight"].to_numpy(), index=dosages.index)
    return pd.DataFrame({g: terms.loc[:, (weights["gene"] == g).to_numpy()].sum(axis=1) + intercept[g]
                         for g in intercept.index})


def _swapped_copy(prefix, dest, every=2):
    """The same genotypes with A1/A2 exchanged on every `every`-th variant (its dosages then
    count the other allele: 2 - d)."""
    from bed_reader import to_bed
    dosages, alleles = _read_plink(prefix)
    fam = pd.read_csv(prefix + ".fam", sep=r"\s+", header=None, dtype=str)
    bim = pd.read_csv(prefix + ".bim", sep=r"\s+", header=None, dtype=str)
    swap = np.arange(len(bim)) % every == 0
    values = np.where(swap, 2 - dosages.to_numpy(), dosages.to_numpy())
    to_bed(dest / "swapped.bed", values.astype(np.float32), count_A1=True, num_threads=1, properties={
        "fid": fam[0], "iid": fam[1], "sid": bim[1], "chromosome": bim[0], "bp_position": bim[3].astype(int),
        "allele_1": np.where(swap, bim[5], bim[4]), "allele_2": np.where(swap, bim[4], bim[5])})
    return str(dest / "swapped"), bim[1][swap].tolist()


@pytest.fixture(scope="module")
def finished(genonet_run):
    import tfnet_jax
    cfg, run_dir, _ = genonet_run
    run = tfnet_jax.load_run(run_dir)
    return run, run_dir


def _elastic_net(run, inputs):
    frame = run.predict(inputs, method="elastic_net").set_index("individual")
    return frame[run.prepared.genes]


def test_weights_csv_and_db_carry_the_bim_alleles(finished, genonet_files):
    run, run_dir = finished
    csv = pd.read_csv(run_dir / "weights.csv", dtype={"variant": str, "chrom": str})
    assert list(csv.columns) == ["gene", "variant", "varID", "chrom", "position", "ref_allele",
                                 "eff_allele", "weight"]
    bim = pd.read_csv(genonet_files["bed"] + ".bim", sep=r"\s+", header=None, dtype=str).set_index(1)
    # eff_allele is the counted A1 (.bim column 5), ref_allele the other (column 6).
    assert (csv["eff_allele"].to_numpy() == bim.loc[csv["variant"], 4].to_numpy()).all()
    assert (csv["ref_allele"].to_numpy() == bim.loc[csv["variant"], 5].to_numpy()).all()
    first = csv.iloc[0]
    assert first["varID"] == f"chr{first['chrom']}_{first['position']}_C_T"  # genosim: A1 = T, A2 = C

    with sqlite3.connect(run_dir / "predictdb.db") as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        columns = {t: [row[1] for row in db.execute(f"PRAGMA table_info({t})")] for t in ("weights", "extra")}
        weights = pd.read_sql("SELECT * FROM weights", db)
        extra = pd.read_sql("SELECT * FROM extra", db)
    assert tables == {"weights", "extra"}
    assert columns == {"weights": WEIGHT_COLUMNS, "extra": EXTRA_COLUMNS}
    pd.testing.assert_frame_equal(weights, csv.rename(columns={"variant": "rsid"})[WEIGHT_COLUMNS])
    genes = pd.read_csv(run_dir / "genes.csv").set_index("gene")
    with_weights = csv["gene"].value_counts()
    assert sorted(extra["gene"]) == sorted(with_weights.index)  # an all-zero model has no row
    extra = extra.set_index("gene")
    assert (extra["n.snps.in.model"] == with_weights.loc[extra.index]).all()
    np.testing.assert_allclose(extra["pred.perf.R2"], genes.loc[extra.index, "r2_elastic_net"])
    np.testing.assert_allclose(extra["pred.perf.pval"], genes.loc[extra.index, "elastic_net_p"])
    np.testing.assert_array_equal(extra["genonet_chosen"], (genes.loc[extra.index, "r2_genonet"]
                                                            > genes.loc[extra.index, "r2_elastic_net"]).astype(int))
    intercept = run.fitted.predictor.cache.get("elastic_net")["intercept"]
    np.testing.assert_allclose(extra["intercept"], intercept[[run.prepared.genes.index(g) for g in extra.index]])


def test_db_weights_applied_to_plink_reproduce_run_predict_also_with_swapped_alleles(finished, genonet_files,
                                                                                      tmp_path):
    run, run_dir = finished
    prefix = genonet_files["bed"]
    want = _elastic_net(run, prefix)
    db = run_dir / "predictdb.db"
    got = _apply_db(db, prefix)
    assert len(got.columns) > 0
    np.testing.assert_allclose(got.loc[want.index], want[got.columns], rtol=1e-6, atol=1e-6)

    swapped, flipped = _swapped_copy(prefix, tmp_path)
    weighted = set(pd.read_csv(run_dir / "weights.csv", dtype={"variant": str})["variant"])
    assert weighted & set(flipped)  # some weighted variants count the other allele there
    np.testing.assert_allclose(_apply_db(db, swapped).loc[want.index], want[got.columns], rtol=1e-6, atol=1e-6)
    assert not np.allclose(_apply_db(db, swapped, align=False).loc[want.index], want[got.columns])
    # Run.predict aligns a swapped .bim to the run's counted allele as well.
    np.testing.assert_allclose(_elastic_net(run, swapped), want, rtol=1e-6, atol=1e-6)

    other = tmp_path / "swapped.bim"  # one weighted variant with neither allele of the run's
    bim = other.read_text().splitlines()
    line = next(i for i, text in enumerate(bim) if text.split()[1] in weighted)
    fields = bim[line].split()
    bim[line] = "\t".join(fields[:4] + ["A", "G"])
    other.write_text("\n".join(bim) + "\n")
    with pytest.raises(DataError, match=rf"swapped\.bim: 1 variant\(s\) have other alleles.*{fields[1]}: A/G"):
        _elastic_net(run, swapped)


def test_covariance_file_is_numpys_covariance_of_each_model(finished, genonet_files):
    run, run_dir = finished
    cov = pd.read_csv(run_dir / "covariances.txt.gz", sep=" ", dtype={"RSID1": str, "RSID2": str})
    assert list(cov.columns) == ["GENE", "RSID1", "RSID2", "VALUE"]
    weights = pd.read_csv(run_dir / "weights.csv", dtype={"variant": str})
    dosages, _ = _read_plink(genonet_files["bed"])
    dosages = dosages.loc[run.prepared.data.individuals]  # the run's individuals
    assert set(cov["GENE"]) == set(weights["gene"])
    for gene, table in weights.groupby("gene"):
        snps = table["variant"].tolist()
        want = np.atleast_2d(np.cov(dosages[snps].to_numpy(), rowvar=False))
        rows = cov[cov["GENE"] == gene]
        assert len(rows) == len(snps) * (len(snps) + 1) // 2  # each pair once, diagonal included
        i, j = [pd.Index(snps).get_indexer(rows[c]) for c in ("RSID1", "RSID2")]
        assert (i <= j).all() and (i >= 0).all()
        np.testing.assert_allclose(rows["VALUE"], want[i, j], rtol=1e-6, atol=1e-9)


def test_in_memory_genotypes_without_alleles_write_weights_but_no_db(tmp_path, caplog):
    from tfnet_jax.data.genotype.container import GeneWindow, GenotypeData
    from tfnet_jax.tasks.genonet.export import write_twas_exports
    window = GeneWindow("g", "1", 0, 1, np.array(["v0", "v1"]), np.array([10, 20]), np.ones((4, 2), np.float32))
    data = GenotypeData(np.array(list("abcd")), pd.DataFrame(), None, [window], None, {}, "memory")
    block = Block(["g"], np.ones((4, 1, 2), np.float32), np.ones((1, 2), bool), None)
    with caplog.at_level(logging.WARNING):
        write_twas_exports(tmp_path, data, [block], {"coef": np.array([[0.0, 0.5]]), "intercept": np.zeros(1)},
                           pd.DataFrame({"gene": ["g"]}))
    weights = pd.read_csv(tmp_path / "weights.csv")
    assert weights[["variant", "weight"]].values.tolist() == [["v1", 0.5]]
    assert weights[["ref_allele", "eff_allele", "varID"]].isna().all().all()
    assert not (tmp_path / "predictdb.db").exists() and "carry no alleles" in caplog.text


def test_extra_table_by_hand():
    from tfnet_jax.tasks.genonet.export import extra_table
    weights = pd.DataFrame({"gene": ["a", "a", "c"], "variant": ["v1", "v2", "v3"]})
    genes = pd.DataFrame({"gene": ["a", "b", "c"], "r2_elastic_net": [0.30, 0.0, 0.10],
                          "elastic_net_p": [1e-4, 1.0, 0.2], "r2_genonet": [0.25, 0.2, np.nan]})
    extra = extra_table(weights, genes, np.array([0.5, 0.0, -1.0]))
    # b has no weight (no row); GenoNet is chosen nowhere: below a's elastic net, NaN for c.
    assert np.isnan(extra.pop("genonet.R2")[1])
    assert extra.to_dict("list") == {
        "gene": ["a", "c"], "genename": ["a", "c"], "n.snps.in.model": [2, 1], "pred.perf.R2": [0.30, 0.10],
        "pred.perf.pval": [1e-4, 0.2], "intercept": [0.5, -1.0], "genonet_chosen": [0, 0]}
    genes.loc[2, "r2_genonet"] = 0.15
    assert extra_table(weights, genes, np.zeros(3))["genonet_chosen"].tolist() == [0, 1]


def test_allele_flips_by_hand():
    from tfnet_jax.data.io.plink import allele_flips
    run = np.array([["T", "C"], ["A", "G"], ["G", "T"]])
    np.testing.assert_array_equal(allele_flips(run, np.array([["t", "c"], ["G", "A"], ["G", "T"]]),
                                               ["s0", "s1", "s2"], "x.bim"), [False, True, False])
    with pytest.raises(DataError, match=r"x\.bim: 1 variant\(s\).*s2: G/C there, G/T in the run"):
        allele_flips(run, np.array([["T", "C"], ["A", "G"], ["G", "C"]]), ["s0", "s1", "s2"], "x.bim")
