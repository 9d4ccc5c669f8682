"""Mapping between Entrez gene IDs and gene symbols through a gene table.

Accepted tables (any format `tables.read_table` reads, e.g. `.csv.gz`, `.txt`):
- TranscriptionNet's gene_meta: EntrezID, GeneID (Ensembl), Symbol, ...
- CMap geneinfo: gene_id, gene_symbol, and feature_space ("landmark", ...) or pr_is_lm
- older CMap gene_info: pr_gene_id, pr_gene_symbol, pr_is_lm

Policy (the one place it is defined):
- IDs and symbols are exact, stripped strings: "007" stays "007"; symbols are case sensitive.
- A symbol cell that is empty, "-" or "-666" means the gene has no symbol.
- An Entrez ID listed twice is an error naming both lines.
- Duplicated symbols: a symbol carried by several Entrez IDs is ambiguous. `to_entrez`
  does not guess between them: it reports the symbol as unmapped (logged as ambiguous).
- Unmapped inputs are never dropped silently: results are aligned with the input (None
  where unmapped), and the unmapped inputs are returned and logged with a count and
  examples.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterable

import numpy as np

from tfnet_jax.data.dataset import DataError
from tfnet_jax.data.tables import (check_unique_keys, column_as_float, column_as_str, preview,
                                   read_table)

log = logging.getLogger(__name__)

ID_COLUMNS = ("EntrezID", "gene_id", "pr_gene_id")
SYMBOL_COLUMNS = ("Symbol", "gene_symbol", "pr_gene_symbol")
NO_SYMBOL = ("", "-", "-666")


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

    @classmethod
    def from_file(cls, path: str | Path) -> "GeneTable":
        path = Path(path)
        table = read_table(path)
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
        return cls(entrez=entrez, symbols=symbols, is_landmark=is_landmark, source=str(path))

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
