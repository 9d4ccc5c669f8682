"""Expression readers for TFNet: every format round-trips; every bad input names its place."""
import logging

import numpy as np
import pandas as pd
import pytest
import scipy.sparse

from tfnet_jax.data.expression.readers import (
    apply_transform,
    read_expression_data,
    read_expression_matrix,
    write_expression_h5ad,
)
from tfnet_jax.data.genes import read_gene_list
from tfnet_jax.errors import DataError

SAMPLES = [f"s{i}" for i in range(5)]
GENES = ["TF1", "TF2", "TF3", "G1", "G2", "G3"]
VALUES = np.arange(30, dtype=np.float64).reshape(5, 6) * 1.5


def _frame(values=VALUES, samples=SAMPLES, genes=GENES):
    frame = pd.DataFrame(values, columns=genes)
    frame.insert(0, "sample", samples)
    return frame


def _lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def _check(result, groups=None):
    values, samples, genes, got_groups = result
    np.testing.assert_allclose(values, VALUES)
    assert samples.tolist() == SAMPLES and genes.tolist() == GENES
    assert (got_groups is None) if groups is None else got_groups.tolist() == groups


def test_formats_round_trip(tmp_path):
    _frame().to_csv(tmp_path / "m.csv", index=False)
    _frame().to_csv(tmp_path / "m.tsv", sep="\t", index=False)
    _frame().to_csv(tmp_path / "m.txt", sep="\t", index=False)
    _frame().to_parquet(tmp_path / "m.parquet", index=False)
    _frame().set_index("sample").to_parquet(tmp_path / "indexed.parquet")
    write_expression_h5ad(tmp_path / "m.h5ad", VALUES, SAMPLES, GENES)
    for name in ["m.csv", "m.tsv", "m.txt", "m.parquet", "indexed.parquet", "m.h5ad"]:
        _check(read_expression_matrix(tmp_path / name))


def test_genes_x_samples_and_sparse_h5ad(tmp_path):
    transposed = pd.DataFrame(VALUES.T, columns=SAMPLES)
    transposed.insert(0, "gene", GENES)
    transposed.to_csv(tmp_path / "t.csv", index=False)
    _check(read_expression_matrix(tmp_path / "t.csv", orientation="genes_x_samples"))
    import anndata
    anndata.AnnData(X=scipy.sparse.csr_matrix(VALUES.astype(np.float32)),
                    obs=pd.DataFrame(index=SAMPLES), var=pd.DataFrame(index=GENES)).write_h5ad(tmp_path / "s.h5ad")
    _check(read_expression_matrix(tmp_path / "s.h5ad"))


def test_group_column(tmp_path):
    groups = ["a", "a", "b", "b", "c"]
    frame = _frame()
    frame.insert(3, "study", groups)
    frame.to_csv(tmp_path / "g.csv", index=False)
    _check(read_expression_matrix(tmp_path / "g.csv", group_column="study"), groups)
    write_expression_h5ad(tmp_path / "g.h5ad", VALUES, SAMPLES, GENES, obs={"study": groups})
    _check(read_expression_matrix(tmp_path / "g.h5ad", group_column="study"), groups)
    with pytest.raises(DataError, match=r"g\.h5ad.*'tissue'.*study"):
        read_expression_matrix(tmp_path / "g.h5ad", group_column="tissue")
    with pytest.raises(DataError, match=r"g\.csv.*'tissue'.*study"):
        read_expression_matrix(tmp_path / "g.csv", group_column="tissue")


@pytest.mark.parametrize("edit, pattern", [
    (lambda f: f.assign(sample=["s0", "s1", "s1", "s3", "s4"]), r"bad\.csv.*sample id 's1'.*line 3 and line 4"),
    (lambda f: f.astype({"G2": object}).assign(G2=[1, 2, "x7", 4, "y"]),
     r"bad\.csv, column 'G2': non-numeric value 'x7' at line 4 \(2 such"),
    (lambda f: f.assign(G1=[1, np.nan, 3, np.inf, np.nan]), r"bad\.csv: 3 missing.*sample 's1', gene 'G1'"),
])
def test_table_errors(tmp_path, edit, pattern):
    edit(_frame()).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=pattern):
        read_expression_matrix(tmp_path / "bad.csv")


def test_file_errors(tmp_path):
    (tmp_path / "dup.csv").write_text("sample,G1,G1\ns0,1,2\n")
    with pytest.raises(DataError, match=r"dup\.csv.*'G1'"):
        read_expression_matrix(tmp_path / "dup.csv")
    with pytest.raises(DataError, match=r"m\.xlsx.*unknown"):
        read_expression_matrix(tmp_path / "m.xlsx")
    with pytest.raises(DataError, match=r"nope\.h5ad.*not found"):
        read_expression_matrix(tmp_path / "nope.h5ad")
    (tmp_path / "empty.csv").write_text("sample\ns0\ns1\n")
    with pytest.raises(DataError, match=r"empty\.csv.*empty matrix"):
        read_expression_matrix(tmp_path / "empty.csv")
    write_expression_h5ad(tmp_path / "full.h5ad", VALUES, SAMPLES, GENES)
    data = (tmp_path / "full.h5ad").read_bytes()
    (tmp_path / "cut.h5ad").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.h5ad.*truncated or corrupt"):
        read_expression_matrix(tmp_path / "cut.h5ad")
    with pytest.raises(DataError, match="orientation"):
        read_expression_matrix(tmp_path / "full.h5ad", orientation="sideways")


def test_gene_list(tmp_path):
    path = _lines(tmp_path / "tfs.txt", ["# TFs", " TF1 ", "", "TF2"])
    assert read_gene_list(path) == ["TF1", "TF2"]
    _lines(path, ["TF1", "TF2", "# c", "TF1"])
    with pytest.raises(DataError, match=r"tfs\.txt.*'TF1'.*lines 1 and 4"):
        read_gene_list(path)
    with pytest.raises(DataError, match=r"none\.txt.*not found"):
        read_gene_list(tmp_path / "none.txt")


def test_transforms():
    counts = np.array([[1.0, 3.0, 0.0], [10.0, 0.0, 30.0]])
    np.testing.assert_allclose(apply_transform(counts, "none"), counts)
    np.testing.assert_allclose(apply_transform(counts, "log1p"), np.log1p(counts))
    cpm = apply_transform(counts, "cpm_log1p")
    np.testing.assert_allclose(cpm[0], np.log1p([250_000.0, 750_000.0, 0.0]))
    np.testing.assert_allclose(cpm[1], np.log1p([250_000.0, 0.0, 750_000.0]))
    np.testing.assert_allclose(np.expm1(cpm).sum(axis=1), 1e6)
    with pytest.raises(DataError, match=r"'b'.*-0\.5.*already log-scaled"):
        apply_transform(np.array([[1.0, 2.0], [-0.5, 1.0]]), "log1p", samples=np.array(["a", "b"]))
    with pytest.raises(DataError, match="zero total"):
        apply_transform(np.array([[0.0, 0.0]]), "cpm_log1p")
    with pytest.raises(DataError, match="transform must be"):
        apply_transform(counts, "zscore")


@pytest.fixture()
def files(tmp_path):
    write_expression_h5ad(tmp_path / "x.h5ad", VALUES, SAMPLES, GENES, obs={"study": list("aabbc")})
    return tmp_path


def test_load_expression(files):
    _lines(files / "tfs.txt", ["TF3", "TF1"])
    data = read_expression_data({"path": files / "x.h5ad", "tf_list": files / "tfs.txt",
                            "transform": "log1p", "group_column": "study"})
    assert data.tf_genes.tolist() == ["TF3", "TF1"]
    assert data.target_genes.tolist() == ["TF2", "G1", "G2", "G3"]
    assert data.values.dtype == np.float32 and data.num_samples == 5
    np.testing.assert_allclose(data.inputs(), np.log1p(VALUES[:, [2, 0]]), rtol=1e-6)
    np.testing.assert_allclose(data.targets(), np.log1p(VALUES[:, [1, 3, 4, 5]]), rtol=1e-6)
    assert data.groups.tolist() == list("aabbc")
    # A targets file: TFs listed in it are inputs only.
    _lines(files / "targets.txt", ["G3", "TF1", "G1"])
    data = read_expression_data({"path": files / "x.h5ad", "tf_list": files / "tfs.txt", "targets": files / "targets.txt"})
    assert data.target_genes.tolist() == ["G3", "G1"]
    np.testing.assert_allclose(data.targets(), VALUES[:, [5, 3]])


def test_missing_tfs(files, caplog):
    _lines(files / "tfs.txt", ["TF1", "# x", "TFX", "TF2", "TFY"])
    cfg = {"path": files / "x.h5ad", "tf_list": files / "tfs.txt"}
    with pytest.raises(DataError, match=r"tfs\.txt: 2 tf genes.*TFX \(line 3\), TFY \(line 5\); "
                                        r"2 of 4 are present.*data\.missing_tfs=drop"):
        read_expression_data(cfg)
    with caplog.at_level(logging.WARNING):
        data = read_expression_data({**cfg, "missing_tfs": "drop"})
    assert data.tf_genes.tolist() == ["TF1", "TF2"] and "dropped 2 of 4" in caplog.text
    _lines(files / "targets.txt", ["G1", "NOPE"])
    _lines(files / "ok_tfs.txt", ["TF1"])
    with pytest.raises(DataError, match=r"targets\.txt: 1 target genes.*NOPE \(line 2\)"):
        read_expression_data({**cfg, "tf_list": files / "ok_tfs.txt", "targets": files / "targets.txt"})
    data = read_expression_data({**cfg, "missing_tfs": "drop", "targets": files / "targets.txt"})
    assert data.target_genes.tolist() == ["G1"]
    _lines(files / "ens.txt", ["ENSG0001", "ENSG0002"])
    for policy in ("error", "drop"):
        with pytest.raises(DataError, match=r"ens\.txt: none of the 2.*ENSG0001.*TF1.*Ensembl"):
            read_expression_data({**cfg, "tf_list": files / "ens.txt", "missing_tfs": policy})
    with pytest.raises(DataError, match="min_targets=5"):
        read_expression_data({**cfg, "missing_tfs": "drop", "min_targets": 5})


def test_zero_variance_genes_kept(tmp_path):
    values = VALUES.copy()
    values[:, 4] = 7.0
    write_expression_h5ad(tmp_path / "z.h5ad", values, SAMPLES, GENES)
    _lines(tmp_path / "tfs.txt", ["TF1"])
    data = read_expression_data({"path": tmp_path / "z.h5ad", "tf_list": tmp_path / "tfs.txt"})
    assert "G2" in data.target_genes.tolist() and data.values.shape == (5, 6)
