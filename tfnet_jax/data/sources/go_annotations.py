"""Reading GO annotations (NCBI `gene2go` or GAF 2.2, plain or gzipped) for one species.

Policy (the one place it is defined):
- The format is told from the content: a first line `#tax_id ...` (the gene2go header) or
  `!...` (GAF's `!gaf-version: 2.x` header and comments). GAF versions other than 2.x are
  refused.
- Every data row is counted once, under the first reason that drops it, in this order:
  other taxon (gene2go `tax_id`; GAF's first `taxon:` of column 13), a `NOT` qualifier,
  an evidence code in `evidence_exclude`, a GO ID that is obsolete or not in the ontology,
  a term of an aspect not asked for (the ontology's namespace decides, not the file's
  Category / Aspect column), a gene without an Entrez ID.
- An alt_id counts as its primary term.
- gene2go genes are Entrez GeneIDs already (digits, else a DataError naming the line);
  GAF genes are mapped through `to_entrez`: the DB Object Symbol first, then the DB Object
  ID for those whose symbol does not map.
- A row with another number of tab-separated fields than the header (gene2go) or the 17 of
  GAF 2.2 is a DataError naming the file and line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from tfnet_jax.data.io.tables import preview
from tfnet_jax.data.io.text import numbered_lines
from tfnet_jax.data.sources.obo import OBSOLETE, UNKNOWN, Ontology
from tfnet_jax.errors import DataError

GENE2GO_COLUMNS = ("tax_id", "GeneID", "GO_ID", "Evidence", "Qualifier")
GAF_COLUMNS = 17
# 0-based GAF 2.2 columns
GAF_OBJECT_ID, GAF_SYMBOL, GAF_QUALIFIER, GAF_GO_ID, GAF_EVIDENCE, GAF_TAXON = 1, 2, 3, 4, 6, 12
EXAMPLES = 5

ToEntrez = Callable[[Sequence[str]], "list[str | None]"]


@dataclass(frozen=True)
class Annotations:
    """Kept annotation rows: one (Entrez gene, ontology term index) per row, duplicates kept."""

    genes: np.ndarray  # str [m]
    terms: np.ndarray  # int64 [m]: indices into Ontology.terms
    report: dict


@dataclass
class _Rows:
    """The columns of the rows of the asked taxon, as read."""

    genes: list[str]
    symbols: list[str]  # GAF only
    terms: list[str]
    evidence: list[str]
    qualifiers: list[str]
    lines: list[int]


def read_annotations(path: str | Path, ontology: Ontology, *, aspects: Sequence[str],
                     evidence_exclude: Sequence[str], taxon: int,
                     to_entrez: ToEntrez | None) -> Annotations:
    """The annotation rows kept by the module policy, with a JSON-able report of the drops."""
    path = Path(path)
    if isinstance(evidence_exclude, str):
        evidence_exclude = [evidence_exclude]
    lines = numbered_lines(path)
    first = next(((n, line) for n, line in lines if line.strip()), None)
    if first is None:
        raise DataError(f"{path}: empty annotation file")
    if first[1].startswith("#"):
        form, (rows, total, other_taxon) = "gene2go", _read_gene2go(path, first, lines, taxon)
    elif first[1].startswith("!"):
        if to_entrez is None:
            raise DataError(f"{path}: a GAF file names genes by symbol / database ID; pass a gene "
                            "table (NCBI gene_info) to map them to Entrez IDs")
        form, (rows, total, other_taxon) = "gaf", _read_gaf(path, first, lines, taxon)
    else:
        raise DataError(f"{path}, line {first[0]}: neither a gene2go header ('#tax_id GeneID "
                        f"GO_ID ...') nor a GAF header ('!gaf-version: 2.2'): {first[1][:60]!r}")
    report: dict = {"file": str(path), "format": form, "rows": total,
                    "dropped": {"other_taxon": other_taxon}}
    dropped = report["dropped"]
    keep = ~_not_qualified(rows.qualifiers)
    dropped["not_qualifier"] = int((~keep).sum())

    evidence = np.array(rows.evidence, dtype=object)
    excluded = keep & np.isin(evidence, list(evidence_exclude))
    codes, counts = np.unique(evidence[excluded].astype(str), return_counts=True)
    dropped["evidence"] = {"count": int(excluded.sum()),
                           "codes": dict(zip(codes.tolist(), counts.tolist()))}
    keep &= ~excluded

    term_ids = np.array(rows.terms, dtype=object)
    unique_ids, inverse = np.unique(term_ids.astype(str), return_inverse=True)
    terms = ontology.resolve(unique_ids)[inverse]
    for reason, code in (("obsolete_term", OBSOLETE), ("unknown_term", UNKNOWN)):
        bad = keep & (terms == code)
        dropped[reason] = {"count": int(bad.sum()),
                           "examples": _examples(term_ids[bad])}
        keep &= ~bad
    report["alt_id_rows"] = int((keep & np.isin(term_ids, list(ontology.alt_ids))).sum())

    in_aspect = np.zeros(len(keep), dtype=bool)
    in_aspect[keep] = np.isin(ontology.aspects[terms[keep]].astype(str), list(aspects))
    dropped["aspect"] = int((keep & ~in_aspect).sum())
    keep &= in_aspect

    genes = np.array(rows.genes, dtype=object)
    if form == "gaf":
        genes, keep = _map_gaf_genes(rows, genes, keep, to_entrez, dropped)
    else:
        _check_gene_ids(path, genes, rows.lines)
        dropped["unmapped_gene"] = {"count": 0, "genes": 0, "examples": []}
    report["kept"] = int(keep.sum())
    return Annotations(genes=genes[keep].astype(str), terms=terms[keep], report=report)


def _read_gene2go(path: Path, first: tuple[int, str], lines, taxon: int
                  ) -> tuple[_Rows, int, int]:
    number, header = first
    names = [name.strip() for name in header.lstrip("#").split("\t")]
    missing = [c for c in GENE2GO_COLUMNS if c not in names]
    if missing:
        raise DataError(f"{path}, line {number}: the gene2go header lacks {missing}; it has "
                        f"{preview(names)}")
    tax, gene, term, code, qualifier = (names.index(c) for c in GENE2GO_COLUMNS)
    wanted = str(taxon)
    # Most rows of NCBI's all-species file are other taxa: skipped before splitting.
    prefix = wanted + "\t" if tax == 0 else None
    rows = _Rows([], [], [], [], [], [])
    total = other = 0
    for number, line in lines:
        if not line.strip():
            continue
        total += 1
        if prefix is not None and not line.startswith(prefix):
            other += 1
            continue
        fields = line.split("\t")
        if len(fields) != len(names):
            raise DataError(f"{path}, line {number}: {len(fields)} tab-separated fields, but "
                            f"the header has {len(names)}")
        if fields[tax].strip() != wanted:
            other += 1
            continue
        rows.genes.append(fields[gene].strip())
        rows.terms.append(fields[term].strip())
        rows.evidence.append(fields[code].strip())
        rows.qualifiers.append(fields[qualifier])
        rows.lines.append(number)
    return rows, total, other


def _read_gaf(path: Path, first: tuple[int, str], lines, taxon: int) -> tuple[_Rows, int, int]:
    version = re.match(r"!\s*gaf-version:\s*(\S+)", first[1])
    if version and not version.group(1).startswith("2"):
        raise DataError(f"{path}, line {first[0]}: GAF version {version.group(1)}; "
                        "only GAF 2.x (17 columns) is read")
    wanted = f"taxon:{taxon}"
    rows = _Rows([], [], [], [], [], [])
    total = other = 0
    for number, line in lines:
        if line.startswith("!") or not line.strip():
            continue
        total += 1
        fields = line.split("\t")
        if len(fields) != GAF_COLUMNS:
            raise DataError(f"{path}, line {number}: {len(fields)} tab-separated columns; a GAF "
                            f"2.2 row has {GAF_COLUMNS}")
        # Column 13 may add an interacting taxon after a '|': the first is the gene's.
        if fields[GAF_TAXON].split("|")[0].strip() != wanted:
            other += 1
            continue
        rows.genes.append(fields[GAF_OBJECT_ID].strip())
        rows.symbols.append(fields[GAF_SYMBOL].strip())
        rows.terms.append(fields[GAF_GO_ID].strip())
        rows.evidence.append(fields[GAF_EVIDENCE].strip())
        rows.qualifiers.append(fields[GAF_QUALIFIER])
        rows.lines.append(number)
    return rows, total, other


def _not_qualified(qualifiers: list[str]) -> np.ndarray:
    """Rows whose qualifier says NOT ('NOT', 'NOT contributes_to', 'NOT|involved_in')."""
    unique, inverse = np.unique(np.array(qualifiers, dtype=str), return_inverse=True)
    is_not = np.array([("NOT" in re.split(r"[|\s]+", q)) for q in unique.tolist()], dtype=bool)
    return is_not[inverse] if len(qualifiers) else np.zeros(0, dtype=bool)


def _check_gene_ids(path: Path, genes: np.ndarray, lines: list[int]) -> None:
    bad = [i for i, gene in enumerate(genes.tolist()) if not gene.isdigit()]
    if bad:
        raise DataError(f"{path}, line {lines[bad[0]]}: GeneID {genes[bad[0]]!r} is not an "
                        "Entrez gene ID (digits)")


def _map_gaf_genes(rows: _Rows, object_ids: np.ndarray, keep: np.ndarray, to_entrez: ToEntrez,
                   dropped: dict) -> tuple[np.ndarray, np.ndarray]:
    """(Entrez ID per row, None where unmapped; keep without the unmapped rows)."""
    symbols = np.array(rows.symbols, dtype=object)
    entrez = np.full(len(keep), None, dtype=object)
    by_symbol = _lookup(to_entrez, symbols[keep])
    entrez[keep] = [by_symbol[s] for s in symbols[keep].tolist()]
    retry = keep & _is_none(entrez)
    by_id = _lookup(to_entrez, object_ids[retry])
    entrez[retry] = [by_id[i] for i in object_ids[retry].tolist()]
    unmapped = keep & _is_none(entrez)
    names = [f"{s} ({i})" for s, i in zip(symbols[unmapped].tolist(), object_ids[unmapped].tolist())]
    dropped["unmapped_gene"] = {"count": int(unmapped.sum()), "genes": len(set(names)),
                                "examples": _examples(np.array(names, dtype=object))}
    return entrez, keep & ~unmapped


def _is_none(values: np.ndarray) -> np.ndarray:
    return np.array([v is None for v in values.tolist()], dtype=bool)


def _lookup(to_entrez: ToEntrez, names: np.ndarray) -> dict[str, str | None]:
    unique = list(dict.fromkeys(names.tolist()))
    if not unique:
        return {}
    found = list(to_entrez(unique))
    if len(found) != len(unique):
        raise ValueError(f"to_entrez returned {len(found)} IDs for {len(unique)} names")
    return {name: (None if e is None else str(e)) for name, e in zip(unique, found)}


def _examples(values: np.ndarray) -> list[str]:
    return list(dict.fromkeys(values.tolist()))[:EXAMPLES]
