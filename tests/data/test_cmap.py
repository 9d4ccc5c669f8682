"""Tests of gene-ID mapping and of building PerturbationData from CMap files (data=cmap)."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT

from tfnet_jax.data.genes import GeneTable
from tfnet_jax.data.io.gctx import GCTXReader
from tfnet_jax.data.io.gctx_write import write_gctx
from tfnet_jax.data.load import load_perturbation_data
from tfnet_jax.data.perturbation.cmap import CMapConfig, load_cmap, replicate_halves
from tfnet_jax.data.perturbation.container import REPLICATE_HALVES, PerturbationData
from tfnet_jax.errors import ConfigError, DataError

REAL_DATA = REPO_ROOT.parent / "shared/data/l1000_genetic"

GENEINFO = ("gene_id\tgene_symbol\tfeature_space\n"
            "101\tLM1\tlandmark\n102\tLM2\tlandmark\n103\tLM3\tlandmark\n"
            "201\tINF1\tbest inferred\n202\tINF2\tinferred\n"
            "7157\tTP53\tinferred\n4609\tMYC\tinferred\n3845\tKRAS\tinferred\n"
            "9001\tDUP\tinferred\n9002\tDUP\tinferred\n9003\t-666\tinferred\n")
GCTX_GENES = ["201", "103", "101", "202", "102"]  # landmarks 103, 101, 102 in this order
# sig_id, pert_type, cmap_name, cell_iname, nsample
SIGINFO = [
    ("s1", "trt_sh", "TP53", "A375", 2),
    ("s2", "trt_sh", "TP53", "PC3", 4),
    ("s3", "trt_sh.cgs", "MYC", "A375", 3),
    ("s4", "trt_xpr", "TP53", "A375", 1),
    ("s5", "trt_oe", "KRAS", "PC3", 5),
    ("s6", "trt_cp", "TP53", "A375", 3),    # a compound: not a genetic type
    ("s7", "trt_sh", "NOPE", "A375", 2),    # unknown symbol: reported, dropped
    ("s8", "trt_sh", "DUP", "PC3", 2),      # ambiguous symbol: reported, dropped
    ("s9", "trt_sh", "MYC", "PC3", 2),      # not in the GCTX: skipped
    ("s10", "trt_sh", "TP53", "A375", 6),
]
IN_GCTX = ["s5", "s1", "s2", "s3", "s4", "s6", "s7", "s8", "s10", "extra"]


@pytest.fixture
def cmap_files(tmp_path) -> dict[str, str]:
    values = np.arange(len(GCTX_GENES) * len(IN_GCTX), dtype=np.float32).reshape(
        len(GCTX_GENES), len(IN_GCTX)) ** 1.5
    write_gctx(tmp_path / "level5.gctx", values, GCTX_GENES, IN_GCTX)
    lines = ["sig_id\tpert_type\tcmap_name\tcell_iname\tnsample"]
    lines += ["\t".join(map(str, row)) for row in SIGINFO]
    (tmp_path / "siginfo.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "geneinfo.txt").write_text(GENEINFO)
    networks = tmp_path / "networks"
    networks.mkdir()
    (networks / "ppi.tsv").write_text("gene_a\tgene_b\tweight\n7157\t4609\t0.5\n101\t555\t1\n")
    (networks / "coexp.csv").write_text("gene_a,gene_b\n3845,7157\n")
    return dict(gctx=str(tmp_path / "level5.gctx"), siginfo=str(tmp_path / "siginfo.txt"),
                geneinfo=str(tmp_path / "geneinfo.txt"), networks=str(networks))


def signature(files: dict, sig_id: str) -> np.ndarray:
    """The landmark readouts (101, 102, 103 in GCTX order: 103, 101, 102) of one signature."""
    with GCTXReader(files["gctx"]) as reader:
        return reader.read(rids=["103", "101", "102"], cids=[sig_id]).matrix[:, 0]


def table_of(data: PerturbationData, pert_type: str) -> dict[str, np.ndarray]:
    table = data.signatures[pert_type]
    return dict(zip(table.pert_genes.tolist(), table.values))


def test_mean_collapse_types_and_landmarks(cmap_files, caplog):
    with caplog.at_level(logging.WARNING):
        data = load_cmap(CMapConfig(**cmap_files))
    assert data.readout_genes.tolist() == ["103", "101", "102"]  # landmarks, GCTX order
    assert data.pert_types == ["CRISPR", "OE", "RNAi"]
    rnai = table_of(data, "RNAi")
    assert sorted(rnai) == ["4609", "7157"]  # trt_sh and trt_sh.cgs both RNAi
    s = {sig: signature(cmap_files, sig) for sig in ("s1", "s2", "s3", "s4", "s5", "s10")}
    np.testing.assert_allclose(rnai["7157"], (s["s1"] + s["s2"] + s["s10"]) / 3, rtol=1e-6)
    np.testing.assert_allclose(rnai["4609"], s["s3"])
    np.testing.assert_allclose(table_of(data, "CRISPR")["7157"], s["s4"])
    np.testing.assert_allclose(table_of(data, "OE")["3845"], s["s5"])
    assert data.extras["unmapped_pert_symbols"] == ["NOPE", "DUP"]
    assert "NOPE" in caplog.text and "ambiguous" in caplog.text
    # Same gene-index rules as data=dir: sorted union of network, perturbed and readout genes.
    assert data.genes.tolist() == sorted({"101", "102", "103", "555", "3845", "4609", "7157"})
    assert [layer.name for layer in data.layers] == ["coexp", "ppi"]
    position = data.gene_position()
    assert data.signatures["RNAi"].pert_index.tolist() == [position["4609"], position["7157"]]
    assert data.signatures["RNAi"].values.dtype == np.float32


def test_weighted_collapse_and_cell_selection(cmap_files):
    s = {sig: signature(cmap_files, sig) for sig in ("s1", "s2", "s3", "s10")}
    data = load_cmap(CMapConfig(**cmap_files, collapse="weighted"))
    np.testing.assert_allclose(table_of(data, "RNAi")["7157"],
                               (2 * s["s1"] + 4 * s["s2"] + 6 * s["s10"]) / 12, rtol=1e-6)
    one_cell = load_cmap(CMapConfig(**cmap_files, cell="A375", collapse="weighted"))
    assert one_cell.pert_types == ["CRISPR", "RNAi"]  # the only OE signature is in PC3
    np.testing.assert_allclose(table_of(one_cell, "RNAi")["7157"],
                               (2 * s["s1"] + 6 * s["s10"]) / 8, rtol=1e-6)
    np.testing.assert_allclose(table_of(one_cell, "RNAi")["4609"], s["s3"])


def test_reads_only_the_needed_signatures(cmap_files, monkeypatch):
    requested: list[str] = []
    original = GCTXReader.read_positions

    def spy(self, rows, cols):
        requested.extend(self.col_ids[cols].tolist())
        return original(self, rows, cols)

    monkeypatch.setattr(GCTXReader, "read_positions", spy)
    load_cmap(CMapConfig(**cmap_files), pert_types=["RNAi"])
    assert sorted(requested) == ["s1", "s10", "s2", "s3"]


def test_type_map_node_features_and_load_dispatch(cmap_files, tmp_path):
    features = tmp_path / "node_features.csv"
    features.write_text("gene,f1,f2\n7157,1,2\n999,3,4\n")
    cfg = dict(name="cmap", **cmap_files, pert_types=["knockdown"], node_features=str(features),
               type_map={"trt_sh": "knockdown", "trt_oe": "OE"})
    data = load_perturbation_data(cfg)
    assert data.pert_types == ["knockdown"]
    assert sorted(data.signatures["knockdown"].pert_genes.tolist()) == ["7157"]  # no .cgs
    position = data.gene_position()
    assert data.has_features.sum() == 2 and data.node_features[position["999"]].tolist() == [3, 4]
    with pytest.raises(ConfigError, match=r"data.colapse: unknown key; did you mean data.collapse"):
        load_perturbation_data(dict(name="cmap", **cmap_files, colapse="mean"))
    with pytest.raises(DataError, match="data.gctx: set it"):
        load_perturbation_data(dict(cmap_files, name="cmap", gctx="???"))


def test_node_feature_files(cmap_files, tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("gene,a0\n999,3\n")
    b = tmp_path / "b.csv"
    b.write_text("gene,b0,b1\n999,1,2\n7157,5,6\n")
    data = load_perturbation_data(dict(name="cmap", **cmap_files, node_feature_files=[str(a), str(b)]))
    assert [block.name for block in data.feature_blocks] == ["a", "b"]
    position = data.gene_position()
    assert data.node_features[position["999"]].tolist() == [3, 1, 2]
    assert data.node_features[position["7157"]].tolist() == [0, 5, 6]
    with pytest.raises(DataError, match="data.node_features, data.node_feature_files: give one"):
        load_perturbation_data(dict(name="cmap", **cmap_files, node_features=str(a),
                                    node_feature_files=[str(b)]))


def test_cmap_errors(cmap_files, tmp_path):
    with pytest.raises(DataError, match=r"data.pert_types: none of \['Drug'\]"):
        load_cmap(CMapConfig(**cmap_files), pert_types=["Drug"])
    with pytest.raises(DataError, match="data.collapse"):
        load_cmap(CMapConfig(**cmap_files, collapse="median"))
    with pytest.raises(DataError, match=r"siginfo\.txt: no signatures of pert_type .* in cell 'HEK'"):
        load_cmap(CMapConfig(**cmap_files, cell="HEK"))
    no_counts = tmp_path / "no_counts.txt"
    no_counts.write_text("sig_id\tpert_type\tcmap_name\ns1\ttrt_sh\tTP53\n")
    with pytest.raises(DataError, match="needs a replicate count column"):
        load_cmap(CMapConfig(**dict(cmap_files, siginfo=str(no_counts)), collapse="weighted"))
    bad_count = tmp_path / "bad_count.txt"
    bad_count.write_text("sig_id\tpert_type\tpert_iname\tdistil_nsample\n"
                         "s1\ttrt_sh\tTP53\t2\ns2\ttrt_sh\tTP53\t-666\n")
    with pytest.raises(DataError, match=r"bad_count\.txt, line 3, column 'distil_nsample'"):
        load_cmap(CMapConfig(**dict(cmap_files, siginfo=str(bad_count)), collapse="weighted"))
    no_landmarks = tmp_path / "genes.csv"
    no_landmarks.write_text("EntrezID,Symbol\n7157,TP53\n")
    with pytest.raises(DataError, match="does not mark landmark genes"):
        load_cmap(CMapConfig(**dict(cmap_files, geneinfo=str(no_landmarks))))


# --- gene IDs -----------------------------------------------------------------------------

def test_gene_mapping_reports_unmapped(tmp_path, caplog):
    path = tmp_path / "geneinfo.txt"
    path.write_text(GENEINFO)
    genes = GeneTable.from_file(path)
    assert genes.landmark_ids().tolist() == ["101", "102", "103"]
    assert genes.ambiguous_symbols == {"DUP": ["9001", "9002"]}
    with caplog.at_level(logging.WARNING):
        ids, unmapped = genes.to_entrez(["TP53", "NOPE", "DUP", "MYC", "NOPE", "tp53"])
    assert ids == ["7157", None, None, "4609", None, None]  # aligned; case sensitive
    assert unmapped == ["NOPE", "DUP", "tp53"]
    assert "3 of 5 symbol(s)" in caplog.text and "ambiguous" in caplog.text
    symbols, unmapped = genes.to_symbols(["7157", 9003, "42", "9001"])
    assert symbols == ["TP53", None, None, "DUP"]
    assert unmapped == ["9003", "42"]  # no symbol ("-666"), not in the table


def test_gene_table_pr_is_lm_and_errors(tmp_path):
    old = tmp_path / "gene_info.txt"
    old.write_text("pr_gene_id\tpr_gene_symbol\tpr_is_lm\n1\tA1BG\t1\n2\tA2M\t0\n")
    assert GeneTable.from_file(old).landmark_ids().tolist() == ["1"]
    old.write_text("pr_gene_id\tpr_gene_symbol\tpr_is_lm\n1\tA1BG\t1\n2\tA2M\tyes\n")
    with pytest.raises(DataError, match=r"gene_info\.txt, line 3, column 'pr_is_lm'"):
        GeneTable.from_file(old)
    twice = tmp_path / "twice.csv"
    twice.write_text("EntrezID,Symbol\n1,A1BG\n1,A2M\n")
    with pytest.raises(DataError, match=r"twice\.csv: Entrez ID '1' is listed twice, on lines 2 and 3"):
        GeneTable.from_file(twice)
    no_symbol = tmp_path / "no_symbol.csv"
    no_symbol.write_text("EntrezID,Name\n1,A1BG\n")
    with pytest.raises(DataError, match="no gene symbol column"):
        GeneTable.from_file(no_symbol)


def test_real_gene_meta():
    path = REAL_DATA / "gene_meta.csv.gz"
    if not path.exists():
        pytest.skip(f"shared real data not found at {path}")
    genes = GeneTable.from_file(path)
    assert genes.num_genes > 20000 and genes.is_landmark is None
    ids, unmapped = genes.to_entrez(["TP53", "MYC", "KRAS", "NOT_A_GENE"])
    assert ids == ["7157", "4609", "3845", None] and unmapped == ["NOT_A_GENE"]
    symbols, unmapped = genes.to_symbols(["1", "7157"])
    assert symbols == ["A1BG", "TP53"] and unmapped == []


# --- split-half replicate ceiling -----------------------------------------------------------

def test_replicate_halves_partition_each_group_by_its_key():
    sigs = pd.DataFrame({"sig_id": [f"s{i}" for i in range(7)], "pert_type": ["RNAi"] * 6 + ["OE"],
                         "pert_gene": ["1", "1", "1", "2", "3", "3", "1"]})
    half = replicate_halves(sigs)
    assert half[3] == -1 and half[6] == -1  # single signatures: no halves
    assert sorted(half[:3]) == [0, 1, 1] and sorted(half[4:6]) == [0, 1]  # floor(k/2) in half 0
    # Seeded by the (type, gene) key: the same halves whatever else is loaded, in any order.
    alone = replicate_halves(sigs.iloc[[2, 1, 0]].reset_index(drop=True))
    np.testing.assert_array_equal(alone, half[[2, 1, 0]])


def _replicate_files(tmp_path, replicates: dict[str, list[np.ndarray]]) -> dict[str, str]:
    """A GCTX of landmarks 101..104 with the given signatures per perturbed symbol."""
    rows = ["101", "102", "103", "104"]
    sig_ids, columns, lines = [], [], ["sig_id\tpert_type\tcmap_name"]
    for symbol, signatures in replicates.items():
        for k, values in enumerate(signatures):
            sig_ids.append(f"{symbol}_{k}")
            columns.append(values)
            lines.append(f"{symbol}_{k}\ttrt_sh\t{symbol}")
    write_gctx(tmp_path / "rep.gctx", np.array(columns, np.float32).T, rows, sig_ids)
    (tmp_path / "rep_siginfo.txt").write_text("\n".join(lines) + "\n")
    symbols = [s for s in replicates if s != "LM1"]
    (tmp_path / "rep_geneinfo.txt").write_text(
        "gene_id\tgene_symbol\tfeature_space\n"
        + "".join(f"{r}\tLM{i + 1}\tlandmark\n" for i, r in enumerate(rows))
        + "".join(f"{i + 1}\t{s}\tinferred\n" for i, s in enumerate(symbols)))
    networks = tmp_path / "rep_networks"
    networks.mkdir()
    (networks / "ppi.tsv").write_text("gene_a\tgene_b\n1\t2\n2\t3\n")
    return dict(gctx=str(tmp_path / "rep.gctx"), siginfo=str(tmp_path / "rep_siginfo.txt"),
                geneinfo=str(tmp_path / "rep_geneinfo.txt"), networks=str(networks))


def test_replicate_ceiling_from_cmap_halves(tmp_path):
    from tfnet_jax.eval.metrics import signature_metrics
    from tfnet_jax.tasks.transcriptionnet.prepare import (
        prepare,
        replicate_ceiling_metrics,
    )

    rng = np.random.default_rng(0)
    base = {s: rng.normal(size=4) for s in ("A", "B", "C", "D", "E", "LM1")}
    replicates = {s: [v + rng.normal(scale=0.3, size=4) for _ in range(2 + i % 3)]
                  for i, (s, v) in enumerate(base.items())}
    replicates["E"] = replicates["E"][:1]  # one signature: no halves
    data = load_cmap(CMapConfig(**_replicate_files(tmp_path, replicates)))
    genes, half_a, half_b = data.extras[REPLICATE_HALVES]["RNAi"]
    table = table_of(data, "RNAi")
    assert sorted(genes) == sorted(set(table) - {"5"})  # E (Entrez 5) has one signature
    for gene, a, b in zip(genes, half_a, half_b):  # halves of k: floor(k/2) and the rest
        symbol = "LM1" if gene == "101" else "ABCD"[int(gene) - 1]
        k = len(replicates[symbol])
        np.testing.assert_allclose((k // 2) * a + (k - k // 2) * b, k * table[gene], rtol=1e-5)

    # Held out: A, C, LM1 (the landmark 101: its own readout, column 0, is left out).
    pert = data.signatures["RNAi"].pert_genes.tolist()
    split = np.array(["test" if g in ("1", "3", "101") else "train" for g in pert])
    prepared = prepare(data, {"RNAi": split})
    got = replicate_ceiling_metrics(prepared)["RNAi"]
    order = [genes.tolist().index(g) for g in pert if g in ("1", "3", "101")]
    own = np.array([0 if g == "101" else -1 for g in pert if g in ("1", "3", "101")])
    expected = signature_metrics(half_a[order], half_b[order], prepared.target_mean[0], own_col=own)
    assert got == pytest.approx(expected) and got["n"] == 3
    assert replicate_ceiling_metrics(prepare(data, {"RNAi": np.where(
        np.isin(pert, ["5"]), "test", "train")})) is None  # the only held-out gene has no halves


def test_identical_replicates_make_a_perfect_ceiling(tmp_path):
    from tfnet_jax.tasks.transcriptionnet.prepare import (
        prepare,
        replicate_ceiling_metrics,
    )

    rng = np.random.default_rng(1)
    replicates = {s: [rng.normal(size=4)] * 3 for s in ("A", "B", "C", "D")}
    data = load_cmap(CMapConfig(**_replicate_files(tmp_path, replicates)))
    got = replicate_ceiling_metrics(prepare(data, {"RNAi": np.array(["test"] * 3 + ["train"])}))
    assert got["RNAi"]["mse"] == pytest.approx(0, abs=1e-10)
    assert got["RNAi"]["rank_score"] == 1.0 and got["RNAi"]["pearson_delta"] == pytest.approx(1)
