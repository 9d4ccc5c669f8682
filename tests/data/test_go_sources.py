"""GO network layers and features (tfnet_jax.data.sources.go) on hand-made OBO, gene2go and
GAF 2.2 files with hand-computed propagated sets, Jaccard weights and top-k edges."""
from __future__ import annotations

import gzip
import json
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA

from tfnet_jax.data.genes import GeneTable
from tfnet_jax.data.sources import jaccard
from tfnet_jax.data.sources.go import build_go_layers
from tfnet_jax.data.sources.obo import read_obo
from tfnet_jax.errors import ConfigError, DataError

# BP: 1 root; 2 A is_a 1; 3 B is_a 1; 4 C is_a 2, part_of 3 (and regulates 5); 5 D is_a 2,
# regulates 4 (regulates neither propagates nor makes a cycle); 6 E is_a 1, alt_id 16;
# 7 obsolete. MF: 10 root; 11, 12 is_a 10. CC: 20 root; 21 is_a 20.
OBO = """format-version: 1.2
ontology: go

[Term]
id: GO:0000001
name: bp root
namespace: biological_process

[Term]
id: GO:0000002
name: A
namespace: biological_process
is_a: GO:0000001 ! bp root

[Term]
id: GO:0000003
name: B
namespace: biological_process
is_a: GO:0000001 ! bp root

[Term]
id: GO:0000004
name: C
namespace: biological_process
is_a: GO:0000002 ! A
relationship: part_of GO:0000003 ! B
relationship: regulates GO:0000005 ! D

[Term]
id: GO:0000005
name: D
namespace: biological_process
is_a: GO:0000002 ! A
relationship: regulates GO:0000004 ! C

[Term]
id: GO:0000006
name: E
namespace: biological_process
alt_id: GO:0000016
is_a: GO:0000001 ! bp root

[Term]
id: GO:0000007
name: obsolete thing
namespace: biological_process
is_obsolete: true

[Term]
id: GO:0000010
name: mf root
namespace: molecular_function

[Term]
id: GO:0000011
name: M1
namespace: molecular_function
is_a: GO:0000010 ! mf root

[Term]
id: GO:0000012
name: M2
namespace: molecular_function
is_a: GO:0000010 ! mf root

[Term]
id: GO:0000020
name: cc root
namespace: cellular_component

[Term]
id: GO:0000021
name: K1
namespace: cellular_component
is_a: GO:0000020 ! cc root

[Typedef]
id: part_of
name: part of
is_a: GO:0000001
"""

# (gene, symbol, DB object ID, GO ID, evidence, gene2go qualifier, GAF qualifier, aspect, taxon)
ROWS = [
    ("10", "ALPHA", "P00010", "GO:0000004", "IDA", "-", "involved_in", "P", 9606),
    ("30", "GAMMA", "P00030", "GO:0000003", "IEA", "-", "involved_in", "P", 9606),
    ("30", "GAMMA", "P00030", "GO:0000016", "IDA", "-", "involved_in", "P", 9606),  # alt_id of E
    ("2", "BETA", "P00002", "GO:0000005", "TAS", "-", "involved_in", "P", 9606),
    ("4", "DELTA", "P00004", "GO:0000002", "IMP", "-", "involved_in", "P", 9606),
    ("4", "DELTA", "P00004", "GO:0000002", "IDA", "-", "involved_in", "P", 9606),  # duplicate
    ("5", "EPS", "P00005", "GO:0000006", "IEA", "-", "involved_in", "P", 9606),
    ("5", "EPS", "P00005", "GO:0000004", "IDA", "NOT", "NOT|involved_in", "P", 9606),
    ("4", "DELTA", "P00004", "GO:0000003", "ND", "-", "involved_in", "P", 9606),
    ("99", "MOUSE", "Q00099", "GO:0000002", "IDA", "-", "involved_in", "P", 10090),
    ("5", "EPS", "P00005", "GO:0000007", "IDA", "-", "involved_in", "P", 9606),  # obsolete
    ("5", "EPS", "P00005", "GO:9999999", "IDA", "-", "involved_in", "P", 9606),  # unknown
    ("10", "ALPHA", "P00010", "GO:0000011", "IDA", "-", "enables", "F", 9606),
    ("2", "BETA", "P00002", "GO:0000011", "IEA", "-", "enables", "F", 9606),
    ("30", "GAMMA", "P00030", "GO:0000012", "IDA", "-", "enables", "F", 9606),
    ("30", "GAMMA", "P00030", "GO:0000011", "IDA", "NOT contributes_to", "NOT|contributes_to",
     "F", 9606),
    ("4", "DELTA", "P00004", "GO:0000021", "IDA", "-", "located_in", "C", 9606),
    ("5", "EPS", "P00005", "GO:0000020", "IDA", "-", "located_in", "C", 9606),
]
CATEGORY = {"P": "Process", "F": "Function", "C": "Component"}
# Gene 5's GAF symbol EPS is not in the table: it maps through its DB object ID, an alias.
GENE_TABLE = "EntrezID\tSymbol\tSynonyms\n10\tALPHA\t-\n2\tBETA\t-\n30\tGAMMA\t-\n4\tDELTA\t-\n" \
             "5\tEPSILON\tP00005\n"

# Propagated BP sets: 10 {1,2,3,4}; 2 {1,2,5}; 30 {1,3,6}; 4 {1,2}; 5 {1,6}. Jaccard:
# 10-2 2/5, 10-30 2/5, 10-4 1/2, 10-5 1/5, 2-30 1/5, 2-4 2/3, 2-5 1/4, 30-4 1/4, 30-5 2/3, 4-5 1/3.
BP_TOP1 = {("10", "4"): 1 / 2, ("2", "4"): 2 / 3, ("30", "5"): 2 / 3}
# top 2: gene 10 ties 2 and 30 at 2/5 and takes "2" (the lower ID); 5 takes 30 and 4.
BP_TOP2 = {("10", "2"): 2 / 5, ("10", "4"): 1 / 2, ("2", "4"): 2 / 3, ("10", "30"): 2 / 5,
           ("30", "5"): 2 / 3, ("4", "5"): 1 / 3}
# MF: 10 {10,11}, 2 {10,11}, 30 {10,12}: 10-2 1, 10-30 1/3, 2-30 1/3; gene 30's tie between
# "10" and "2" goes to "10" (string order, not numeric).
MF_TOP1 = {("10", "2"): 1.0, ("10", "30"): 1 / 3}
CC_TOP1 = {("4", "5"): 1 / 2}  # 4 {20,21}, 5 {20}


def write_gene2go(path, rows=ROWS):
    lines = ["#tax_id\tGeneID\tGO_ID\tEvidence\tQualifier\tGO_term\tPubMed\tCategory"]
    lines += [f"{tax}\t{gene}\t{go}\t{code}\t{qual}\tname\t-\t{CATEGORY[aspect]}"
              for gene, _, _, go, code, qual, _, aspect, tax in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def gaf_line(symbol, object_id, go, code, qualifier, aspect, taxon):
    return "\t".join(["UniProtKB", object_id, symbol, qualifier, go, "PMID:1", code, "", aspect,
                      "name", "", "protein", taxon, "20220101", "UniProt", "", ""])


def write_gaf(path, rows=ROWS, extra=()):
    lines = ["!gaf-version: 2.2", "!generated-by: hand"]
    # The first row also names an interacting taxon: the gene's is the first.
    lines += [gaf_line(sym, oid, go, code, qual, aspect, f"taxon:{tax}" + ("|taxon:11676" * (i == 0)))
              for i, (_, sym, oid, go, code, _, qual, aspect, tax) in enumerate(rows)]
    lines += list(extra)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def obo(tmp_path):
    path = tmp_path / "go-basic.obo.gz"  # gzipped, as GO distributes it
    with gzip.open(path, "wt") as handle:
        handle.write(OBO)
    return path


@pytest.fixture
def to_entrez(tmp_path):
    (tmp_path / "genes.tsv").write_text(GENE_TABLE)
    table = GeneTable.from_file(tmp_path / "genes.tsv")
    return lambda names: table.entrez_of(names)[0]


def edges(frame: pd.DataFrame) -> dict:
    assert list(frame.columns) == ["gene_a", "gene_b", "weight"]
    assert frame["weight"].dtype == np.float64
    assert (frame["gene_a"] < frame["gene_b"]).all()
    return {(a, b): w for a, b, w in frame.itertuples(index=False)}


def test_obo_propagates_is_a_and_part_of_not_regulates(obo):
    ontology = read_obo(obo)
    assert "GO:0000007" not in ontology.index and ontology.obsolete == {"GO:0000007"}
    assert ontology.alt_ids == {"GO:0000016": "GO:0000006"}
    ancestors = {term: {ontology.terms[j] for j in ontology.closure[i].indices}
                 for term, i in ontology.index.items()}
    short = {t[-2:].lstrip("0"): {a[-2:].lstrip("0") for a in s} for t, s in ancestors.items()}
    assert short["4"] == {"1", "2", "3", "4"}  # is_a A, part_of B
    assert short["5"] == {"1", "2", "5"}  # regulates C does not propagate
    assert short["21"] == {"20", "21"}
    assert dict(zip(ontology.terms, ontology.aspects))["GO:0000011"] == "MF"
    assert "part_of" not in ontology.index  # the Typedef is no term


@pytest.mark.parametrize("top_k, expected_bp", [(1, BP_TOP1), (2, BP_TOP2)])
def test_gene2go_layers_match_hand_computed(tmp_path, obo, top_k, expected_bp):
    result = build_go_layers(annotations=write_gene2go(tmp_path / "gene2go"), obo=obo,
                             top_k=top_k)
    assert set(result.layers) == {"go_bp", "go_mf", "go_cc"}
    assert edges(result.layers["go_bp"]) == pytest.approx(expected_bp, rel=1e-15)
    if top_k == 1:
        assert edges(result.layers["go_mf"]) == pytest.approx(MF_TOP1, rel=1e-15)
        assert edges(result.layers["go_cc"]) == pytest.approx(CC_TOP1, rel=1e-15)
    report = result.report["annotations"]
    assert report["format"] == "gene2go" and report["rows"] == 18 and report["kept"] == 12
    assert report["dropped"]["other_taxon"] == 1
    assert report["dropped"]["not_qualifier"] == 2
    assert report["dropped"]["evidence"] == {"count": 1, "codes": {"ND": 1}}
    assert report["dropped"]["obsolete_term"] == {"count": 1, "examples": ["GO:0000007"]}
    assert report["dropped"]["unknown_term"] == {"count": 1, "examples": ["GO:9999999"]}
    assert report["dropped"]["aspect"] == 0 and report["alt_id_rows"] == 1
    assert result.report["layers"]["go_bp"] == {"genes": 5, "terms": 6, "genes_with_edges": 5,
                                                "edges": len(expected_bp)}
    assert result.features is None
    json.dumps(result.report)  # JSON-able


def test_tfnet_networks_writes_the_go_layers_features_and_report(tmp_path, obo):
    from tfnet_jax.data.perturbation.signatures import read_node_features
    from tfnet_jax.data.sources.build import build_networks
    gene2go = write_gene2go(tmp_path / "gene2go")
    report = build_networks(tmp_path / "out", go=gene2go, obo=obo, go_top_k=1, go_features=True)
    written = pd.read_csv(tmp_path / "out" / "networks" / "go_bp.tsv.gz", sep="\t")
    assert written["gene_a"].dtype == np.int64  # Entrez IDs as integers
    got = {tuple(sorted((str(a), str(b)))): w for a, b, w in written.itertuples(index=False)}
    assert got == pytest.approx(BP_TOP1, rel=1e-12)
    entry = report["sources"]["go"]
    assert (entry["rows_read"], entry["rows_kept"]) == (18, 12)
    assert entry["dropped"]["not_qualifier"] == 2 and entry["dropped"]["evidence"] == 1
    direct = build_go_layers(annotations=gene2go, obo=obo, top_k=1, features=True)
    genes, values = read_node_features(tmp_path / "out" / "node_features_go.csv.gz")
    assert genes.tolist() == direct.features.index.tolist()
    np.testing.assert_array_equal(values, direct.features.to_numpy())


def test_gaf_gives_the_same_layers_as_gene2go(tmp_path, obo, to_entrez):
    from_gene2go = build_go_layers(annotations=write_gene2go(tmp_path / "gene2go"), obo=obo,
                                   top_k=2)
    unmapped = gaf_line("ZETA", "P99999", "GO:0000002", "IDA", "involved_in", "P", "taxon:9606")
    gaf = write_gaf(tmp_path / "goa_human.gaf", extra=[unmapped])
    from_gaf = build_go_layers(annotations=gaf, obo=obo, top_k=2, to_entrez=to_entrez)
    for name, frame in from_gene2go.layers.items():
        pd.testing.assert_frame_equal(from_gaf.layers[name], frame)
    report = from_gaf.report["annotations"]
    assert report["format"] == "gaf" and report["rows"] == 19 and report["kept"] == 12
    assert report["dropped"]["unmapped_gene"] == {"count": 1, "genes": 1,
                                                  "examples": ["ZETA (P99999)"]}
    assert report["dropped"]["not_qualifier"] == 2 and report["dropped"]["other_taxon"] == 1


def test_aspects_restrict_layers_and_count_the_rest(tmp_path, obo):
    result = build_go_layers(annotations=write_gene2go(tmp_path / "gene2go"), obo=obo,
                             aspects=("BP",), top_k=1, evidence_exclude=())
    assert list(result.layers) == ["go_bp"]
    dropped = result.report["annotations"]["dropped"]
    assert dropped["aspect"] == 5 and dropped["evidence"]["count"] == 0
    # With ND kept, gene 4 also has B: {1,2,3}; 10-4 becomes 3/4 and 4's best.
    assert edges(result.layers["go_bp"]) == pytest.approx(
        {("10", "4"): 3 / 4, ("2", "4"): 1 / 2, ("30", "5"): 2 / 3}, rel=1e-15)


def test_features_are_terms_within_the_size_range(tmp_path, obo):
    # Genes per propagated term: 1:5, A:3, B:2, C:1, D:1, E:2, mf root:3, M1:2, M2:1,
    # cc root:2, K1:1.
    path = write_gene2go(tmp_path / "gene2go")
    result = build_go_layers(annotations=path, obo=obo, features=True, feature_min_genes=2,
                             feature_max_genes=3)
    expected = pd.DataFrame(
        [[1, 1, 0, 1, 1, 0], [1, 0, 0, 1, 1, 0], [0, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 1],
         [0, 0, 1, 0, 0, 1]],
        index=pd.Index(["10", "2", "30", "4", "5"], name="gene"),
        columns=pd.Index(["GO:0000002", "GO:0000003", "GO:0000006", "GO:0000010",
                          "GO:0000011", "GO:0000020"], name="term"), dtype=np.uint8)
    pd.testing.assert_frame_equal(result.features, expected)
    narrow = build_go_layers(annotations=path, obo=obo, features=True, feature_min_genes=3,
                             feature_max_genes=3).features
    assert list(narrow.columns) == ["GO:0000002", "GO:0000010"]
    assert list(narrow.index) == ["10", "2", "30", "4"]  # gene 5 has neither: no row
    assert result.report["features"]["terms"] == 6


CYCLE_OBO = """format-version: 1.2

[Term]
id: GO:0000101
namespace: biological_process
is_a: GO:0000102

[Term]
id: GO:0000102
namespace: biological_process
relationship: part_of GO:0000103

[Term]
id: GO:0000103
namespace: biological_process
is_a: GO:0000101
is_a: GO:0000104

[Term]
id: GO:0000104
namespace: biological_process
"""


def test_is_a_part_of_cycle_is_one_line_naming_the_terms(tmp_path):
    path = tmp_path / "cycle.obo"
    path.write_text(CYCLE_OBO)
    with pytest.raises(DataError) as err:
        read_obo(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}, line 6: ")  # GO:0000101's is_a
    assert "GO:0000101 -> GO:0000102 -> GO:0000103 -> GO:0000101" in message
    assert "GO:0000104" not in message


def test_bad_inputs_are_one_line_errors(tmp_path, obo, to_entrez):
    short = "\t".join(gaf_line("ALPHA", "P00010", "GO:0000002", "IDA", "involved_in", "P",
                               "taxon:9606").split("\t")[:16])
    gaf = write_gaf(tmp_path / "bad.gaf", rows=ROWS[:2], extra=[short])
    with pytest.raises(DataError, match=rf"^{gaf}, line 5: 16 tab-separated columns; a GAF 2.2 "
                                        "row has 17$"):
        build_go_layers(annotations=gaf, obo=obo, to_entrez=to_entrez)
    with pytest.raises(DataError, match=r"bad\.gaf: a GAF file .*gene_info"):
        build_go_layers(annotations=gaf, obo=obo)
    gene2go = write_gene2go(tmp_path / "gene2go",
                            rows=[*ROWS[:3], ("ALPHA", *ROWS[0][1:])])
    with pytest.raises(DataError, match=r"gene2go, line 5: GeneID 'ALPHA' is not an Entrez"):
        build_go_layers(annotations=gene2go, obo=obo)
    junk = tmp_path / "junk.tsv"
    junk.write_text("gene\tterm\n1\tGO:0000001\n")
    with pytest.raises(DataError, match=r"junk\.tsv, line 1: neither a gene2go header"):
        build_go_layers(annotations=junk, obo=obo)
    twice = tmp_path / "twice.obo"
    twice.write_text(OBO + "\n[Term]\nid: GO:0000002\nnamespace: biological_process\n")
    with pytest.raises(DataError, match=r"twice\.obo, line \d+: term GO:0000002 is defined twice"):
        read_obo(twice)
    with pytest.raises(DataError, match=r"gene2go: no GO BP edges: 1 gene\(s\) with BP terms; "
                                        r"of 18 rows read, dropped: other_taxon 17$"):
        build_go_layers(annotations=write_gene2go(tmp_path / "gene2go"), obo=obo, taxon=10090)
    with pytest.raises(ConfigError, match="go aspects"):
        build_go_layers(annotations=gene2go, obo=obo, aspects=("XX",))


def brute_force_top_k(members: np.ndarray, top_k: int) -> dict:
    """Each row's top_k by exact Jaccard (Fraction), ties to the lower index; undirected union."""
    sets = [set(np.flatnonzero(row)) for row in members]
    chosen = {}
    for i, own in enumerate(sets):
        scored = [(-Fraction(len(own & other), len(own | other)), j)
                  for j, other in enumerate(sets) if j != i and own & other]
        for score, j in sorted(scored)[:top_k]:
            chosen[(min(i, j), max(i, j))] = float(-score)
    return chosen


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_jaccard_top_k_equals_brute_force_across_blocks(monkeypatch, seed):
    rng = np.random.default_rng(seed)
    members = (rng.random((37, 12)) < rng.uniform(0.05, 0.5, size=12)).astype(np.float32)
    members[5] = 0  # a row without members has no neighbours
    monkeypatch.setattr(jaccard, "DENSE_COLUMN_FRACTION", 0.25)  # both products take columns
    a, b, weight = jaccard.jaccard_top_k(members, 3, block_bytes=8 * 37 * 5)  # 5-row blocks
    assert dict(zip(zip(a.tolist(), b.tolist()), weight.tolist())) == brute_force_top_k(members, 3)
    assert 5 not in set(a.tolist()) | set(b.tolist())


@pytest.mark.slow
def test_real_go_layers_are_plausible():
    root = SHARED_DATA / "go"
    if not (root / "gene2go.gz").exists():
        pytest.skip(f"shared GO data not found at {root}")
    top_k = 20
    result = build_go_layers(annotations=root / "gene2go.gz", obo=root / "go-basic.obo.gz",
                             top_k=top_k, features=True)
    bp = result.layers["go_bp"]
    assert result.report["layers"]["go_bp"]["genes"] > 15_000
    assert len(pd.unique(bp[["gene_a", "gene_b"]].to_numpy().ravel())) > 15_000
    for name, frame in result.layers.items():
        genes = result.report["layers"][name]["genes"]
        assert len(frame) <= genes * top_k and (frame["weight"] > 0).all()
        assert (frame["weight"] <= 1).all() and not frame.duplicated(["gene_a", "gene_b"]).any()
        # Each edge was chosen by an endpoint: fewer than top_k of that endpoint's edges
        # weigh more (every neighbour it prefers was chosen by it, so is in the layer).
        both = pd.concat([frame.rename(columns={"gene_a": "gene", "gene_b": "other"}),
                          frame.rename(columns={"gene_b": "gene", "gene_a": "other"})])
        rank = both.groupby("gene")["weight"].rank(method="min", ascending=False) - 1
        assert (pd.Series(rank.to_numpy()).groupby(
            np.r_[np.arange(len(frame)), np.arange(len(frame))]).min() < top_k).all()
    weight = {name: edges(frame) for name, frame in result.layers.items()}
    assert weight["go_bp"][("3039", "3043")] > 0.4  # HBA1 - HBB
    assert weight["go_mf"][("5430", "5431")] > 0.5  # POLR2A - POLR2B
    assert weight["go_cc"][("5430", "5431")] > 0.5
    assert weight["go_bp"][("3630", "3643")] > 0.3  # INS - INSR
    features = result.features
    assert features.dtypes.eq(np.uint8).all() and features.shape[0] > 15_000
    sizes = features.sum(axis=0)
    assert sizes.between(5, 500).all()
