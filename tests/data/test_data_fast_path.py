"""The fast path of the table loaders against the checked path.

On a file both accept they must give identical arrays; on any file the fast path declines
(None), the public loaders raise exactly the checked path's error.
"""
from __future__ import annotations

import gzip
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tfnet_jax.data import networks
from tfnet_jax.data.io.tables import (
    block_as_float,
    column_as_str,
    read_table,
    read_table_fast,
)
from tfnet_jax.data.networks import layer_from_edges, read_edge_list
from tfnet_jax.data.perturbation import signatures
from tfnet_jax.data.perturbation.signatures import (
    read_node_features,
    read_signature_table,
)
from tfnet_jax.errors import DataError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def checked_error(function, *args) -> str:
    with pytest.raises(DataError) as err:
        function(*args)
    return str(err.value)


def assert_same_edges(path: Path) -> pd.DataFrame:
    fast_report, checked_report = {}, {}
    fast = networks._read_edge_list_fast(path, fast_report)
    checked = networks._read_edge_list_checked(path, checked_report)
    assert fast is not None, "the fast path declined a good file"
    pd.testing.assert_frame_equal(fast, checked, check_exact=True)
    assert fast_report == checked_report
    return fast


def assert_same_matrix(path: Path, key: str = "pert_gene"):
    fast = signatures._read_gene_matrix_fast(path, key)
    checked = signatures._read_gene_matrix_checked(path, key, "gene")
    assert fast is not None, "the fast path declined a good file"
    for got, want in zip(fast, checked):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    return fast


# --- good files: identical results --------------------------------------------------------

GOOD_EDGE_LISTS = [
    ("net.csv", "gene_a,gene_b,weight\nB,A,0.2\nA,A,5\nA,B,0.7\nC,B,0.1\nB,C,0.3\nA,C,0.4\n"),
    ("net.tsv", "gene_a\tgene_b\tweight\n007\t95\t0.5\n95\t12\t2\n12\t12\t1\n0095\t95\t3\n"),
    ("net.tsv.gz", "gene_a\tgene_b\tweight\n1\t2\t0.5\n2\t3\t1.5\n3\t1\t1e-3\n"),
    ("net.txt", "gene_a  gene_b weight\n1   2 0.5\n 2 3\t1.5\n"),
    ("net.txt.gz", "gene_a,gene_b,weight\n1, 2,0.5\n2,3 ,1.5\n"),
    ("padded.csv", "gene_a,gene_b,weight\n  A , B ,  0.25 \nB,  A,0.5  \n C ,A, 1\n"),
    ("quoted.csv", '"gene_a","gene_b","weight"\n"x1","x2","0.5"\n"x2",x3,2\n'),
    ("blank_mid.csv", "gene_a,gene_b,weight\nA,B,1\n\nB,C,2\n,,\nC,D,3\n\n"),
    ("crlf.csv", "gene_a,gene_b,weight\r\nA,B,1\r\nB,C,2\r\n"),
    ("nul.csv", "gene_a,gene_b,weight\nA\0x,B,2\nB,C\0,3\n"),  # pandas ends a field at NUL
    ("bom.csv", "\ufeffgene_a,gene_b,weight\nA,B,1\n"),
    ("noweight.csv", "gene_b,gene_a\nB,A\nC,B\nA,B\n"),
    ("ones.csv", "gene_a,gene_b,weight\nA,B,1\nB,C,1.0\nC,D,1\n"),
    ("extra.csv", "gene_a,note,gene_b,weight\nA,hello,B,1\nB,,C,2\n"),
    ("trailing_comma.csv", "gene_a,gene_b,weight\nA,B,1,\nB,C,2\n"),
    ("ids.tsv", "gene_a\tgene_b\tweight\n1e3\t95\t1\nNA\tnan\t2\n-1\t+1\t3\nß\tss\t4\n"),
    ("precise.csv", "gene_a,gene_b,weight\nA,B,0.1000000000000000055511151231257827\n"
                    "B,C,3.4028234663852886e38\nC,D,1.17549435e-38\nD,E,0.333333333333333314829616256247\n"),
]


@pytest.mark.parametrize("name, text", GOOD_EDGE_LISTS, ids=[n for n, _ in GOOD_EDGE_LISTS])
def test_edge_list_fast_equals_checked(tmp_path, name, text):
    edges = assert_same_edges(write(tmp_path / name, text))
    pd.testing.assert_frame_equal(read_edge_list(tmp_path / name), edges)


def test_edge_list_fast_keeps_ids_and_merge_rule(tmp_path):
    edges = assert_same_edges(write(tmp_path / "n.tsv", "gene_a\tgene_b\tweight\n"
                                    " 007\t95\t0.5\n95\t007 \t0.9\n95\t95\t1\n10\t9\t2\n"))
    assert edges.values.tolist() == [["007", "95", np.float32(0.9)], ["10", "9", np.float32(2.0)]]


GOOD_MATRICES = [
    ("OE.csv", "pert_gene,10,007,3\n95,0.5,-1,2e-1\n007, 1 ,2,3\n"),
    ("OE.csv.gz", "pert_gene,10,007,3\n95,0.5,-1,2e-1\n007, 1 ,2,3\n"),
    ("OE.tsv", "pert_gene\tr1\tr2\n 0012 \t-0\t.5\nA\t5.\t+3\n"),
    ("quoted.csv", '"pert_gene","r 1","r,2"\n"A",1,2\nB,"3","4"\n'),
    ("blank_mid.csv", "pert_gene,r1,r2\nA,1,2\n\n,,\nB,3,4\n"),
    ("zero_one.csv", "pert_gene,r1,r2\nA,0,1\nB,1.0,0.0\n"),
    ("tiny.csv", "pert_gene,r1\nA,1e-50\nB,-3.4028234e38\n"),
]


@pytest.mark.parametrize("name, text", GOOD_MATRICES, ids=[n for n, _ in GOOD_MATRICES])
def test_gene_matrix_fast_equals_checked(tmp_path, name, text):
    path = write(tmp_path / name, text)
    fast = assert_same_matrix(path)
    for got, want in zip(read_signature_table(path), fast):
        np.testing.assert_array_equal(got, want)


def test_node_features_fast_equals_checked(tmp_path):
    path = write(tmp_path / "nf.csv", "gene,f0,f1\n007,1,2\n8, 3 ,4.25\n")
    assert_same_matrix(path, key="gene")
    genes, features = read_node_features(path)
    assert genes.tolist() == ["007", "8"] and features.tolist() == [[1, 2], [3, 4.25]]


def test_read_table_fast_matches_read_table(tmp_path):
    path = write(tmp_path / "t.csv", 'a,"b",c\n 007 ,2, x\n\n  9,  1e3 ,y\n')
    fast = read_table_fast(path, ["a"], ["b"])
    slow = read_table(path)
    assert fast.columns.tolist() == ["a", "b"]  # c is neither an ID nor a value column
    assert fast.index.tolist() == slow.index.tolist() == [2, 4] and fast.index.name == "line"
    assert column_as_str(fast, "a", path).tolist() == column_as_str(slow, "a", path).tolist() == ["007", "9"]
    assert fast["b"].dtype == np.float64
    np.testing.assert_array_equal(block_as_float(fast, ["b"], path), block_as_float(slow, ["b"], path))
    assert read_table_fast(path, ["a"], None) is None  # c is not numeric
    assert read_table_fast(path, ["zzz"]) is None


def test_block_as_float_from_float_columns(tmp_path):
    frame = pd.DataFrame({"x": [1.5, 1e60]}, index=pd.Index([2, 3], name="line"))
    np.testing.assert_array_equal(block_as_float(frame, ["x"], "f.csv", np.float64), [[1.5], [1e60]])
    with pytest.raises(DataError, match=r"f.csv, line 3, column 'x': value '1e\+60' is too large"):
        block_as_float(frame, ["x"], "f.csv")


@pytest.mark.parametrize("text", ["gene_a,gene_b,weight\nA,B,1_000\n",  # float() takes these,
                                  "gene_a,gene_b,weight\nA,B,\u0662\n"])  # pandas does not
def test_good_file_the_fast_path_declines(tmp_path, text):
    path = write(tmp_path / "net.csv", text)
    assert networks._read_edge_list_fast(path) is None
    pd.testing.assert_frame_equal(read_edge_list(path), networks._read_edge_list_checked(path))


# --- bad files: the checked path's error, exactly ----------------------------------------

BAD_EDGE_LISTS = [
    ("gene_a,gene_b,weight\n1,2,0.5\n2,3,heavy\n", "line 3, column 'weight'"),
    ("gene_a,gene_b,weight\n1,2,0.5\n2,3,\n", "line 3, column 'weight'"),
    ("gene_a,gene_b,weight\n1,2,0.5\n\n2,3,nan\n", "line 4, column 'weight'"),
    ("gene_a,gene_b,weight\n1,2,NaN\n", "line 2, column 'weight'"),
    ("gene_a,gene_b,weight\n1,2,inf\n", "line 2, column 'weight'"),
    ("gene_a,gene_b,weight\n1,2,-Infinity\n", "line 2, column 'weight'"),
    ("gene_a,gene_b,weight\n1,2,1e60\n", "line 2, column 'weight'"),
    ("gene_a,gene_b,weight\n1,2,TRUE\n2,3,false\n", "line 2, column 'weight'"),
    ("gene_a,gene_b,weight\n1,2,0.5\n2,3,-1\n", "line 3, column 'weight'"),
    ("gene_a,gene_b,weight\n1,2,0\n", "line 2, column 'weight'"),
    ("gene_a,gene_b,weight\n1,2,1e-50\n", "line 2, column 'weight'"),
    ("gene_a,gene_b,weight\n1,,0.5\n", "line 2, column 'gene_b'"),
    ("gene_a,gene_b,weight\n1,  ,0.5\n", "line 2, column 'gene_b'"),
    ("gene_a,gene_b,weight\n1,2,0.5\n1,2,3,4\n", "line 3"),
    ("gene_a,gene_b,weight\n1,2,0.5,4\n", "line 2"),
    ("gene_a,gene_b,weight\n1,2,0.5,4,5\n", "line 2"),
    ("gene_a,gene_b,weight\n1,2,0.5\n2,3\n", "line 3"),
    ("gene_a,gene_b,weight\n1,2,0.5\n2\n", "line 3"),
    ("gene_a,gene_b,weight\n1,1,0.5\n", "no edges left"),
    ("gene_a,gene_b,weight\n", "no data rows"),
    ("gene_a,gene_a,weight\n1,2,3\n", "appears twice"),
    ("source,target\n1,2\n", "missing required column"),
    ("", "empty file"),
]


@pytest.mark.parametrize("text, where", BAD_EDGE_LISTS)
def test_bad_edge_list_gives_checked_error(tmp_path, text, where):
    path = write(tmp_path / "bad_net.csv", text)
    assert networks._read_edge_list_fast(path) is None
    message = checked_error(read_edge_list, path)
    assert message == checked_error(networks._read_edge_list_checked, path)
    assert str(path) in message and where in message


BAD_MATRICES = [
    ("pert_gene,10,20\nA,1,2\nB,3,x\n", "line 3, column '20': non-numeric value 'x'"),
    ("pert_gene,10,20\nA,1,2\nB,3,\n", "line 3, column '20': empty value"),
    ("pert_gene,10,20\nA,1,2\nB,,4\n", "line 3, column '10': empty value"),
    ("pert_gene,10,20\nA,1,2\nB,3,nan\n", "line 3, column '20': NaN value"),
    ("pert_gene,10,20\nA,1,2\nB,3,NA\n", "line 3, column '20': non-numeric value 'NA'"),
    ("pert_gene,10,20\nA,1,2\nB,3,-inf\n", "line 3, column '20': infinite value"),
    ("pert_gene,10,20\nA,1,2\nB,3,1e60\n", "line 3, column '20': value '1e60' is too large"),
    ("pert_gene,10,20\nA,1,2\nB,True,False\n", "line 3, column '10': non-numeric value 'True'"),
    ("pert_gene,10,20\nA,1,2\nB,3,4,5\n", "line 3: more fields than the 3 in the header"),
    ("pert_gene,10,20\nA,1,2\nB,3,4,5,6\n", "line 3: 5 fields, but the header has 3"),
    ("pert_gene,10,20\nA,1,2\nB,3\n", "line 3, column '20'"),
    ("pert_gene,10,20\nA,1,2\n,3,4\n", "line 3, column 'pert_gene': empty value"),
    ("pert_gene,10\nA,1\nB,2\nA,3\n", "'A' is listed twice, on lines 2 and 4"),
    ("pert_gene,10\n A,1\nB,2\nA ,3\n", "'A' is listed twice, on lines 2 and 4"),
    ("gene,10\nA,1\n", "first column must be named 'pert_gene', not 'gene'"),
    ("pert_gene\nA\n", "no value columns"),
    ("pert_gene,5,6,5\nA,1,2,3\n", "column name '5' appears twice"),
]


@pytest.mark.parametrize("text, where", BAD_MATRICES)
def test_bad_signature_table_gives_checked_error(tmp_path, text, where):
    path = write(tmp_path / "RNAi.csv", text)
    assert signatures._read_gene_matrix_fast(path, "pert_gene") is None
    message = checked_error(read_signature_table, path)
    assert message == checked_error(signatures._read_gene_matrix_checked, path, "pert_gene",
                                    "perturbed gene")
    assert str(path) in message and where in message


# --- random tables: the fast path declines or agrees ---------------------------------------

VALUE_TOKENS = ["1", "0.5", " 2.25 ", "-0", "0", "1e-3", "3e38", "1e60", "", " ", "x", "nan", "inf",
                "NA", "True", "false", "1_0", '"7"', "0x1", "1.5e", "+4", ".5"]
ID_TOKENS = ["A", "B", " C", "007", "7", "", " ", "NA", "nan", "1e3", '"D"', "A ", "é"]


def random_table(rng: random.Random, header: list[str], id_count: int, rows: int) -> str:
    lines = [",".join(header)]
    for _ in range(rows):
        if rng.random() < 0.05:
            lines.append(rng.choice(["", ",,", " "]))
            continue
        width = len(header) + (rng.choice([-1, 1, 2]) if rng.random() < 0.05 else 0)
        cells = [rng.choice(ID_TOKENS if i < id_count else VALUE_TOKENS) if rng.random() < 0.3
                 else (rng.choice("ABCDE") if i < id_count else str(rng.choice([1, 2, 0.25, 3.5])))
                 for i in range(max(width, 0))]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def outcome(function, *args):
    try:
        return "ok", function(*args)
    except DataError as err:
        return "error", str(err)


def test_random_edge_lists_fast_declines_or_agrees(tmp_path):
    rng = random.Random(0)
    accepted = 0
    for case in range(150):
        path = write(tmp_path / f"net{case}.csv",
                     random_table(rng, ["gene_a", "gene_b", "weight"], 2, rng.randint(1, 6)))
        fast = networks._read_edge_list_fast(path)
        kind, checked = outcome(networks._read_edge_list_checked, path)
        if fast is not None:
            accepted += 1
            assert kind == "ok", (path.read_text(), checked)
            pd.testing.assert_frame_equal(fast, checked, check_exact=True)
        kind_public, public = outcome(read_edge_list, path)
        assert kind_public == kind
        if kind == "error":
            assert public == checked
    assert accepted > 20


def test_random_matrices_fast_declines_or_agrees(tmp_path):
    rng = random.Random(1)
    accepted = 0
    for case in range(150):
        path = write(tmp_path / f"sig{case}.csv",
                     random_table(rng, ["pert_gene", "r1", "r2"], 1, rng.randint(1, 5)))
        fast = signatures._read_gene_matrix_fast(path, "pert_gene")
        kind, checked = outcome(signatures._read_gene_matrix_checked, path, "pert_gene", "perturbed gene")
        if fast is not None:
            accepted += 1
            assert kind == "ok", (path.read_text(), checked)
            for got, want in zip(fast, checked):
                assert got.dtype == want.dtype
                np.testing.assert_array_equal(got, want)
        kind_public, public = outcome(read_signature_table, path)
        assert kind_public == kind
        if kind == "error":
            assert public == checked
    assert accepted > 20


# --- layer_from_edges ----------------------------------------------------------------------

def reference_layer(edges: pd.DataFrame, gene_position: dict[str, int]):
    """The string-keyed indexing layer_from_edges used before (its results must not change)."""
    index_a = np.asarray([gene_position[g] for g in edges["gene_a"].astype(str)], dtype=np.int64)
    index_b = np.asarray([gene_position[g] for g in edges["gene_b"].astype(str)], dtype=np.int64)
    senders, receivers = np.minimum(index_a, index_b), np.maximum(index_a, index_b)
    order = np.lexsort((receivers, senders))
    return senders[order], receivers[order], edges["weight"].to_numpy(np.float32)[order]


def test_layer_from_edges_matches_reference(tmp_path):
    rng = np.random.default_rng(0)
    genes = [f"{i:05d}" for i in range(300)]
    pairs = {tuple(sorted(rng.choice(300, 2, replace=False).tolist())) for _ in range(2000)}
    text = "gene_a\tgene_b\tweight\n" + "".join(
        f"{genes[b]}\t{genes[a]}\t{rng.uniform(0.1, 2):.4f}\n" for a, b in sorted(pairs))
    edges = read_edge_list(write(tmp_path / "n.tsv", text))
    shuffled = [genes[i] for i in rng.permutation(300)]
    position = {g: i for i, g in enumerate(shuffled)}
    layer = layer_from_edges("n", edges, position)
    senders, receivers, weights = reference_layer(edges, position)
    assert layer.senders.dtype == np.int32 and layer.weights.dtype == np.float32
    np.testing.assert_array_equal(layer.senders, senders)
    np.testing.assert_array_equal(layer.receivers, receivers)
    np.testing.assert_array_equal(layer.weights, weights)
    del position[genes[5]], position[genes[3]]
    with pytest.raises(DataError, match=r"gene\(s\) not in the gene index: \[00003, 00005\] \(2 in all\)"):
        layer_from_edges("n", edges, position)


@pytest.mark.parametrize("text, fast", [
    ("gene,GO:1,GO:2\n1,0,1\n2,1,0\n", True),          # no word in the file: the cheap screen
    ("gene,GO:1,GO:2\ntrueblue,0,1\n2,1,0\n", True),   # a word in an ID only: the full look
    ("gene,GO:1,GO:2\n1,0,TRUE\n2,1,0\n", False),      # pandas would read TRUE as 1.0
])
def test_zero_one_tables_and_boolean_words(tmp_path, text, fast):
    path = write(tmp_path / "go.csv.gz", text)
    assert (read_table_fast(path, ["gene"]) is not None) is fast
    if not fast:
        with pytest.raises(DataError, match="line 2, column 'GO:2'"):
            read_node_features(path)
