"""PLINK genotype loading (tfnet_jax.data.genotype.readers) and the msprime simulation (genosim)."""
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tfnet_jax.data.genotype.readers import (
    impute_train_mean,
    read_genotype_data,
    regress_out_covariates,
)
from tfnet_jax.data.genotype.synthetic import (
    GenoSimConfig,
    load_simulated,
    simulate_genotypes,
)
from tfnet_jax.errors import DataError

TINY = GenoSimConfig(num_genes=6, num_individuals=60, region_length=100_000, max_variants=80,
                     null_fraction=0.34, seed=3)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulate_genotypes(TINY, tmp_path_factory.mktemp("genosim"))


def _cfg(sim, **extra):
    return {"bed": sim["bed"], "expression": sim["expression"], "genes": sim["genes"],
            "annotations": sim["annotations"], **extra}


def _copy_plink(sim, dest: Path) -> str:
    for ext in (".bed", ".bim", ".fam"):
        shutil.copy(sim["bed"] + ext, dest / f"geno{ext}")
    return str(dest / "geno")


def _write_plink(dest: Path, dosages, bp, iids, chrom="1"):
    from bed_reader import to_bed
    v = dosages.shape[1]
    to_bed(dest / "g.bed", np.asarray(dosages, np.float32), properties={
        "iid": iids, "fid": iids, "sid": [f"s{j}" for j in range(v)], "chromosome": [chrom] * v,
        "bp_position": bp, "allele_1": ["T"] * v, "allele_2": ["C"] * v})
    return str(dest / "g")


# ---------------------------------------------------------------- simulation round trip

def test_round_trip_matches_simulation(sim):
    data = read_genotype_data(_cfg(sim))
    truth = json.loads(Path(sim["truth"]).read_text())
    assert not data.skipped and len(data.windows) == TINY.num_genes
    assert list(data.expression.columns) == [w.gene for w in data.windows]
    assert data.annotation_names == [f"annot{j}" for j in range(TINY.num_annotations)]
    column = {sid: j for j, sid in enumerate(sim["variant_ids"])}
    annotations = pd.read_csv(sim["annotations"], index_col=0)
    for w in data.windows:
        assert len(w.variant_ids) == truth["genes"][w.gene]["num_variants"] > TINY.num_causal
        assert all(v.startswith(w.gene + "_") for v in w.variant_ids)  # no neighbour leaks in
        assert np.all(np.diff(w.positions) > 0)
        cols = [column[v] for v in w.variant_ids]
        np.testing.assert_array_equal(w.float_dosages(), sim["dosages"][:, cols].astype(np.float32))
        np.testing.assert_allclose(w.annotations, annotations.loc[w.variant_ids].to_numpy(), rtol=1e-5)
        assert w.float_dosages().dtype == np.float32 and w.annotations.dtype == np.float32
        assert w.store.codes.dtype == np.int8  # PLINK hard calls: 1 byte a dosage
    np.testing.assert_allclose(data.expression.to_numpy(),
                               pd.read_csv(sim["expression"], index_col=0).to_numpy(), rtol=1e-5)


def test_default_window_gets_only_own_region(tmp_path):
    # 30 genes: chromosomes 1-8 hold two regions each, which a 1 Mb window must keep apart.
    cfg = GenoSimConfig(num_genes=30, num_individuals=10, region_length=20_000, max_variants=20)
    sim = simulate_genotypes(cfg, tmp_path)
    data = read_genotype_data({"bed": sim["bed"], "expression": sim["expression"], "genes": sim["genes"]})
    counts = {g: rec["num_variants"] for g, rec in json.loads(Path(sim["truth"]).read_text())["genes"].items()}
    assert len(data.windows) + len(data.skipped) == 30 and len(data.windows) >= 25
    for w in data.windows:
        assert len(w.variant_ids) == counts[w.gene] and all(v.startswith(w.gene + "_") for v in w.variant_ids)


def test_max_variants_keeps_nearest(sim):
    full = read_genotype_data(_cfg(sim, genes_subset=["gene0001"])).windows[0]
    kept = read_genotype_data(_cfg(sim, genes_subset=["gene0001"], max_variants=7)).windows[0]
    distance = np.maximum(full.start - full.positions, 0) + np.maximum(full.positions - full.end, 0)
    assert len(kept.positions) == 7 and np.all(np.diff(kept.positions) > 0)
    assert distance[np.isin(full.positions, kept.positions)].max() <= np.sort(distance)[6]


def test_ld_is_real(sim):
    data = read_genotype_data(_cfg(sim))
    near, far = [], []
    for w in data.windows:
        r2 = np.corrcoef(w.float_dosages().T) ** 2
        near.append(np.mean(np.diag(r2, 1)))
        gap = np.abs(w.positions[:, None] - w.positions[None, :]) > TINY.region_length // 2
        far.append(r2[gap].mean())
    assert np.mean(near) > 2 * np.mean(far)


def test_heritability_and_truth(tmp_path):
    cfg = GenoSimConfig(num_genes=12, num_individuals=300, region_length=50_000, max_variants=60,
                        null_fraction=0.25, heritability=0.4, seed=1)
    data = load_simulated(cfg, tmp_path)
    truth, genetic = data.extras["truth"], data.extras["genetic"]
    assert (genetic.index == data.individuals).all()
    shares = []
    for gene in data.expression.columns:
        g, y = genetic[gene].to_numpy(), data.expression[gene].to_numpy()
        if truth["genes"][gene]["heritability"] == 0:
            assert not truth["genes"][gene]["causal"] and np.allclose(g, 0)
        else:
            assert len(truth["genes"][gene]["causal"]) == cfg.num_causal
            assert {"dominance", "interaction"} <= set(truth["genes"][gene])
            shares.append(np.var(g) / np.var(y))
    assert len(shares) == 9
    assert abs(np.mean(shares) - 0.4) < 0.05
    # Annotations are informative: causal variants have higher annotation scores than the rest.
    w = np.asarray(truth["annotation_weights"])
    scores = {v: s for win in data.windows for v, s in zip(win.variant_ids, win.annotations @ w)}
    causal = {v for rec in truth["genes"].values() for v in rec["causal"]}
    assert np.mean([scores[v] for v in causal]) > np.mean(list(scores.values())) + 0.5
    trait = pd.read_csv(data.extras["trait"])
    assert len(trait) == cfg.num_individuals and len(truth["trait"]["genes"]) == cfg.trait_genes


def test_simulation_rejects_bad_config(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        simulate_genotypes(GenoSimConfig(num_genes=1, mode="epistatic"), tmp_path)


# ---------------------------------------------------------------- loader policies and errors

def test_skipped_genes_with_reasons(sim, tmp_path):
    genes = pd.read_csv(sim["genes"], dtype=str)
    extra = pd.DataFrame([("far", "1", "150000000", "150001000"), ("other_chrom", "chrX", "100", "200"),
                          ("no_expr", "chr2", "1000", "2000")], columns=genes.columns)
    pd.concat([genes, extra]).to_csv(tmp_path / "genes.csv", index=False)
    expr = pd.read_csv(sim["expression"], index_col=0)
    expr["far"] = expr["other_chrom"] = 0.0
    expr.to_csv(tmp_path / "expr.csv")
    data = read_genotype_data(_cfg(sim, genes=tmp_path / "genes.csv", expression=tmp_path / "expr.csv",
                                   genes_subset=["far", "other_chrom", "no_expr", "gene0000", "gene0002", "nope"]))
    assert [w.gene for w in data.windows] == ["gene0000", "gene0002"]
    assert data.skipped["far"] == "no variants within 1000000 bp of 1:150000000-150001000"
    assert data.skipped["other_chrom"].startswith("chromosome 'X' is not in") and "geno.bim" in data.skipped["other_chrom"]
    assert "not in the expression table" in data.skipped["no_expr"]
    assert "not in the genes table" in data.skipped["nope"]
    assert list(data.expression.columns) == ["gene0000", "gene0002"]
    # data.chrom: one chromosome's genes ("chr2" and 2 name the same one); none there is an error
    two = read_genotype_data(_cfg(sim, genes=tmp_path / "genes.csv", expression=tmp_path / "expr.csv",
                                  chrom=2))
    assert two.windows and {w.chrom for w in two.windows} == {"2"} and "no_expr" in two.skipped
    with pytest.raises(DataError, match=r"no gene on chromosome 7 \(data.chrom\); chromosomes there: 1, 2, 3, 4, 5, 6, X"):
        read_genotype_data(_cfg(sim, genes=tmp_path / "genes.csv", expression=tmp_path / "expr.csv", chrom="chr7"))


def test_filters_order_and_missing(tmp_path, caplog):
    rng = np.random.default_rng(0)
    iids = [f"i{i}" for i in range(40)]
    x = rng.integers(0, 3, size=(40, 5)).astype(np.float32)
    x[:, 1] = 2.0                      # monomorphic
    x[:, 2] = 0.0
    x[39, 2] = 1.0                     # MAF 1/60 < 0.05 over the 30 kept individuals
    x[20, 3] = np.nan                  # missing stays missing
    bed = _write_plink(tmp_path, x, [100, 200, 300, 400, 500], iids)
    order = iids[::-1][:30] + ["stranger"]            # other order, 10 only in .fam, 1 only here
    pd.DataFrame({"IID": order, "A": rng.normal(size=31), "B": rng.normal(size=31)}).to_csv(
        tmp_path / "expr.csv", index=False)
    pd.DataFrame({"gene": ["A", "B"], "chrom": ["1", "1"], "start": [250, 5000], "end": [260, 5000]}).to_csv(
        tmp_path / "genes.csv", index=False)
    cfg = {"bed": bed, "expression": tmp_path / "expr.csv", "genes": tmp_path / "genes.csv",
           "maf": 0.05, "window": 300}
    # An expressed individual without genotypes: mismatched IDs, unless explicitly allowed.
    with pytest.raises(DataError, match=r"expr.csv: 1 of 31 individuals are not in .*g.fam: "
                                         r"\[stranger\] \(1 in all\); .* data.allow_missing_individuals=true"):
        read_genotype_data(cfg)
    cfg["allow_missing_individuals"] = True
    with caplog.at_level(logging.WARNING):
        data = read_genotype_data(cfg)
    assert "10 only in the .fam, 1 only in the expression" in caplog.text
    assert list(data.individuals) == order[:30]
    (w,) = data.windows
    assert list(w.variant_ids) == ["s0", "s3", "s4"]
    rows = [iids.index(i) for i in order[:30]]
    np.testing.assert_array_equal(w.float_dosages(), x[rows][:, [0, 3, 4]])
    assert np.isnan(w.float_dosages()[order.index("i20"), 1]) and np.isnan(w.float_dosages()).sum() == 1
    assert data.skipped["B"].startswith("no variants within")
    # All variants of a window filtered out -> skipped with the counts; the other gene still loads.
    pd.DataFrame({"gene": ["A", "B"], "chrom": ["1", "1"], "start": [240, 150], "end": [260, 150]}).to_csv(
        tmp_path / "genes.csv", index=False)
    data = read_genotype_data(dict(cfg, window=60))
    assert [w.gene for w in data.windows] == ["B"] and list(data.windows[0].variant_ids) == ["s0"]
    assert data.skipped["A"] == "no variant left of 2 in the window: 1 monomorphic, 1 with MAF < 0.05"


def test_no_overlap_names_both_files(sim, tmp_path):
    pd.DataFrame({"IID": ["x1", "x2"], "gene0000": [1.0, 2.0]}).to_csv(tmp_path / "expr.csv", index=False)
    with pytest.raises(DataError) as err:
        read_genotype_data(_cfg(sim, expression=tmp_path / "expr.csv"))
    assert sim["bed"] + ".fam" in str(err.value) and "expr.csv" in str(err.value) and "x1" in str(err.value)


def test_truncated_and_bad_magic_bed(sim, tmp_path):
    prefix = _copy_plink(sim, tmp_path)
    bed = Path(prefix + ".bed")
    size = bed.stat().st_size
    bed.write_bytes(bed.read_bytes()[:-5])
    with pytest.raises(DataError, match=f"geno.bed: size {size - 5} bytes, expected {size}"):
        read_genotype_data(_cfg(sim, bed=prefix))
    bed.write_bytes(b"\x00\x00\x00" + b"\x00" * (size - 3))
    with pytest.raises(DataError, match="geno.bed: not a variant-major PLINK"):
        read_genotype_data(_cfg(sim, bed=prefix))


@pytest.mark.parametrize("line, message", [("1 bad 0 100 T", "line 3: 5 fields, expected 6"),
                                            ("1 bad 0 1e5 T C", "line 3, field 'bp': '1e5' is not an integer"),
                                            ("1 bad 0 100 T C extra", "line 3: 7 fields"),
                                            ("1 bad 0 100 T C x y z", "line 3: 9 fields")])
def test_malformed_bim_names_line(sim, tmp_path, line, message):
    prefix = _copy_plink(sim, tmp_path)
    bim = Path(prefix + ".bim")
    lines = bim.read_text().splitlines()
    lines[2] = line
    bim.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message) as err:
        read_genotype_data(_cfg(sim, bed=prefix))
    assert "geno.bim" in str(err.value)


def test_duplicate_iid_and_unknown_key(sim, tmp_path):
    prefix = _copy_plink(sim, tmp_path)
    fam = Path(prefix + ".fam")
    lines = fam.read_text().splitlines()
    lines[4] = lines[1]
    fam.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="geno.fam: individual .IID. 'ind00001' is listed twice, on lines 2 and 5"):
        read_genotype_data(_cfg(sim, bed=prefix))
    from tfnet_jax.data.load import load_genotype_data
    from tfnet_jax.errors import ConfigError
    with pytest.raises(ConfigError, match="data.windw: unknown key; did you mean data.window"):
        load_genotype_data({"name": "genotypes", **_cfg(sim, windw=5)})


def test_annotations_missing_rows_and_bad_types(sim, tmp_path, caplog):
    table = pd.read_csv(sim["annotations"], index_col=0)
    table.iloc[5:].to_csv(tmp_path / "annot.csv")
    with caplog.at_level(logging.WARNING):
        data = read_genotype_data(_cfg(sim, annotations=tmp_path / "annot.csv"))
    assert "5 loaded variants are not in" in caplog.text
    means = table.iloc[5:].to_numpy().mean(axis=0)
    first = data.windows[0]
    np.testing.assert_allclose(first.annotations[:5], np.tile(means, (5, 1)), rtol=1e-5)
    np.testing.assert_allclose(first.annotations[5:], table.loc[first.variant_ids[5:]].to_numpy(), rtol=1e-5)
    table["kind"] = "enhancer"
    table.to_csv(tmp_path / "annot.csv")
    with pytest.raises(DataError, match="annot.csv, line 2, column 'kind': non-numeric value 'enhancer'"):
        read_genotype_data(_cfg(sim, annotations=tmp_path / "annot.csv"))


def test_covariates_and_parquet_expression(sim, tmp_path):
    expr = pd.read_csv(sim["expression"], index_col=0)
    expr.iloc[::-1].reset_index().to_parquet(tmp_path / "expr.parquet", index=False)
    cov = pd.DataFrame({"pc1": np.arange(60.0), "sex": np.arange(60) % 2}, index=expr.index)
    cov.iloc[:50].to_csv(tmp_path / "cov.tsv", sep="\t")
    data = read_genotype_data(_cfg(sim, expression=tmp_path / "expr.parquet", covariates=tmp_path / "cov.tsv"))
    assert len(data.individuals) == 50 and list(data.covariates.index) == list(data.individuals)
    assert data.individuals[0] == "ind00049"  # expression order, restricted to covariate rows
    np.testing.assert_allclose(data.expression.loc[data.individuals].to_numpy(),
                               expr.loc[data.individuals].to_numpy(), rtol=1e-6)


# ---------------------------------------------------------------- per-fold helpers

def test_impute_train_mean_uses_train_rows_only():
    x = np.array([[0.0, np.nan], [2.0, 1.0], [np.nan, np.nan], [np.nan, 2.0], [2.0, 0.0]], np.float32)
    train = np.array([True, True, True, False, False])
    out = impute_train_mean(x, train)
    # Train mean of column 0 is 1.0 (all rows: 4/3); column 1: 1.0 (all rows: 1.0), rows 3-4 untouched.
    np.testing.assert_allclose(out[:, 0], [0, 2, 1, 1, 2])
    np.testing.assert_allclose(out[:, 1], [1, 1, 1, 2, 0])
    assert np.isnan(x).sum() == 4 and out.dtype == np.float32
    all_missing = impute_train_mean(np.array([[np.nan], [1.0]]), np.array([True, False]))
    np.testing.assert_allclose(all_missing[:, 0], [0.0, 1.0])


def test_regress_out_covariates_fits_on_train_only():
    rng = np.random.default_rng(0)
    c = rng.normal(size=(50, 2))
    y = 3 + c @ [1.0, -2.0] + 0.1 * rng.normal(size=50)
    train = np.arange(50) < 40
    y_bad = y.copy()
    y_bad[~train] += 100.0  # held-out outliers must not move the fit
    res = regress_out_covariates(y_bad, c, train)
    np.testing.assert_allclose(res[train], regress_out_covariates(y, c, train)[train])
    assert np.abs(res[train]).max() < 0.5 and np.all(res[~train] > 99)
    two = regress_out_covariates(np.column_stack([y, -y]), c, train)
    np.testing.assert_allclose(two[:, 0], -two[:, 1])
