"""Tests of the file loaders: tables, edge lists, signatures, data directories, splits."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT

from tfnet_jax.data.io.tables import read_table
from tfnet_jax.data.networks import layer_from_edges, read_edge_list
from tfnet_jax.data.perturbation.container import (
    SPLIT_NAMES,
    PerturbationData,
    SignatureTable,
)
from tfnet_jax.data.perturbation.datadir import load_data_dir
from tfnet_jax.data.perturbation.signatures import (
    read_node_features,
    read_signature_table,
    read_splits_table,
)
from tfnet_jax.data.splits import assign_splits, split_counts
from tfnet_jax.errors import DataError

REAL_DATA = REPO_ROOT.parent / "shared/data/l1000_genetic"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def edge_rows(edges) -> list[tuple[str, str, float]]:
    return [(a, b, float(w)) for a, b, w in edges.itertuples(index=False)]


# --- edge lists ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, text", [
    ("net.tsv", "gene_a\tgene_b\tweight\n1\t2\t0.5\n2\t3\t1.5\n"),
    ("net.csv", "gene_a,gene_b,weight\n1,2,0.5\n2,3,1.5\n"),
    ("net.txt", "gene_a  gene_b weight\n1   2 0.5\n 2 3\t1.5\n"),
    ("net.tsv.gz", "gene_a\tgene_b\tweight\n1\t2\t0.5\n2\t3\t1.5\n"),
    ("net.txt.gz", "gene_a,gene_b,weight\n1, 2,0.5\n2,3 ,1.5\n"),
])
def test_edge_list_formats(tmp_path, name, text):
    edges = read_edge_list(write(tmp_path / name, text))
    assert edge_rows(edges) == [("1", "2", 0.5), ("2", "3", 1.5)]
    assert edges["weight"].dtype == np.float32


def test_edge_list_without_weight_column(tmp_path):
    edges = read_edge_list(write(tmp_path / "net.csv", "gene_b,gene_a\nB,A\nC,B\n"))
    assert edge_rows(edges) == [("A", "B", 1.0), ("B", "C", 1.0)]


def test_edge_list_policy_self_loops_and_duplicates(tmp_path):
    text = ("gene_a,gene_b,weight\n"
            "B,A,0.2\n"   # reversed: becomes (A, B)
            "A,A,5.0\n"   # self-loop: dropped
            "A,B,0.7\n"   # duplicate of (A, B): max weight kept
            "C,B,0.1\n"
            "B,C,0.3\n"   # reversed duplicate of (B, C)
            "A,C,0.4\n"
            "C,C,1.0\n")
    report: dict = {}
    edges = read_edge_list(write(tmp_path / "net.csv", text), report=report)
    assert edge_rows(edges) == [("A", "B", pytest.approx(0.7)), ("A", "C", pytest.approx(0.4)),
                                ("B", "C", pytest.approx(0.3))]
    assert report == {"self_loops": 2, "duplicates": 2}


def test_edge_list_keeps_string_ids(tmp_path):
    edges = read_edge_list(write(tmp_path / "net.tsv", "gene_a\tgene_b\n007\t95\n95\t1e3\n"))
    assert edge_rows(edges) == [("007", "95", 1.0), ("1e3", "95", 1.0)]


@pytest.mark.parametrize("text, where", [
    ("gene_a,gene_b,weight\n1,2,0.5\n2,3,heavy\n", "line 3, column 'weight'"),
    ("gene_a,gene_b,weight\n1,2,0.5\n\n2,3,nan\n", "line 4, column 'weight'"),
    ("gene_a,gene_b,weight\n1,2,inf\n", "line 2, column 'weight'"),
    ("gene_a,gene_b,weight\n1,2,0.5\n2,3,-1\n", "line 3, column 'weight'"),
    ("gene_a,gene_b,weight\n1,2,0\n", "line 2, column 'weight'"),
    ("gene_a,gene_b,weight\n1,,0.5\n", "line 2, column 'gene_b'"),
    ("gene_a,gene_b,weight\n1,2,0.5\n1,2,3,4\n", "line 3"),
])
def test_edge_list_bad_values_name_file_and_line(tmp_path, text, where):
    path = write(tmp_path / "bad_net.csv", text)
    with pytest.raises(DataError) as err:
        read_edge_list(path)
    assert str(path) in str(err.value) and where in str(err.value)


def test_edge_list_missing_columns(tmp_path):
    path = write(tmp_path / "net.tsv", "source\ttarget\n1\t2\n")
    with pytest.raises(DataError, match=r"missing required column.*'gene_a', 'gene_b'") as err:
        read_edge_list(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("text", ["", "gene_a\tgene_b\tweight\n", "gene_a\tgene_b\n\n\n"])
def test_empty_network_file(tmp_path, text):
    path = write(tmp_path / "empty.tsv", text)
    with pytest.raises(DataError) as err:
        read_edge_list(path)
    assert str(path) in str(err.value)


def test_edge_list_of_only_self_loops(tmp_path):
    path = write(tmp_path / "loops.tsv", "gene_a\tgene_b\n1\t1\n")
    with pytest.raises(DataError, match="no edges left") as err:
        read_edge_list(path)
    assert str(path) in str(err.value)


def test_missing_file_names_path(tmp_path):
    with pytest.raises(DataError, match="nowhere.tsv"):
        read_edge_list(tmp_path / "nowhere.tsv")


def test_layer_from_edges_orders_by_index(tmp_path):
    edges = read_edge_list(write(tmp_path / "net.csv", "gene_a,gene_b,weight\nA,C,1\nB,A,2\n"))
    layer = layer_from_edges("net", edges, {"C": 0, "B": 1, "A": 2})
    assert layer.senders.dtype == np.int32 and layer.weights.dtype == np.float32
    assert list(zip(layer.senders.tolist(), layer.receivers.tolist(), layer.weights.tolist())) == [
        (0, 2, 1.0), (1, 2, 2.0)]
    with pytest.raises(DataError, match=r"'net'.*\[A\]"):
        layer_from_edges("net", edges, {"C": 0, "B": 1})


# --- tables and signatures ----------------------------------------------------------------

def test_duplicate_header_names(tmp_path):
    path = write(tmp_path / "sig.csv", "pert_gene,5,6,5\nA,1,2,3\n")
    with pytest.raises(DataError, match=r"line 1: column name '5' appears twice") as err:
        read_signature_table(path)
    assert str(path) in str(err.value)


def test_read_table_index_is_line_number(tmp_path):
    table = read_table(write(tmp_path / "t.csv", "a,b\n1,2\n\n 3 , 4 \n"))
    assert table.index.tolist() == [2, 4]
    assert table.loc[4].tolist() == ["3", "4"]


def test_signature_table(tmp_path):
    path = write(tmp_path / "OE.csv.gz", "pert_gene,10,007,3\n95,0.5,-1,2e-1\n007, 1 ,2,3\n")
    pert_genes, readouts, values = read_signature_table(path)
    assert pert_genes.tolist() == ["95", "007"]
    assert readouts.tolist() == ["10", "007", "3"]
    assert values.dtype == np.float32
    np.testing.assert_allclose(values, [[0.5, -1, 0.2], [1, 2, 3]])


@pytest.mark.parametrize("cell, what", [
    ("nan", "NaN"), ("NA", "non-numeric"), ("-inf", "infinite"), ("1e60", "too large"), ("", "empty")])
def test_signature_bad_value_names_file_line_column(tmp_path, cell, what):
    path = write(tmp_path / "RNAi.csv", f"pert_gene,10,20\nA,1,2\nB,3,{cell}\n")
    with pytest.raises(DataError, match=what) as err:
        read_signature_table(path)
    assert f"{path}, line 3, column '20'" in str(err.value)


def test_signature_gene_listed_twice_names_both_lines(tmp_path):
    path = write(tmp_path / "RNAi.csv", "pert_gene,10\nA,1\nB,2\nA,3\n")
    with pytest.raises(DataError, match=r"'A' is listed twice, on lines 2 and 4") as err:
        read_signature_table(path)
    assert str(path) in str(err.value)


def test_signature_first_column_must_be_pert_gene(tmp_path):
    path = write(tmp_path / "RNAi.csv", "gene,10\nA,1\n")
    with pytest.raises(DataError, match=r"first column must be named 'pert_gene', not 'gene'") as err:
        read_signature_table(path)
    assert str(path) in str(err.value)


def test_node_features(tmp_path):
    genes, features = read_node_features(write(tmp_path / "nf.csv", "gene,f0,f1\n007,1,2\n8,3,4\n"))
    assert genes.tolist() == ["007", "8"] and features.shape == (2, 2)


def test_splits_table_errors(tmp_path):
    good = read_splits_table(write(tmp_path / "s.csv", "pert_type,pert_gene,split\nOE,007,test\n"))
    assert good.to_dict("list") == {"pert_type": ["OE"], "pert_gene": ["007"], "split": ["test"]}
    bad_value = write(tmp_path / "s2.csv", "pert_type,pert_gene,split\nOE,1,test\nOE,2,holdout\n")
    with pytest.raises(DataError, match=r"line 3, column 'split': unknown split 'holdout'") as err:
        read_splits_table(bad_value)
    assert str(bad_value) in str(err.value)
    twice = write(tmp_path / "s3.csv", "pert_type,pert_gene,split\nOE,1,test\nRNAi,1,test\nOE,1,train\n")
    with pytest.raises(DataError, match=r"listed twice, on lines 2 and 4"):
        read_splits_table(twice)
    missing = write(tmp_path / "s4.csv", "pert_type,gene,split\nOE,1,test\n")
    with pytest.raises(DataError, match=r"missing required column.*'pert_gene'"):
        read_splits_table(missing)


# --- data directories ---------------------------------------------------------------------

def make_data_dir(root: Path, splits: str | None = None) -> Path:
    write(root / "networks/ppi.tsv", "gene_a\tgene_b\tweight\n007\t95\t0.5\n95\t12\t2\n12\t12\t1\n")
    write(root / "networks/coexpr.csv.gz", "gene_a,gene_b\n95,300\n")
    write(root / "signatures/RNAi.csv", "pert_gene,r1,r2,r3\n95,1,2,3\n007,4,5,6\n500,7,8,9\n")
    write(root / "signatures/OE.csv.gz", "pert_gene,r3,r1,r2\n12,3,1,2\n")  # other column order
    write(root / "node_features_2.csv", "gene,f0,f1\n95,1,1\nlonely,2,2\n")
    if splits is not None:
        write(root / "splits.csv", splits)
    return root


def test_load_data_dir(tmp_path):
    root = make_data_dir(tmp_path / "data", "pert_type,pert_gene,split\nRNAi,007,test\nRNAi,500,valid\n")
    data = load_data_dir(root)
    assert isinstance(data, PerturbationData) and data.source == str(root)
    # isolated genes (readouts, feature-only, perturbed-only) are in the index
    assert data.genes.tolist() == sorted(["007", "12", "300", "500", "95", "lonely", "r1", "r2", "r3"])
    assert [layer.name for layer in data.layers] == ["coexpr", "ppi"]
    pos = data.gene_position()
    ppi = data.layers[1]
    assert sorted(zip(ppi.senders.tolist(), ppi.receivers.tolist())) == sorted(
        [tuple(sorted((pos["007"], pos["95"]))), tuple(sorted((pos["95"], pos["12"])))])
    assert data.pert_types == ["OE", "RNAi"]
    assert data.readout_genes.tolist() == ["r3", "r1", "r2"]  # first file (OE) fixes the order
    rnai = data.signatures["RNAi"]
    np.testing.assert_array_equal(rnai.values, [[3, 1, 2], [6, 4, 5], [9, 7, 8]])
    assert data.genes[rnai.pert_index].tolist() == ["95", "007", "500"]
    assert data.node_features.shape == (9, 2) and data.node_features.dtype == np.float32
    assert data.genes[data.has_features].tolist() == ["95", "lonely"]
    assert data.node_features[pos["lonely"]].tolist() == [2, 2]
    assert not data.node_features[pos["007"]].any()
    # RNAi genes the splits file does not name are train; OE is not listed, so has no entry
    assert list(data.splits) == ["RNAi"]
    assert data.splits["RNAi"].tolist() == ["train", "test", "valid"]


def test_load_data_dir_without_optional_files(tmp_path):
    root = make_data_dir(tmp_path / "data")
    (root / "node_features_2.csv").unlink()
    data = load_data_dir(root)
    assert data.splits is None and data.node_features is None and data.has_features is None


def test_load_data_dir_missing_root_and_parts(tmp_path):
    with pytest.raises(DataError, match="nope"):
        load_data_dir(tmp_path / "nope")
    root = make_data_dir(tmp_path / "data")
    for path in (root / "networks").iterdir():
        path.unlink()
    with pytest.raises(DataError, match="no network layer files"):
        load_data_dir(root)


def test_load_data_dir_two_feature_files(tmp_path):
    root = make_data_dir(tmp_path / "data")
    write(root / "node_features_3.csv.gz", "gene,f0\n95,1\n")
    with pytest.raises(DataError, match="node_features_2.csv.*node_features_3.csv.gz"):
        load_data_dir(root)


def test_readout_columns_differ(tmp_path):
    root = make_data_dir(tmp_path / "data")
    write(root / "signatures/RNAi.csv", "pert_gene,r1,r2,r9\n95,1,2,3\n")
    with pytest.raises(DataError, match=r"RNAi.csv: readout columns differ.*r9.*r3") as err:
        load_data_dir(root)
    assert str(root / "signatures/RNAi.csv") in str(err.value)


def test_empty_network_file_in_data_dir(tmp_path):
    root = make_data_dir(tmp_path / "data")
    write(root / "networks/empty.tsv", "")
    with pytest.raises(DataError, match=r"empty.tsv: empty file"):
        load_data_dir(root)


@pytest.mark.parametrize("splits, message", [
    ("pert_type,pert_gene,split\nRNAi,95,test\nRNAi,12,test\n",
     r"splits.csv, line 3: gene '12' is not a perturbed gene of type 'RNAi'"),
    ("pert_type,pert_gene,split\nRNAi,95,test\nCRISPR,95,test\n",
     r"splits.csv, line 3: perturbation type 'CRISPR' has no signature file"),
    ("pert_type,pert_gene,split\nRNAi,95,tset\n", r"splits.csv, line 2, column 'split': unknown split 'tset'"),
])
def test_bad_splits_file(tmp_path, splits, message):
    root = make_data_dir(tmp_path / "data", splits)
    with pytest.raises(DataError, match=message):
        load_data_dir(root)


# --- split assignment ---------------------------------------------------------------------

def data_with_types(genes_by_type: dict[str, list[str]], splits=None) -> PerturbationData:
    genes = np.asarray(sorted({g for gs in genes_by_type.values() for g in gs}), dtype=str)
    pos = {g: i for i, g in enumerate(genes.tolist())}
    signatures = {
        t: SignatureTable(pert_type=t, pert_genes=np.asarray(gs, dtype=str),
                          pert_index=np.asarray([pos[g] for g in gs], dtype=np.int32),
                          values=np.zeros((len(gs), 2), dtype=np.float32))
        for t, gs in genes_by_type.items()}
    return PerturbationData(genes=genes, layers=[], readout_genes=genes[:2],
                            signatures=signatures, splits=splits)


def test_assign_splits_deterministic_and_sized():
    genes = [f"g{i}" for i in range(40)]
    data = data_with_types({"RNAi": genes, "OE": genes[:20]})
    first = assign_splits(data, seed=3)
    again = assign_splits(data, seed=3)
    assert all(np.array_equal(first[t], again[t]) for t in first)
    assert split_counts(first) == {"RNAi": {"train": 28, "valid": 4, "test": 8},
                                   "OE": {"train": 14, "valid": 2, "test": 4}}
    assert set(np.concatenate(list(first.values())).tolist()) <= set(SPLIT_NAMES)
    other_seed = assign_splits(data, seed=4)
    assert not np.array_equal(first["RNAi"], other_seed["RNAi"])


def test_assign_splits_stable_when_a_gene_is_removed():
    genes = [f"g{i}" for i in range(20)]  # 20 -> 4 test, 2 valid; 19 -> the same counts
    full = assign_splits(data_with_types({"RNAi": genes}), seed=0)["RNAi"]
    removed = int(np.flatnonzero(full == "train")[0])
    kept = [g for i, g in enumerate(genes) if i != removed]
    fewer = assign_splits(data_with_types({"RNAi": kept}), seed=0)["RNAi"]
    assert fewer.tolist() == [s for i, s in enumerate(full.tolist()) if i != removed]


def test_assign_splits_respects_given_table_and_carves_valid():
    genes = [f"g{i}" for i in range(10)]
    with_valid = np.array(["test", "valid"] + ["train"] * 8)
    no_valid = np.array(["test", "test"] + ["train"] * 8)
    data = data_with_types({"RNAi": genes, "OE": genes, "CRISPR": genes},
                           splits={"RNAi": with_valid, "OE": no_valid})
    result = assign_splits(data, seed=1, valid_frac=0.25)
    assert result["RNAi"].tolist() == with_valid.tolist()
    oe = result["OE"]
    assert oe[:2].tolist() == ["test", "test"]
    assert split_counts({"OE": oe})["OE"] == {"train": 6, "valid": 2, "test": 2}
    assert np.array_equal(oe, assign_splits(data, seed=1, valid_frac=0.25)["OE"])
    assert split_counts({"C": result["CRISPR"]})["C"] == {"train": 6, "valid": 2, "test": 2}


def test_assign_splits_too_few_genes():
    data = data_with_types({"RNAi": [f"g{i}" for i in range(20)], "OE": ["a", "b", "c", "d", "e", "f"]})
    with pytest.raises(DataError, match=r"'OE' has too few genes to split \(6 genes"):
        assign_splits(data, seed=0)
    no_test = data_with_types({"OE": [f"g{i}" for i in range(10)]},
                              splits={"OE": np.array(["train"] * 9 + ["valid"])})
    with pytest.raises(DataError, match="'OE' has too few genes"):
        assign_splits(no_test, seed=0)


# --- the real L1000 subset ----------------------------------------------------------------

def test_real_l1000_genetic_data():
    if not REAL_DATA.is_dir():
        pytest.skip(f"{REAL_DATA} is absent")
    data = load_data_dir(REAL_DATA)
    assert [layer.name for layer in data.layers] == ["corum", "disease", "drug"]
    assert {t: s.num_perts for t, s in data.signatures.items()} == {"CRISPR": 302, "OE": 181, "RNAi": 243}
    assert data.readout_genes.shape == (978,)
    assert int(data.has_features.sum()) == 584 and data.node_features.shape[1] == 512
    assert all(s.values.shape == (s.num_perts, 978) for s in data.signatures.values())
    assert "95" in data.gene_position() and data.splits is None
    assert set(split_counts(assign_splits(data, seed=0))) == {"CRISPR", "OE", "RNAi"}
