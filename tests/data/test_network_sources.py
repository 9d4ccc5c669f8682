"""tfnet-networks' readers on tiny hand-made files in each public format, with hand-computed
edges and weights (tests/network_source_files.py), and the gene_info reader of GeneTable."""
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT as REPO
from network_source_files import (
    COEXPRESSION_EDGES,
    CORUM_EDGES,
    GENE_INFO,
    GMT_EDGES,
    PATHWAY_EDGES,
    REACTOME_EDGES,
    edges_of,
    write,
    write_all,
)

from tfnet_jax.data.genes import GeneTable
from tfnet_jax.data.sources.build import build_networks
from tfnet_jax.data.sources.coexpression import top_k_pairs
from tfnet_jax.data.sources.edges import co_membership
from tfnet_jax.errors import DataError


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_all(tmp_path_factory.mktemp("sources"))


def build(out, files, **keys):
    return build_networks(out, gene_info=files["gene_info"], **keys)


def layer(out, name):
    return edges_of(out / "networks" / f"{name}.tsv.gz")


def assert_edges(found: dict, expected: dict):
    assert set(found) == set(expected)
    for pair, weight in expected.items():
        assert found[pair] == pytest.approx(weight, rel=1e-6), pair


# ---------------------------------------------------------------- gene_info
def test_gene_info_symbols_synonyms_and_ensembl(files):
    table = GeneTable.from_gene_info(files["gene_info"], taxon=9606)
    assert table.entrez.tolist() == ["1", "2", "3", "4", "5"]
    # The first Ensembl ID of dbXrefs, wherever it is among the cross-references; '-' = none.
    assert table.ensembl.tolist() == ["ENSG00000000001", "ENSG00000000002", "ENSG00000000003",
                                      None, "ENSG00000000005"]
    ids, unmapped = table.entrez_of(["AAA", "B1", "SHARED", "ENSG00000000005", "4", "99"])
    assert ids == ["1", "2", None, "5", "4", None]  # SHARED names genes 1 and 2: not guessed
    assert unmapped == ["SHARED", "99"]
    assert table.unique_symbols["CCC"] == "3"
    # from_file sees a gene_info by its header and reads it the same way
    assert GeneTable.from_file(files["gene_info"]).entrez_of(["C1"], report=False)[0] == ["3"]


def test_gene_info_of_another_species_names_file_and_line(tmp_path):
    path = write(tmp_path / "mixed.gene_info", GENE_INFO.replace("9606\t3\t", "10090\t3\t"))
    with pytest.raises(DataError, match=r"mixed.gene_info, line 4: tax_id 10090, but taxon=9606"):
        GeneTable.from_gene_info(path, taxon=9606)


# ---------------------------------------------------------------- STRING
def test_string_links_with_info_and_aliases(files, tmp_path):
    report = build(tmp_path, files, string=files["string"], string_info=files["string_info"],
                   string_aliases=files["string_aliases"])
    # (1,2) 0.9 in both directions; (1,3) via P3's Entrez alias; (1,4) through P5 (800) and
    # P6 (DDD by its alias symbol, 850): the higher score; P4 (ambiguous name) unmapped.
    assert_edges(layer(tmp_path, "string_combined"), {(1, 2): 0.9, (1, 3): 0.7, (1, 4): 0.85})
    assert report["sources"]["string_info"]["proteins_mapped_by"] == {
        "alias_entrez": 1, "alias_symbol": 1, "preferred_name": 3}
    entry = report["sources"]["string"]
    assert (entry["rows_read"], entry["rows_kept"]) == (14, 10)
    assert entry["dropped"] == {"score below string_min_score": 2, "protein mapped to no gene": 2,
                                "two proteins of one gene": 2,
                                "pair listed again (other direction or protein)": 5}
    stats = report["layers"]["string_combined"]
    assert (stats["genes"], stats["edges"], stats["ids_mapped"], stats["ids_unmapped"]) == (4, 3, 5, 1)
    assert stats["unmapped_examples"] == ["9606.P4"]


def test_string_detailed_channels_and_min_score(files, tmp_path):
    build(tmp_path, files, string=files["string_detailed"], string_info=files["string_info"],
          string_aliases=files["string_aliases"], string_channels="[combined,experimental]",
          string_min_score="720")
    assert_edges(layer(tmp_path, "string_combined"), {(1, 2): 0.9})
    assert_edges(layer(tmp_path, "string_experimental"), {(1, 2): 0.75, (2, 3): 0.72})


def test_string_protein_missing_from_info_names_line(files, tmp_path):
    links = write(tmp_path / "links.txt", "protein1 protein2 combined_score\n"
                  "9606.P1 9606.P2 900\n9606.P1 9606.P9 900\n")
    with pytest.raises(DataError, match=r"links.txt, line 3: protein '9606.P9' is not in the info"):
        build(tmp_path / "out", files, string=links, string_info=files["string_info"])


# ---------------------------------------------------------------- BioGRID, CORUM
def test_biogrid_counts_supporting_rows_per_pair(files, tmp_path):
    report = build(tmp_path, files, biogrid=files["biogrid"])
    assert_edges(layer(tmp_path, "biogrid_physical"), {(1, 2): 2, (1, 3): 1})
    assert_edges(layer(tmp_path, "biogrid_genetic"), {(1, 2): 1, (3, 4): 1})
    assert report["sources"]["biogrid"]["dropped"] == {
        "interactor not of taxon 9606": 1, "interactor mapped to no gene": 1, "self interaction": 1}
    assert report["layers"]["biogrid_physical"]["unmapped_examples"] == ["99"]


@pytest.mark.parametrize("key", ["corum", "corum_json"])
def test_corum_human_complexes_co_membership(files, tmp_path, key):
    report = build(tmp_path, files, corum=files[key])
    assert_edges(layer(tmp_path, "corum"), CORUM_EDGES)
    assert report["sources"]["corum"]["dropped"] == {"organism not Human": 1}


# ---------------------------------------------------------------- gene sets
def test_gmt_reactome_and_pathways(files, tmp_path):
    report = build(tmp_path, files, gmt=[files["gmt"]], gmt_max_size=4, reactome=files["reactome"],
                   pathways=files["pathways"])
    assert_edges(layer(tmp_path, "gmt_hallmark_v1_symbols"), GMT_EDGES)
    assert_edges(layer(tmp_path, "reactome"), REACTOME_EDGES)
    assert_edges(layer(tmp_path, "pathways"), PATHWAY_EDGES)
    gmt = report["sources"]["gmt_hallmark_v1_symbols"]
    assert (gmt["sets"], gmt["sets_over_max_size"]) == (4, 1)
    assert gmt["dropped"] == {"gene mapped to no gene ID": 1,
                              "in a set over gmt_max_size or of one gene": 5}
    assert report["layers"]["gmt_hallmark_v1_symbols"]["unmapped_examples"] == ["NOPE"]
    assert report["sources"]["reactome"]["dropped"] == {"species not Homo sapiens": 2}


def test_gmt_line_with_too_few_fields_names_line(files, tmp_path):
    path = write(tmp_path / "bad.gmt", "S1\td\tAAA\tBBB\nS2\tonly a description\n")
    with pytest.raises(DataError, match=r"bad.gmt, line 2: 2 tab-separated field"):
        build(tmp_path / "out", files, gmt=[path])


def test_co_membership_equals_a_loop_over_sets():
    rng = np.random.default_rng(0)
    sets = [rng.choice(300, size=rng.integers(1, 40)) for _ in range(150)]  # repeats inside
    expected: dict = {}
    for genes in sets:
        genes = np.unique(genes)
        if len(genes) > 30:
            continue
        for i, a in enumerate(genes):
            for b in genes[i + 1:]:
                expected[(a, b)] = expected.get((a, b), 0.0) + 1 / len(genes)
    codes = np.concatenate([np.full(len(g), i) for i, g in enumerate(sets)])
    edges, skipped, _ = co_membership(codes, np.concatenate(sets) + 1000, max_size=30)
    assert skipped == sum(len(np.unique(g)) > 30 for g in sets)
    found = {(a - 1000, b - 1000): w for a, b, w in zip(edges.gene_a, edges.gene_b, edges.weight)}
    assert set(found) == set(expected)
    assert all(found[p] == pytest.approx(w) for p, w in expected.items())


# ---------------------------------------------------------------- co-expression
@pytest.mark.parametrize("key", ["coexpression_csv", "coexpression_h5ad"])
def test_coexpression_top_k_union(files, tmp_path, key):
    report = build(tmp_path, files, coexpression=files[key], coexpression_top_k=1)
    assert_edges(layer(tmp_path, "coexpression"), COEXPRESSION_EDGES)
    assert report["sources"]["coexpression"]["dropped"] == {
        "gene mapped to no gene ID": 1, "gene constant across samples": 1}


def test_coexpression_blocks_equal_the_full_matrix(monkeypatch):
    values = np.random.default_rng(1).normal(size=(30, 50)).astype(np.float32)
    full = np.abs(np.corrcoef(values.T))
    np.fill_diagonal(full, -1)
    monkeypatch.setattr("tfnet_jax.data.sources.coexpression.BLOCK_CELLS", 7 * 50)  # 7 genes a block
    i, j, r = top_k_pairs(values, 3)
    for gene in range(50):
        assert set(j[i == gene]) == set(np.argsort(-full[gene])[:3])
    np.testing.assert_allclose(r, full[i, j], rtol=1e-4)


# ---------------------------------------------------------------- output
def test_symbol_and_ensembl_namespaces(files, tmp_path):
    build(tmp_path / "sym", files, pathways=files["pathways"], ids="symbol")
    assert_edges(layer(tmp_path / "sym", "pathways"), {("AAA", "BBB"): 1 / 3, ("AAA", "CCC"): 1 / 3,
                                                       ("BBB", "CCC"): 1 / 3, ("CCC", "EEE"): 0.5})
    report = build(tmp_path / "ens", files, reactome=files["reactome"], ids="ensembl")
    # DDD (4) has no Ensembl ID: its edge is lost, and counted
    assert_edges(layer(tmp_path / "ens", "reactome"), {("ENSG00000000001", "ENSG00000000002"): 0.5})
    assert report["layers"]["reactome"]["edges_lost_mapping_to_ensembl"] == 1


def test_report_file_and_data_dir_loader(files, tmp_path, caplog):
    from tfnet_jax.data.perturbation.datadir import read_network_layers
    report = build(tmp_path, files, reactome=files["reactome"], pathways=files["pathways"])
    saved = json.loads((tmp_path / "networks" / "report.json").read_text())
    assert saved == json.loads(json.dumps(report))
    digest = hashlib.sha256(files["reactome"].read_bytes()).hexdigest()
    assert saved["sources"]["reactome"]["sha256"] == digest
    assert sorted(p.name for p in (tmp_path / "networks").iterdir()) == [
        "pathways.tsv.gz", "reactome.tsv.gz", "report.json"]
    with caplog.at_level("WARNING"):
        layers = read_network_layers(tmp_path / "networks")
    assert not caplog.records  # report.json is skipped silently
    assert layers["reactome"]["gene_a"].tolist() == ["1", "3"]


def test_rebuild_replaces_only_its_own_layers(files, tmp_path):
    build(tmp_path, files, pathways=files["pathways"])
    networks = tmp_path / "networks"
    (networks / "ppi.tsv").write_text("gene_a\tgene_b\n1\t2\n")
    (networks / "reactome.csv").write_text("gene_a,gene_b\n7,8\n")  # an older, hand-made version
    before = (networks / "pathways.tsv.gz").read_bytes()
    build(tmp_path, files, reactome=files["reactome"])
    assert sorted(p.name for p in networks.iterdir()) == [
        "pathways.tsv.gz", "ppi.tsv", "reactome.tsv.gz", "report.json"]
    assert (networks / "pathways.tsv.gz").read_bytes() == before
    assert_edges(layer(tmp_path, "reactome"), REACTOME_EDGES)


def test_empty_layer_is_skipped_and_reported(files, tmp_path, caplog):
    unknown = write(tmp_path / "unknown.gmt", "S1\td\tNOPE1\tNOPE2\n")
    with caplog.at_level("WARNING"):
        report = build(tmp_path / "out", files, gmt=[unknown], pathways=files["pathways"])
    assert report["skipped_layers"] == {"gmt_unknown": "no edge left after mapping genes"}
    assert "gmt_unknown" in caplog.text and not (tmp_path / "out/networks/gmt_unknown.tsv.gz").exists()
    with pytest.raises(DataError, match="no layer has any edge"):
        build(tmp_path / "out2", files, gmt=[unknown])


def test_without_gene_info_entrez_ids_are_taken_as_they_are(files, tmp_path):
    build_networks(tmp_path, pathways=files["pathways"], reactome=files["reactome"])
    assert_edges(layer(tmp_path, "pathways"), PATHWAY_EDGES)
    assert_edges(layer(tmp_path, "reactome"), REACTOME_EDGES)


def test_go_wiring_and_features_file(files, tmp_path, monkeypatch):
    """A fake `build_go_layers` checks the call (keys parsed as the command gives them) and
    what is written from its result in another namespace; tests/data/test_go_sources.py builds
    from real (tiny) GO files."""
    import types

    from tfnet_jax.data.perturbation.signatures import read_node_features
    calls = {}

    def build_go_layers(**kwargs):
        calls.update(kwargs)
        assert kwargs["to_entrez"](["CCC", "C1", "NOPE"]) == ["3", "3", None]
        layers = {"go_bp": pd.DataFrame({"gene_a": ["1", "3"], "gene_b": ["2", "1"], "weight": [0.5, 0.25]})}
        features = pd.DataFrame([[1, 0, 1], [0, 1, 1]], index=["1", "4"],
                                columns=["GO:0000001", "GO:0000002", "GO:0000003"], dtype=np.uint8)
        return types.SimpleNamespace(layers=layers, features=features, report={"genes": 2, "annotations": {"rows": 5, "kept": 4, "dropped": {"evidence": {"count": 1}, "aspect": 0}}})

    monkeypatch.setattr("tfnet_jax.data.sources.build.build_go_layers", build_go_layers)
    go, obo = write(tmp_path / "gene2go", "x\n"), write(tmp_path / "go.obo", "y\n")
    report = build(tmp_path / "out", files, go=go, obo=obo, go_aspects="[bp]", go_features="true",
                   go_top_k=5, go_evidence_exclude="[ND,IEA]", ids="symbol")
    assert {k: v for k, v in calls.items() if k != "to_entrez"} == dict(
        annotations=go, obo=obo, aspects=["BP"], evidence_exclude=["ND", "IEA"], top_k=5,
        features=True, taxon=9606, skip_empty=True)
    assert_edges(layer(tmp_path / "out", "go_bp"), {("AAA", "BBB"): 0.5, ("AAA", "CCC"): 0.25})
    assert report["sources"]["go"]["reader"]["genes"] == 2
    assert report["sources"]["go"]["dropped"] == {"evidence": 1}
    genes, values = read_node_features(tmp_path / "out" / "node_features_go.csv.gz")
    assert genes.tolist() == ["AAA", "DDD"]
    np.testing.assert_array_equal(values, [[1, 0, 1], [0, 1, 1]])


def test_a_go_aspect_without_edges_is_skipped_not_fatal(files, tmp_path):
    """gene2go with BP rows only: go_mf / go_cc are empty layers, skipped with a warning and
    counted in the report, while go_bp and the pathways layer are still written."""
    from test_go_sources import BP_TOP1, OBO, ROWS, write_gene2go
    go = write_gene2go(tmp_path / "gene2go", rows=[row for row in ROWS if row[7] == "P"])
    report = build_networks(tmp_path / "out", go=go, obo=write(tmp_path / "go.obo", OBO),
                            go_top_k=1, pathways=files["pathways"])
    assert set(report["layers"]) == {"go_bp", "pathways"}
    assert set(report["skipped_layers"]) == {"go_mf", "go_cc"}
    assert_edges(layer(tmp_path / "out", "go_bp"),
                 {tuple(sorted(map(int, pair))): w for pair, w in BP_TOP1.items()})
    assert_edges(layer(tmp_path / "out", "pathways"), PATHWAY_EDGES)


# ---------------------------------------------------------------- end to end
def test_a_built_dir_trains_transcriptionnet(files, tmp_path):
    """Layers built from every hand-made public format (STRING, BioGRID, CORUM, GMT,
    NCBI2Reactome, pathway table, co-expression h5ad, gene2go + OBO with GO features) plus a
    tiny signatures/ table: a short TranscriptionNet run (data=dir) trains on them, the GO
    features read as its node features."""
    from conftest import TINY_MODEL
    from test_go_sources import OBO, write_gene2go

    from tfnet_jax.config import compose
    from tfnet_jax.run import train_and_evaluate
    rng = np.random.default_rng(0)
    genes = [str(g) for g in range(1, 81)]
    info = GENE_INFO + "".join(f"9606\t{g}\tG{g}\t-\t-\t-\t1\t-\tgene\tprotein-coding\n"
                               for g in genes[5:])
    sources = tmp_path / "sources"
    sources.mkdir()
    write(sources / "gene_info", info)
    write(sources / "sets.gmt", "".join(
        f"S{i}\td\t" + "\t".join(f"G{g}" for g in rng.choice(genes[5:], 8, replace=False)) + "\n"
        for i in range(30)))
    write(sources / "pathways.tsv", "gene\tpathway\n" + "".join(
        f"{g}\tP{int(g) % 6}\n" for g in genes))
    write(sources / "go-basic.obo.gz", OBO)
    root = tmp_path / "data"
    report = build_networks(
        root, gene_info=sources / "gene_info", gmt=[sources / "sets.gmt", files["gmt"]],
        pathways=sources / "pathways.tsv", string=files["string"], string_info=files["string_info"],
        string_aliases=files["string_aliases"], biogrid=files["biogrid"], corum=files["corum"],
        reactome=files["reactome"], coexpression=files["coexpression_h5ad"],
        go=write_gene2go(sources / "gene2go"), obo=sources / "go-basic.obo.gz", go_features=True)
    layers = {"string_combined", "biogrid_physical", "biogrid_genetic", "corum", "gmt_sets",
              "gmt_hallmark_v1_symbols", "reactome", "pathways", "coexpression", "go_bp", "go_mf",
              "go_cc"}
    assert set(report["layers"]) == layers
    (root / "signatures").mkdir()
    readouts = genes[:10]
    values = rng.normal(size=(48, 10)).round(3)
    frame = pd.DataFrame(values, columns=readouts)
    frame.insert(0, "pert_gene", genes[20:68])
    frame.to_csv(root / "signatures" / "KD.csv", index=False)
    cfg = compose(["data=dir", f"data.root={root}", *[f"model.{k}={v}" for k, v in TINY_MODEL.items()],
                   "train.max_steps=6", "train.batch_size=8", "train.eval_every=3", "train.log_every=3",
                   "train.warmup_steps=1", "train.progress=false"])
    from tfnet_jax.data.perturbation.datadir import load_data_dir
    data = load_data_dir(root)
    assert [layer.name for layer in data.layers] == sorted(layers)
    assert data.feature_blocks[0].name == "node_features_go" and data.has_features.sum() == 5
    metrics = train_and_evaluate(cfg, tmp_path / "run")
    assert np.isfinite(metrics["train"]["best_score"])
    losses = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert losses and all(np.isfinite(v) for row in losses for v in row.values()
                          if isinstance(v, float))


@pytest.mark.e2e
def test_command_in_a_subprocess(files, tmp_path):
    import os
    import subprocess
    import sys
    result = subprocess.run(
        [sys.executable, "-m", "tfnet_jax.networks", f"out={tmp_path}", f"gene_info={files['gene_info']}",
         f"gmt=[{files['gmt']}]", "gmt_max_size=4", f"pathways={files['pathways']}"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])})
    assert result.returncode == 0, result.stderr
    assert "gmt_hallmark_v1_symbols" in result.stderr and "sources:" in result.stderr  # the report
    assert_edges(layer(tmp_path, "gmt_hallmark_v1_symbols"), GMT_EDGES)
    bad = subprocess.run([sys.executable, "-m", "tfnet_jax.networks", f"out={tmp_path}",
                          "gmt_max_sise=4"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        bad.stderr.strip()] and "did you mean gmt_max_size" in bad.stderr


@pytest.mark.slow
def test_real_kegg_pathways_with_gene_info(tmp_path):
    shared = REPO.parent / "shared" / "data" / "go"
    if not (shared / "kegg_pathways.tsv.gz").is_file() or not (shared / "gene_info.gz").is_file():
        pytest.skip(f"{shared}: the real annotation files are absent")
    report = build_networks(tmp_path, gene_info=shared / "gene_info.gz",
                            pathways=shared / "kegg_pathways.tsv.gz", ids="symbol")
    stats = report["layers"]["pathways"]
    assert report["sources"]["pathways"]["rows_read"] == 16312
    assert stats["genes"] > 5000 and stats["edges"] > 100_000
    edges = layer(tmp_path, "pathways")
    # TP53 and MDM2 share KEGG's p53 signalling pathway (and others)
    assert edges[("MDM2", "TP53")] > 0


def test_string_info_and_aliases_gzipped_by_content_not_name(files, tmp_path):
    """The links, info and aliases files are told plain or gzipped by content: a gzipped
    info / aliases file without .gz in its name reads as the named one does."""
    import gzip
    info, aliases = tmp_path / "protein.info.txt", tmp_path / "protein.aliases.txt"
    info.write_bytes(files["string_info"].read_bytes())  # gzipped, named .txt
    aliases.write_bytes(gzip.compress(files["string_aliases"].read_bytes()))
    expected = build(tmp_path / "named", files, string=files["string"],
                     string_info=files["string_info"], string_aliases=files["string_aliases"])
    found = build(tmp_path / "unnamed", files, string=files["string"], string_info=info,
                  string_aliases=aliases)
    assert found["layers"]["string_combined"]["edges"] == expected["layers"]["string_combined"]["edges"]
    assert layer(tmp_path / "unnamed", "string_combined") == layer(tmp_path / "named", "string_combined")
    corrupt = tmp_path / "corrupt.info.txt.gz"
    corrupt.write_bytes(files["string_info"].read_bytes()[:40])
    with pytest.raises(DataError, match=r"corrupt\.info\.txt\.gz: cannot read the STRING protein\.info"):
        build(tmp_path / "bad", files, string=files["string"], string_info=corrupt)


def test_go_features_of_genes_sharing_a_symbol_are_dropped_not_guessed(tmp_path):
    """ids=symbol: two Entrez genes with one symbol would make one feature row; which gene's
    terms it holds would be a guess, so neither is written (the others are)."""
    from tfnet_jax.data.sources.output import features_in_namespace
    info = tmp_path / "gene_info"
    write(info, GENE_INFO + "9606\t6\tAAA\t-\t-\t-\t1\t-\tanother a\tprotein-coding\n")
    table = GeneTable.from_gene_info(info)
    features = pd.DataFrame([[1, 0], [0, 1], [1, 1]], index=["1", "6", "3"], columns=["GO:1", "GO:2"])
    renamed = features_in_namespace(features, "symbol", table)
    assert renamed.index.tolist() == ["CCC"]
    assert renamed.loc["CCC"].tolist() == [1, 1]
