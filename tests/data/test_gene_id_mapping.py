"""Gene IDs across namespaces (Entrez, Ensembl, symbols, aliases) for TFNet inputs and light-up
validation: known pairs in symbols against scores in Ensembl IDs give the same figures as when
both use symbols, and pairs that match nothing are a warning or an error, never `auroc nan`."""
import logging

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT

from tfnet_jax.analysis.validation import validate_lightup
from tfnet_jax.data.expression.readers import read_expression_data
from tfnet_jax.data.genes import GeneTable, id_namespace, match_genes
from tfnet_jax.errors import DataError

GENE_META = REPO_ROOT.parent / "shared" / "data" / "l1000_genetic" / "gene_meta.csv.gz"

TABLE = """EntrezID,GeneID,Symbol,Synonyms
7157,ENSG00000141510,TP53,P53|LFS1
4609,ENSG00000136997,MYC,c-Myc
406,ENSG00000133794,BMAL1,ARNTL|MOP3
1,ENSG00000000001,AAA,SHARED
2,ENSG00000000001,BBB,SHARED;MYC
3,-,CCC,
"""


@pytest.fixture()
def table(tmp_path):
    path = tmp_path / "genes.csv"
    path.write_text(TABLE)
    return GeneTable.from_file(path)


def test_namespaces_are_told_apart():
    assert [id_namespace(g) for g in ("7157", "ENSG00000141510", "ENSG00000141510.16",
                                      "ENSMUSG00000059552", "TP53", "C1orf112")] == [
        "entrez", "ensembl", "ensembl", "ensembl", "symbol", "symbol"]


def test_any_namespace_to_entrez_and_back(table):
    ids, unmapped = table.entrez_of(["7157", "ENSG00000141510.16", "TP53", "P53", "ARNTL",
                                     "ENSG00000000001", "SHARED", "MYC", "99", "NOPE"])
    # ENSG...01 and the alias SHARED name two genes: ambiguous. MYC is a current symbol, so
    # BBB's alias MYC does not make it ambiguous.
    assert ids == ["7157", "7157", "7157", "7157", "406", None, None, "4609", None, None]
    assert unmapped == ["ENSG00000000001", "SHARED", "99", "NOPE"]
    assert table.convert(["TP53", "406", "ENSG00000136997"], "ensembl")[0] == [
        "ENSG00000141510", "ENSG00000133794", "ENSG00000136997"]
    assert table.convert(["ENSG00000141510", "ARNTL", "CCC"], "symbol")[0] == ["TP53", "BMAL1", "CCC"]
    assert table.convert(["CCC"], "ensembl") == ([None], ["CCC"])  # '-' = no Ensembl ID
    with pytest.raises(DataError, match="namespace 'hgnc'"):
        table.convert(["TP53"], "hgnc")


def test_tables_without_ensembl_or_aliases(tmp_path):
    path = tmp_path / "geneinfo.txt"
    path.write_text("gene_id\tgene_symbol\tfeature_space\n7157\tTP53\tlandmark\n")
    genes = GeneTable.from_file(path)
    assert genes.ensembl is None and genes.aliases is None
    assert genes.entrez_of(["TP53", "ENSG00000141510"], report=False)[0] == ["7157", None]
    with pytest.raises(DataError, match="no Ensembl column"):
        genes.convert(["TP53"], "ensembl")


def test_real_gene_meta_maps_ensembl():
    if not GENE_META.is_file():
        pytest.skip(f"{GENE_META} not present")
    genes = GeneTable.from_file(GENE_META)
    assert genes.aliases is None  # gene_meta has no alias column
    assert genes.entrez_of(["ENSG00000141510", "TP53", "7157"], report=False)[0] == ["7157"] * 3
    assert genes.convert(["MYC"], "ensembl")[0] == ["ENSG00000136997"]


def test_match_genes_finds_the_universe_gene(table):
    universe = ["ENSG00000141510", "ENSG00000136997", "X1"]
    assert match_genes(["TP53", "MYC", "X1", "BMAL1"], universe) == [None, None, "X1", None]
    assert match_genes(["TP53", "4609", "X1", "BMAL1", "P53"], universe, table) == [
        "ENSG00000141510", "ENSG00000136997", "X1", None, "ENSG00000141510"]
    # Two universe genes with the same Entrez ID: no guess.
    assert match_genes(["TP53"], ["ENSG00000141510", "7157"], table) == [None]


def _symbol_case(seed=0):
    """Scores in symbols and in Ensembl IDs for the same ranking, known pairs in symbols."""
    rng = np.random.default_rng(seed)
    tfs, targets = ["TP53", "MYC"], ["BMAL1", "AAA", "BBB", "CCC"]
    grid = pd.MultiIndex.from_product([tfs, targets], names=["source", "target"]).to_frame(index=False)
    grid["weight"] = rng.normal(size=len(grid))
    known = pd.DataFrame({"tf": ["TP53", "MYC", "TP53", "TP53"], "target": ["ARNTL", "AAA", "CCC", "ZZZ"],
                          "mode": ["Activation", "Repression", "Unknown", "Unknown"]})
    ensembl = {"TP53": "ENSG00000141510", "MYC": "ENSG00000136997", "BMAL1": "ENSG00000133794",
               "AAA": "ENSG00000000011", "BBB": "ENSG00000000012", "CCC": "ENSG00000000013"}
    by_id = grid.assign(source=grid["source"].map(ensembl), target=grid["target"].map(ensembl))
    return grid, by_id, known


def test_validation_maps_known_symbols_onto_ensembl_scores(tmp_path, caplog):
    path = tmp_path / "genes.csv"
    path.write_text("EntrezID,GeneID,Symbol,Synonyms\n7157,ENSG00000141510,TP53,\n4609,ENSG00000136997,MYC,\n"
                    "406,ENSG00000133794,BMAL1,ARNTL\n11,ENSG00000000011,AAA,\n12,ENSG00000000012,BBB,\n"
                    "13,ENSG00000000013,CCC,\n")
    genes = GeneTable.from_file(path)
    by_symbol, by_id, known = _symbol_case()
    with pytest.raises(DataError, match=r"^TRRUST: none of the 4 TF -> target pairs is a scored pair "
                                        r".*gene_table= maps symbols, Entrez and Ensembl IDs$"):
        validate_lightup(by_id, known, label="TRRUST")
    with caplog.at_level(logging.WARNING, logger="tfnet_jax.analysis.validation"):
        mapped = validate_lightup(by_id, known, genes=genes, label="TRRUST")
    # ARNTL is BMAL1's alias; ZZZ is nowhere: one warning line with the counts and the example.
    lines = [r.getMessage() for r in caplog.records if "TRRUST" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "1 of 4 pairs are not scored pairs" in lines[0] and "1 of 4 targets are not scored targets (e.g. ZZZ)" in lines[0]
    assert "TFs" not in lines[0]
    plain = validate_lightup(by_symbol, known.replace({"ARNTL": "BMAL1"}))
    assert mapped["n_known_pairs_used"] == plain["n_known_pairs_used"] == 3
    for metric in ("auroc", "auprc_ratio", "epr", "sign_n"):
        assert mapped[metric] == pytest.approx(plain[metric])
        assert np.isfinite(mapped[metric])


def test_tf_list_in_symbols_on_an_ensembl_matrix(tmp_path, table):
    rng = np.random.default_rng(1)
    genes = ["ENSG00000141510", "ENSG00000136997", "ENSG00000133794", "ENSG00000999999"]
    frame = pd.DataFrame(rng.normal(size=(6, 4)), columns=genes, index=[f"s{i}" for i in range(6)])
    frame.to_csv(tmp_path / "expr.csv", index_label="sample")
    (tmp_path / "tfs.txt").write_text("TP53\nMYC\n")
    (tmp_path / "genes.csv").write_text(TABLE)
    cfg = {"path": tmp_path / "expr.csv", "tf_list": tmp_path / "tfs.txt"}
    with pytest.raises(DataError, match="tfs.txt: none of the 2 tf genes.*set data.gene_table="):
        read_expression_data(cfg)
    data = read_expression_data({**cfg, "gene_table": tmp_path / "genes.csv"})
    assert data.tf_genes.tolist() == ["ENSG00000141510", "ENSG00000136997"]
    assert data.target_genes.tolist() == ["ENSG00000133794", "ENSG00000999999"]
    # The same TF twice, as a symbol and as its Ensembl ID: the second entry is dropped.
    (tmp_path / "tfs.txt").write_text("TP53\nENSG00000141510\nMYC\n")
    data = read_expression_data({**cfg, "gene_table": tmp_path / "genes.csv"})
    assert data.tf_genes.tolist() == ["ENSG00000141510", "ENSG00000136997"]
