"""Mapping between Entrez gene IDs, Ensembl gene IDs and gene symbols through a gene table.

Accepted tables (any format `tables.read_table` reads, e.g. `.csv.gz`, `.txt`):
- TranscriptionNet's gene_meta: EntrezID, GeneID (Ensembl), Symbol, ...
- CMap geneinfo: gene_id, gene_symbol, ensembl_id, and feature_space ("landmark", ...) or pr_is_lm
- older CMap gene_info: pr_gene_id, pr_gene_symbol, pr_is_lm
- NCBI gene_info (`#tax_id GeneID Symbol LocusTag Synonyms dbXrefs ...`): `from_gene_info`
  (checks the species), or `from_file`, which sees its header and reads it the same way
Optional columns: Ensembl IDs (ensembl_id, ensembl_gene_id, Ensembl, or GeneID when its values
are Ensembl IDs) and aliases (Synonyms, aliases, alias_symbol, prev_symbol: several per cell,
separated by |, ; or ,). gene_meta has Ensembl IDs but no aliases.

Policy (the one place it is defined):
- IDs and symbols are exact, stripped strings: "007" stays "007"; symbols are case sensitive.
- A symbol cell that is empty, "-" or "-666" means the gene has no symbol.
- An Entrez ID listed twice is an error naming both lines.
- Duplicated symbols: a symbol carried by several Entrez IDs is ambiguous. `to_entrez`
  does not guess between them: it reports the symbol as unmapped (logged as ambiguous).
- Unmapped inputs are never dropped silently: results are aligned with the input (None
  where unmapped), and the unmapped inputs are returned and logged with a count and
  examples.
- Any-namespace lookup (`entrez_of`): digits = Entrez ID; ENS...G + digits = Ensembl ID (a
  version suffix ".12" is ignored); anything else a symbol, else an alias. An Ensembl ID or
  alias carried by several genes is ambiguous (unmapped), and an alias that is some gene's
  current symbol means that gene.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterable

import numpy as np

from tfnet_jax.data.io.tables import (
    check_unique_keys,
    column_as_float,
    column_as_str,
    preview,
    read_table,
)
from tfnet_jax.errors import DataError

log = logging.getLogger(__name__)

ID_COLUMNS = ("EntrezID", "gene_id", "pr_gene_id")
SYMBOL_COLUMNS = ("Symbol", "gene_symbol", "pr_gene_symbol")
NO_SYMBOL = ("", "-", "-666")
ENSEMBL_COLUMNS = ("ensembl_id", "ensembl_gene_id", "Ensembl", "GeneID")
ALIAS_COLUMNS = ("Synonyms", "aliases", "alias_symbol", "prev_symbol")
ENSEMBL_ID = re.compile(r"^(ENS[A-Z]*G\d{6,})(\.\d+)?$")
NAMESPACES = ("entrez", "ensembl", "symbol")
GENE_INFO_COLUMNS = ("#tax_id", "GeneID", "Symbol", "Synonyms", "dbXrefs")
ENSEMBL_XREF = re.compile(r"(?:^|\|)Ensembl:(ENS[A-Z]*G\d{6,})")


def gene_lines(path: str | Path) -> list[tuple[int, str]]:
    """(line number, gene) for every gene of a one-gene-per-line file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: gene list file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the gene list ({err})") from err
    entries: list[tuple[int, str]] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        gene = raw.split("#", 1)[0].strip()
        if not gene:
            continue
        if len(gene.split()) > 1:
            # A table passed as a list would otherwise yield junk names like "GATA1\t0.3".
            raise DataError(f"{path}, line {number}: expected one gene per line, got {gene!r}")
        if gene in first_line:
            raise DataError(f"{path}: gene {gene!r} is listed twice, on lines "
                            f"{first_line[gene]} and {number}")
        first_line[gene] = number
        entries.append((number, gene))
    if not entries:
        raise DataError(f"{path}: the gene list is empty")
    return entries


def read_gene_list(path: str | Path) -> list[str]:
    """Genes of a one-per-line file; blank lines and '#' comments skipped; duplicates are errors."""
    return [gene for _, gene in gene_lines(path)]


def gene_indices(genes, known: dict[str, int]) -> np.ndarray:
    """Gene IDs (a one-per-line file or a list) -> indices in `known`; unknown IDs are an error."""
    if isinstance(genes, (str, Path)):
        unknown = [(n, g) for n, g in gene_lines(genes) if g not in known]
        if unknown:
            shown = ", ".join(f"line {n}: {g!r}" for n, g in unknown[:8])
            raise DataError(f"{genes}: {len(unknown)} gene(s) not in the run's gene index ({shown}"
                            f"{', ...' if len(unknown) > 8 else ''})")
        genes = read_gene_list(genes)
    missing = [g for g in genes if str(g) not in known]
    if missing:
        raise DataError(f"genes: {len(missing)} gene(s) not in the run's gene index: {missing[:8]}")
    return np.array([known[str(g)] for g in genes], dtype=np.int32)


def id_namespace(gene: str) -> str:
    """'entrez' (digits), 'ensembl' (ENSG00000141510[.16], other species' ENS..G too) or 'symbol'."""
    if gene.isdigit():
        return "entrez"
    return "ensembl" if ENSEMBL_ID.match(gene) else "symbol"


def _ensembl_column(table, path: Path) -> np.ndarray | None:
    """Version-stripped Ensembl IDs (None where absent) from the first column that holds them."""
    for name in ENSEMBL_COLUMNS:
        if name not in table.columns:
            continue
        cells = table[name].to_numpy(dtype=object)
        matches = [ENSEMBL_ID.match(str(c).strip()) for c in cells]
        if not any(matches):
            continue  # e.g. NCBI gene_info's GeneID holds Entrez IDs
        return np.array([m.group(1) if m else None for m in matches], dtype=object)
    return None


def _alias_column(table) -> np.ndarray | None:
    """Tuples of aliases per gene from every alias column present (None when there is none)."""
    names = [c for c in ALIAS_COLUMNS if c in table.columns]
    if not names:
        return None
    out = np.empty(len(table), dtype=object)
    rows = zip(*(table[c].astype(str).tolist() for c in names))
    for i, cells in enumerate(rows):
        out[i] = tuple(a for cell in cells for a in (x.strip() for x in re.split(r"[|;,]", cell))
                       if a not in NO_SYMBOL)
    return out


def _first_present(columns: Iterable[str], wanted: tuple[str, ...], path: Path, what: str) -> str:
    columns = list(columns)
    for name in wanted:
        if name in columns:
            return name
    raise DataError(f"{path}: no {what} column (one of {list(wanted)}); "
                    f"the header has {preview(columns)}")


def _unique_in_order(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


@dataclass(frozen=True)
class GeneTable:
    """Genes with Entrez ID, symbol and (when the table says) the L1000 landmark flag."""

    entrez: np.ndarray  # str [n], unique
    symbols: np.ndarray  # object [n]: str, or None where the gene has no symbol
    is_landmark: np.ndarray | None = None  # bool [n]; None when the table does not say
    source: str = ""
    ensembl: np.ndarray | None = None  # object [n]: version-free Ensembl ID or None; None: no column
    aliases: np.ndarray | None = None  # object [n]: tuple of aliases; None: no alias column

    @classmethod
    def from_file(cls, path: str | Path) -> "GeneTable":
        path = Path(path)
        table = read_table(path)
        if "#tax_id" in table.columns:
            return cls._from_gene_info_table(table, path, taxon=None)
        id_column = _first_present(table.columns, ID_COLUMNS, path, "Entrez ID")
        symbol_column = _first_present(table.columns, SYMBOL_COLUMNS, path, "gene symbol")
        entrez = column_as_str(table, id_column, path)
        check_unique_keys(table, [id_column], path, what="Entrez ID")
        symbols = table[symbol_column].to_numpy(dtype=object).copy()
        symbols[np.isin(symbols, NO_SYMBOL)] = None
        if "feature_space" in table.columns:
            is_landmark = (table["feature_space"] == "landmark").to_numpy()
        elif "pr_is_lm" in table.columns:
            flags = column_as_float(table, "pr_is_lm", path)
            bad = np.flatnonzero(~np.isin(flags, (0, 1)))
            if len(bad):
                raise DataError(f"{path}, line {table.index[bad[0]]}, column 'pr_is_lm': "
                                f"'{table['pr_is_lm'].iloc[bad[0]]}' is not 0 or 1")
            is_landmark = flags == 1
        else:
            is_landmark = None
        return cls(entrez=entrez, symbols=symbols, is_landmark=is_landmark, source=str(path),
                   ensembl=_ensembl_column(table, path), aliases=_alias_column(table))

    @classmethod
    def from_gene_info(cls, path: str | Path, taxon: int | None = None) -> "GeneTable":
        """NCBI gene_info: Entrez GeneID, Symbol, `|`-separated Synonyms and the first
        `Ensembl:ENSG...` of dbXrefs; every row must be of `taxon` (when given)."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: gene_info file not found")
        return cls._from_gene_info_table(read_table(path), path, taxon)

    @classmethod
    def _from_gene_info_table(cls, table, path: Path, taxon: int | None) -> "GeneTable":
        missing = [c for c in GENE_INFO_COLUMNS if c not in table.columns]
        if missing:
            raise DataError(f"{path}, line 1: not an NCBI gene_info header: no column(s) {missing}")
        if taxon is not None:
            other = np.flatnonzero(table["#tax_id"].to_numpy(dtype=str) != str(taxon))
            if len(other):
                row = other[0]
                raise DataError(f"{path}, line {table.index[row]}: tax_id "
                                f"{table['#tax_id'].iloc[row]}, but taxon={taxon} was asked for "
                                f"(a gene_info of another species?)")
        entrez = column_as_str(table, "GeneID", path)
        check_unique_keys(table, ["GeneID"], path, what="Entrez ID")
        symbols = table["Symbol"].to_numpy(dtype=object).copy()
        symbols[np.isin(symbols, NO_SYMBOL)] = None
        ensembl = np.array([m.group(1) if (m := ENSEMBL_XREF.search(x)) else None
                            for x in table["dbXrefs"].tolist()], dtype=object)
        aliases = np.empty(len(table), dtype=object)
        aliases[:] = [tuple(a for a in (x.strip() for x in cell.split("|")) if a not in NO_SYMBOL)
                      for cell in table["Synonyms"].tolist()]
        return cls(entrez=entrez, symbols=symbols, source=str(path), ensembl=ensembl,
                   aliases=aliases)

    @property
    def num_genes(self) -> int:
        return int(self.entrez.shape[0])

    def landmark_ids(self) -> np.ndarray:
        """Entrez IDs of the landmark genes, in table order."""
        if self.is_landmark is None:
            raise DataError(f"{self.source}: the gene table does not mark landmark genes "
                            "(needs a feature_space or pr_is_lm column)")
        return self.entrez[self.is_landmark]

    @cached_property
    def _symbol_of(self) -> dict[str, str]:
        return {i: s for i, s in zip(self.entrez.tolist(), self.symbols.tolist()) if s is not None}

    @cached_property
    def _ids_of_symbol(self) -> dict[str, list[str]]:
        ids: dict[str, list[str]] = {}
        for i, s in self._symbol_of.items():
            ids.setdefault(s, []).append(i)
        return ids

    @cached_property
    def unique_symbols(self) -> dict[str, str]:
        """Symbol -> Entrez ID for every symbol carried by exactly one gene."""
        return {s: ids[0] for s, ids in self._ids_of_symbol.items() if len(ids) == 1}

    @property
    def ambiguous_symbols(self) -> dict[str, list[str]]:
        """Symbols carried by more than one Entrez ID -> those IDs."""
        return {s: ids for s, ids in self._ids_of_symbol.items() if len(ids) > 1}

    def to_symbols(self, ids: Iterable) -> tuple[list[str | None], list[str]]:
        """(symbols aligned with `ids`, None where unmapped; unmapped IDs, unique, in input order).

        An ID is unmapped when it is not in the table or its gene has no symbol.
        """
        ids = [str(i).strip() for i in ids]
        symbols = [self._symbol_of.get(i) for i in ids]
        unmapped = _unique_in_order(i for i, s in zip(ids, symbols) if s is None)
        self._report(unmapped, len(set(ids)), "Entrez ID(s) have no symbol or are not in the table")
        return symbols, unmapped

    def to_entrez(self, symbols: Iterable) -> tuple[list[str | None], list[str]]:
        """(Entrez IDs aligned with `symbols`, None where unmapped; unmapped symbols, unique,
        in input order). Unknown and ambiguous symbols are unmapped."""
        symbols = [str(s).strip() for s in symbols]
        found = [self._ids_of_symbol.get(s, []) for s in symbols]
        ids = [f[0] if len(f) == 1 else None for f in found]
        unmapped = _unique_in_order(s for s, i in zip(symbols, ids) if i is None)
        self._report(unmapped, len(set(symbols)), "symbol(s) are not in the table or ambiguous")
        ambiguous = [s for s in unmapped if s in self.ambiguous_symbols]
        if ambiguous:
            log.warning("%s: %d of them are ambiguous (one symbol, several Entrez IDs), e.g. %s",
                        self.source, len(ambiguous),
                        {s: self.ambiguous_symbols[s] for s in ambiguous[:3]})
        return ids, unmapped

    def _report(self, unmapped: list[str], num_unique: int, what: str) -> None:
        if unmapped:
            log.warning("%s: %d of %d %s: %s", self.source, len(unmapped), num_unique, what,
                        preview(unmapped, 5))

    @cached_property
    def _ids_of_ensembl(self) -> dict[str, list[str]]:
        ids: dict[str, list[str]] = {}
        for i, e in zip(self.entrez.tolist(), [] if self.ensembl is None else self.ensembl.tolist()):
            if e is not None:
                ids.setdefault(e, []).append(i)
        return ids

    @cached_property
    def _ids_of_alias(self) -> dict[str, list[str]]:
        ids: dict[str, list[str]] = {}
        for i, names in zip(self.entrez.tolist(), [] if self.aliases is None else self.aliases.tolist()):
            for name in dict.fromkeys(names):
                ids.setdefault(name, []).append(i)
        return ids

    @cached_property
    def _entrez_set(self) -> frozenset:
        return frozenset(self.entrez.tolist())

    def entrez_of(self, genes: Iterable, *, report: bool = True) -> tuple[list[str | None], list[str]]:
        """(Entrez IDs aligned with `genes`, None where unmapped; unmapped genes, unique, in input
        order) for genes given as Entrez IDs, Ensembl IDs, symbols or aliases, mixed freely."""
        genes = [str(g).strip() for g in genes]
        ids = [self._entrez_one(g) for g in genes]
        unmapped = _unique_in_order(g for g, i in zip(genes, ids) if i is None)
        if report:
            self._report(unmapped, len(set(genes)), "gene(s) are not in the table or ambiguous")
        return ids, unmapped

    def _entrez_one(self, gene: str) -> str | None:
        kind = id_namespace(gene)
        if kind == "entrez":
            return gene if gene in self._entrez_set else None
        if kind == "ensembl":
            found = self._ids_of_ensembl.get(ENSEMBL_ID.match(gene).group(1), [])
        else:
            found = self._ids_of_symbol.get(gene) or self._ids_of_alias.get(gene, [])
        return found[0] if len(found) == 1 else None

    def convert(self, genes: Iterable, namespace: str) -> tuple[list[str | None], list[str]]:
        """(`genes` in `namespace` (entrez | ensembl | symbol), None where unmapped; unmapped
        genes, unique, in input order); inputs in any namespace, as `entrez_of`."""
        if namespace not in NAMESPACES:
            raise DataError(f"{self.source}: gene namespace {namespace!r} is not one of {NAMESPACES}")
        if namespace == "ensembl" and self.ensembl is None:
            raise DataError(f"{self.source}: the gene table has no Ensembl column "
                            f"(one of {list(ENSEMBL_COLUMNS)} holding ENSG... IDs)")
        genes = [str(g).strip() for g in genes]
        ids, _ = self.entrez_of(genes, report=False)
        column = {"entrez": self.entrez, "ensembl": self.ensembl, "symbol": self.symbols}[namespace]
        value = dict(zip(self.entrez.tolist(), column.tolist()))
        out = [None if i is None else value[i] for i in ids]
        unmapped = _unique_in_order(g for g, o in zip(genes, out) if o is None)
        self._report(unmapped, len(set(genes)), f"gene(s) have no {namespace} ID in the table")
        return out, unmapped


def entrez_mapper(table: GeneTable | None):
    """`to_entrez(names) -> list[str | None]`: through `table` (any namespace, `entrez_of`'s
    policy), or without a table, Entrez IDs (digits) as they are and every other name unmapped."""
    if table is not None:
        return lambda names: table.entrez_of(names, report=False)[0]
    return lambda names: [n if n.isdigit() else None for n in (str(x).strip() for x in names)]


def match_genes(names: Iterable, universe: Iterable, table: GeneTable | None = None) -> list[str | None]:
    """For each name, the gene of `universe` it denotes: the same string, else (with a table) the
    one universe gene with the same Entrez ID, whatever namespace each side uses; else None."""
    names = [str(n).strip() for n in names]
    universe = [str(u) for u in universe]
    present = set(universe)
    out: list[str | None] = [n if n in present else None for n in names]
    missing = [i for i, o in enumerate(out) if o is None]
    if table is None or not missing:
        return out
    by_entrez: dict[str, list[str]] = {}
    for gene, entrez in zip(universe, table.entrez_of(universe, report=False)[0]):
        if entrez is not None:
            by_entrez.setdefault(entrez, []).append(gene)
    wanted = table.entrez_of([names[i] for i in missing], report=False)[0]
    for i, entrez in zip(missing, wanted):
        found = by_entrez.get(entrez, []) if entrez is not None else []
        out[i] = found[0] if len(found) == 1 else None  # several universe genes: no guess
    return out


def match_listed_genes(listed: list[tuple[int, str]], universe: list[str], table: GeneTable,
                       source: str, what: str) -> list[tuple[int, str]]:
    """(line, gene) entries of a gene list renamed to the universe's IDs where they name one of
    its genes in another namespace (others unchanged); a later entry naming the same universe
    gene as an earlier one is dropped (logged)."""
    present = set(universe)
    absent = [g for _, g in listed if g not in present]
    matched = dict(zip(absent, match_genes(absent, universe, table)))
    out, first_line, renamed = [], {}, []
    for line, gene in listed:
        name = gene if gene in present else (matched[gene] or gene)
        if name in first_line:
            log.warning("%s, line %d: %s gene %r is %r, already listed on line %d; dropped",
                        source, line, what, gene, name, first_line[name])
            continue
        first_line[name] = line
        if name != gene:
            renamed.append(f"{gene} -> {name}")
        out.append((line, name))
    if renamed:
        log.info("%s: %d %s genes mapped to the matrix's IDs through %s (e.g. %s)", source,
                 len(renamed), what, table.source, ", ".join(renamed[:3]))
    return out
