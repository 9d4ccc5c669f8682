"""Tiny hand-made files in the public formats tfnet-networks reads, shared by its tests.

Genes (gene_info): 1 AAA, 2 BBB, 3 CCC, 4 DDD (no Ensembl ID), 5 EEE; the synonym SHARED
names both 1 and 2 (ambiguous), A1 names 1, B1 names 2.
"""
import gzip
import json

import numpy as np
import pandas as pd

GENE_INFO = """#tax_id\tGeneID\tSymbol\tLocusTag\tSynonyms\tdbXrefs\tchromosome\tmap_location\tdescription\ttype_of_gene
9606\t1\tAAA\t-\tA1|SHARED\tMIM:100|Ensembl:ENSG00000000001\t1\t-\tgene a\tprotein-coding
9606\t2\tBBB\t-\tB1|SHARED\tEnsembl:ENSG00000000002\t1\t-\tgene b\tprotein-coding
9606\t3\tCCC\t-\tC1\tEnsembl:ENSG00000000003\t2\t-\tgene c\tprotein-coding
9606\t4\tDDD\t-\t-\t-\t2\t-\tgene d\tprotein-coding
9606\t5\tEEE\t-\tE1\tHGNC:HGNC:5|Ensembl:ENSG00000000005\tX\t-\tgene e\tprotein-coding
"""

# P3's preferred name maps to nothing, its Entrez alias to 3 (the MIM number is not an Entrez
# source); P4's name is the ambiguous synonym; P6 is named EEE but its alias is DDD's symbol.
STRING_INFO = """#string_protein_id\tpreferred_name\tprotein_size\tannotation
9606.P1\tAAA\t100\tprotein a
9606.P2\tB1\t100\tprotein b
9606.P3\tZZZ\t100\tprotein c
9606.P4\tSHARED\t100\tambiguous
9606.P5\tDDD\t100\tprotein d
9606.P6\tEEE\t100\tanother protein of d
"""
STRING_ALIASES = """#string_protein_id\talias\tsource
9606.P3\t3\tEnsembl_EntrezGene
9606.P3\t2\tEnsembl_MIM_GENE
9606.P6\tDDD\tEnsembl_HGNC_symbol
9606.P6\tnot-a-gene\tBLAST_UniProt_GN
"""
# Both directions, as STRING lists them. Gene pairs: (1,2) 900; (1,3) 700; P4 unmapped;
# (2,3) 699 < 700; (1,4) via P5 800 and via P6 850 -> 850; P5-P6 both gene 4: a self loop.
STRING_LINKS = """protein1 protein2 combined_score
9606.P1 9606.P2 900
9606.P2 9606.P1 900
9606.P1 9606.P3 700
9606.P3 9606.P1 700
9606.P1 9606.P4 950
9606.P4 9606.P1 950
9606.P2 9606.P3 699
9606.P3 9606.P2 699
9606.P5 9606.P1 800
9606.P1 9606.P5 800
9606.P6 9606.P1 850
9606.P1 9606.P6 850
9606.P5 9606.P6 990
9606.P6 9606.P5 990
"""
STRING_DETAILED = """protein1 protein2 neighborhood fusion cooccurence coexpression experimental database textmining combined_score
9606.P1 9606.P2 0 0 0 0 750 0 0 900
9606.P2 9606.P1 0 0 0 0 750 0 0 900
9606.P1 9606.P3 0 0 0 100 0 0 0 700
9606.P3 9606.P1 0 0 0 100 0 0 0 700
9606.P2 9606.P3 0 0 0 0 720 0 0 650
9606.P3 9606.P2 0 0 0 0 720 0 0 650
"""

BIOGRID_HEADER = ("#BioGRID Interaction ID\tEntrez Gene Interactor A\tEntrez Gene Interactor B\t"
                  "Official Symbol Interactor A\tExperimental System\tExperimental System Type\t"
                  "Organism ID Interactor A\tOrganism ID Interactor B\tThroughput")
BIOGRID_ROWS = [  # A, B, system, type, taxon A, taxon B
    ("1", "2", "Two-hybrid", "physical", "9606", "9606"),
    ("2", "1", "Affinity Capture-MS", "physical", "9606", "9606"),
    ("1", "3", "Two-hybrid", "physical", "9606", "9606"),
    ("1", "2", "Synthetic Lethality", "genetic", "9606", "9606"),
    ("1", "3", "Two-hybrid", "physical", "9606", "10090"),
    ("1", "99", "Two-hybrid", "physical", "9606", "9606"),
    ("2", "2", "Two-hybrid", "physical", "9606", "9606"),
    ("3", "4", "Dosage Rescue", "genetic", "9606", "9606"),
]
BIOGRID = BIOGRID_HEADER + "\n" + "".join(
    f"{i}\t{a}\t{b}\tSYM\t{system}\t{kind}\t{ta}\t{tb}\tLow Throughput\n"
    for i, (a, b, system, kind, ta, tb) in enumerate(BIOGRID_ROWS, start=1))

CORUM_RECORDS = [
    {"ComplexID": 1, "ComplexName": "c1", "Organism": "Human", "subunits(Entrez IDs)": "1;2;3"},
    {"ComplexID": 2, "ComplexName": "c2", "Organism": "Human", "subunits(Entrez IDs)": "2;3"},
    {"ComplexID": 3, "ComplexName": "c3", "Organism": "Mouse", "subunits(Entrez IDs)": "1;4"},
    {"ComplexID": 4, "ComplexName": "c4", "Organism": "Human", "subunits(Entrez IDs)": "4;None;99"},
]
# (1,2) 1/3; (1,3) 1/3; (2,3) 1/3 + 1/2; c4 has one mapped subunit: no pair.
CORUM_EDGES = {(1, 2): 1 / 3, (1, 3): 1 / 3, (2, 3): 1 / 3 + 1 / 2}

# SET_C (5 genes) is over gmt_max_size=4; NOPE maps to nothing; A1 is AAA's synonym.
GMT = ("SET_A\tdesc\tAAA\tBBB\t3\n"
       "SET_B\tdesc\tBBB\tCCC\tNOPE\n"
       "SET_C\tdesc\tAAA\tBBB\tCCC\tDDD\tEEE\n"
       "SET_D\thttp://x\tA1\tDDD\t\n")
GMT_EDGES = {(1, 2): 1 / 3, (1, 3): 1 / 3, (2, 3): 1 / 3 + 1 / 2, (1, 4): 1 / 2}

REACTOME = ("1\tR-HSA-1\thttps://reactome.org/1\tP1\tTAS\tHomo sapiens\n"
            "2\tR-HSA-1\thttps://reactome.org/1\tP1\tTAS\tHomo sapiens\n"
            "3\tR-HSA-2\thttps://reactome.org/2\tP2\tIEA\tHomo sapiens\n"
            "4\tR-HSA-2\thttps://reactome.org/2\tP2\tIEA\tHomo sapiens\n"
            "1\tR-MMU-1\thttps://reactome.org/3\tP1\tIEA\tMus musculus\n"
            "3\tR-MMU-1\thttps://reactome.org/3\tP1\tIEA\tMus musculus\n")
REACTOME_EDGES = {(1, 2): 0.5, (3, 4): 0.5}

PATHWAYS = "GeneID\tpathway\n1\thsa1\n2\thsa1\n3\thsa1\n3\thsa2\n5\thsa2\n"
PATHWAY_EDGES = {(1, 2): 1 / 3, (1, 3): 1 / 3, (2, 3): 1 / 3, (3, 5): 1 / 2}

# Centred columns (sum of squares 10, 10, 10, 8): r(A,B) = 9/10, r(A,C) = 3/10, r(B,C) = 0,
# r(A,D) = -4/sqrt(80), r(B,D) = -6/sqrt(80), r(C,D) = -2/sqrt(80). Top 1 per gene: A-B, B-A,
# C-A, D-B. EEE is constant, NOPE maps to nothing.
EXPRESSION = pd.DataFrame({"AAA": [-2, -1, 0, 1, 2], "BBB": [-2, -1, 0, 2, 1],
                           "CCC": [1, -2, 0, -1, 2], "DDD": [0, 2, 0, -2, 0],
                           "EEE": [3, 3, 3, 3, 3], "NOPE": [1, 5, 2, 0, 1]},
                          index=[f"s{i}" for i in range(5)], dtype=np.float32) + 10.0
COEXPRESSION_EDGES = {(1, 2): 0.9, (1, 3): 0.3, (2, 4): 6 / np.sqrt(80)}


def write(path, text: str):
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def write_all(folder) -> dict:
    """Every hand-made file in `folder`; name -> path."""
    import anndata
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "gene_info": write(folder / "Homo_sapiens.gene_info.gz", GENE_INFO),
        "string_info": write(folder / "9606.protein.info.v12.0.txt.gz", STRING_INFO),
        "string_aliases": write(folder / "9606.protein.aliases.v12.0.txt", STRING_ALIASES),
        "string": write(folder / "9606.protein.links.v12.0.txt.gz", STRING_LINKS),
        "string_detailed": write(folder / "9606.protein.links.detailed.v12.0.txt", STRING_DETAILED),
        "biogrid": write(folder / "BIOGRID-ORGANISM-Homo_sapiens-4.4.tab3.txt", BIOGRID),
        "corum": write(folder / "allComplexes.txt", pd.DataFrame(CORUM_RECORDS).to_csv(sep="\t", index=False)),
        "corum_json": write(folder / "allComplexes.json", json.dumps(CORUM_RECORDS)),
        "gmt": write(folder / "hallmark.v1.symbols.gmt", GMT),
        "reactome": write(folder / "NCBI2Reactome.txt", REACTOME),
        "pathways": write(folder / "kegg_pathways.tsv.gz", PATHWAYS),
        "coexpression_csv": folder / "expression.csv",
        "coexpression_h5ad": folder / "expression.h5ad",
    }
    EXPRESSION.to_csv(files["coexpression_csv"], index_label="sample")
    anndata.AnnData(X=EXPRESSION.to_numpy(), obs=pd.DataFrame(index=EXPRESSION.index),
                    var=pd.DataFrame(index=EXPRESSION.columns)).write_h5ad(files["coexpression_h5ad"])
    return files


def edges_of(path) -> dict:
    """(gene_a, gene_b) -> weight of a written layer, checking its columns and canonical form."""
    frame = pd.read_csv(path, sep="\t")
    assert list(frame.columns) == ["gene_a", "gene_b", "weight"]
    pairs = list(zip(frame["gene_a"], frame["gene_b"]))
    assert all(a != b for a, b in pairs)
    assert len({frozenset(p) for p in pairs}) == len(pairs)  # each undirected pair once
    return {tuple(sorted(pair)): w for pair, w in zip(pairs, frame["weight"])}
