"""Gene Ontology network layers and node features, built as GEARS builds its GO graph.

Per aspect (BP, MF, CC): each gene's set of GO terms of that aspect, its annotations
propagated to every ancestor along is_a and part_of (`obo.read_obo`); the Jaccard similarity
between the sets of two genes; each gene keeps its `top_k` most similar genes (ties to the
lower Entrez ID as a string); the union of the kept pairs, undirected, weighted by the
Jaccard similarity, is the layer `go_bp` / `go_mf` / `go_cc`.

Features: one 0/1 column per GO term of the asked aspects annotated (after propagation) to
`feature_min_genes` .. `feature_max_genes` genes, for the genes with at least one of them.

Which annotation rows count: `go_annotations` (NOT qualifiers, evidence codes, taxon, ...).
Annotations propagate along every is_a / part_of link, also one between aspects (go-basic has
none; go.obo does): a layer then holds every propagated term of its namespace.
"""
from __future__ import annotations

import logging
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tfnet_jax.data.sources.go_annotations import ToEntrez, read_annotations
from tfnet_jax.data.sources.jaccard import jaccard_top_k
from tfnet_jax.data.sources.obo import Ontology, read_obo
from tfnet_jax.errors import ConfigError, DataError

log = logging.getLogger(__name__)

LAYER_OF_ASPECT = {"BP": "go_bp", "MF": "go_mf", "CC": "go_cc"}


@dataclass
class GoResult:
    # "go_bp" / "go_mf" / "go_cc" -> gene_a, gene_b (Entrez ID strings, gene_a < gene_b),
    # weight (float64 Jaccard similarity > 0); one row per undirected pair, sorted
    layers: dict[str, pd.DataFrame]
    # with features=True: index "gene" (Entrez ID strings), one uint8 0/1 column per GO term
    features: pd.DataFrame | None
    report: dict  # JSON-able: what was read, dropped (by reason) and built


def build_go_layers(*, annotations: Path, obo: Path, aspects: Sequence[str] = ("BP", "MF", "CC"),
                    evidence_exclude: Sequence[str] = ("ND",), top_k: int = 20,
                    features: bool = False, taxon: int = 9606, to_entrez: ToEntrez | None = None,
                    feature_min_genes: int = 5, feature_max_genes: int = 500,
                    skip_empty: bool = False) -> GoResult:
    """GO layers (and features) from an annotation file (gene2go or GAF 2.2) and an OBO file.

    An aspect without edges is a DataError with the drop counts; with `skip_empty` (tfnet-networks,
    where an empty layer is skipped with a warning and counted) a warning and an empty layer.

    `to_entrez` maps GAF gene symbols / IDs to Entrez IDs (None where unmapped), e.g.
    `lambda names: table.entrez_of(names)[0]` for a `data.genes.GeneTable`; gene2go needs none.
    """
    aspects = _check_arguments(aspects, top_k, feature_min_genes, feature_max_genes)
    go = read_go_memberships(annotations=annotations, obo=obo, aspects=aspects,
                             evidence_exclude=evidence_exclude, taxon=taxon, to_entrez=to_entrez)
    genes, report = go.genes, {**go.report, "top_k": top_k, "layers": {}}

    layers = {}
    for aspect in aspects:
        members = go.members(aspect)
        a, b, weight = jaccard_top_k(members, top_k)
        name = LAYER_OF_ASPECT[aspect]
        if not len(a):
            read = go.report["annotations"]
            message = (f"{annotations}: no GO {aspect} edges: "
                       f"{int((np.diff(members.indptr) > 0).sum())} gene(s) with {aspect} "
                       f"terms; of {read['rows']} rows read, dropped: {_drop_summary(read['dropped'])}")
            if not skip_empty:
                raise DataError(message)
            log.warning("%s", message)
        layers[name] = pd.DataFrame({"gene_a": genes[a], "gene_b": genes[b], "weight": weight})
        report["layers"][name] = {
            "genes": int((np.diff(members.indptr) > 0).sum()),
            "terms": int((np.bincount(members.indices, minlength=members.shape[1]) > 0).sum()),
            "genes_with_edges": len(np.union1d(a, b)), "edges": len(a)}
        log.info("GO %s: %d genes over %d terms -> %s: %d edges", aspect,
                 report["layers"][name]["genes"], report["layers"][name]["terms"], name, len(a))

    table = None
    if features:
        table = _features(go.propagated, genes, go.ontology.terms,
                          np.isin(go.ontology.aspects.astype(str), aspects),
                          feature_min_genes, feature_max_genes)
        report["features"] = {"genes": table.shape[0], "terms": table.shape[1],
                              "min_genes": feature_min_genes, "max_genes": feature_max_genes}
    return GoResult(layers=layers, features=table, report=report)


@dataclass(frozen=True)
class GoMemberships:
    """Genes x GO terms, annotations propagated to every ancestor (is_a, part_of)."""

    genes: np.ndarray  # str [g]: Entrez IDs, sorted as strings
    ontology: Ontology
    propagated: sp.csr_matrix  # float32 0/1 [g, ontology terms]
    report: dict

    def members(self, aspect: str) -> sp.csr_matrix:
        """genes x the terms of one aspect ("BP", "MF", "CC")."""
        return self.propagated[:, np.flatnonzero(self.ontology.aspects == aspect)].tocsr()


def read_go_memberships(*, annotations: Path, obo: Path, aspects: Sequence[str],
                        evidence_exclude: Sequence[str], taxon: int,
                        to_entrez: ToEntrez | None) -> GoMemberships:
    """Read the ontology and the annotations (kept as `go_annotations` says) and propagate."""
    ontology = read_obo(obo)
    annotated = read_annotations(annotations, ontology, aspects=aspects,
                                 evidence_exclude=evidence_exclude, taxon=taxon,
                                 to_entrez=to_entrez)
    genes, gene_rows = np.unique(annotated.genes, return_inverse=True)
    direct = sp.csr_matrix((np.ones(len(gene_rows), dtype=np.float32), (gene_rows, annotated.terms)),
                           shape=(len(genes), len(ontology.terms)))
    direct.sum_duplicates()
    propagated = (direct @ ontology.closure.astype(np.float32)).tocsr()
    propagated.data[:] = 1
    report = {"ontology": ontology.report, "annotations": annotated.report, "genes": len(genes),
              "gene_term_pairs": int(direct.nnz), "propagated_gene_term_pairs": int(propagated.nnz)}
    return GoMemberships(genes=genes, ontology=ontology, propagated=propagated, report=report)


def _drop_summary(dropped: dict) -> str:
    counts = {reason: value["count"] if isinstance(value, dict) else value
              for reason, value in dropped.items()}
    return ", ".join(f"{reason} {count}" for reason, count in counts.items() if count) or "none"


def _check_arguments(aspects: Sequence[str], top_k: int, feature_min_genes: int,
                     feature_max_genes: int) -> list[str]:
    if isinstance(aspects, str):
        aspects = [aspects]
    aspects = list(dict.fromkeys(aspects))
    unknown = [a for a in aspects if a not in LAYER_OF_ASPECT]
    if unknown or not aspects:
        raise ConfigError(f"go aspects: {unknown or aspects} not among {list(LAYER_OF_ASPECT)}")
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1:
        raise ConfigError(f"go top_k: {top_k!r}; expected an integer >= 1")
    if not 1 <= feature_min_genes <= feature_max_genes:
        raise ConfigError(f"go feature_min_genes / feature_max_genes: {feature_min_genes} / "
                          f"{feature_max_genes}; expected 1 <= min <= max")
    return aspects


def _features(propagated: sp.csr_matrix, genes: np.ndarray, terms: np.ndarray,
              asked: np.ndarray, min_genes: int, max_genes: int) -> pd.DataFrame:
    """Term membership (uint8) over the asked terms with min_genes..max_genes genes."""
    counts = np.bincount(propagated.indices, minlength=propagated.shape[1])
    columns = np.flatnonzero(asked & (counts >= min_genes) & (counts <= max_genes))
    members = propagated[:, columns].tocsr()
    rows = np.flatnonzero(np.diff(members.indptr) > 0)
    values = members[rows].astype(np.uint8).toarray()
    return pd.DataFrame(values, index=pd.Index(genes[rows], name="gene"),
                        columns=pd.Index(terms[columns], name="term"))
