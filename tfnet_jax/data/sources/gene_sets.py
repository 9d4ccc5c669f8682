"""Gene sets into co-membership layers: GMT files (MSigDB, Enrichr, ...: one layer
`gmt_<file stem>` each), Reactome's `NCBI2Reactome.txt` (layer `reactome`) and a two-column
gene/pathway table such as KEGG's (layer `pathways`). Weights: `edges.co_membership`."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from tfnet_jax.data.io.tables import read_table
from tfnet_jax.data.io.text import open_text
from tfnet_jax.data.sources.edges import (
    Layer,
    ToEntrez,
    co_membership,
    names_to_entrez,
    source_entry,
)
from tfnet_jax.data.sources.species import species_names
from tfnet_jax.errors import DataError

REACTOME_COLUMNS = 6  # Entrez ID, pathway ID, URL, name, evidence, species


def gmt_layer_name(path: Path) -> str:
    """`c2.cp.reactome.v2023.symbols.gmt` -> `gmt_c2_cp_reactome_v2023_symbols`."""
    stem = path.name[:-3] if path.name.endswith(".gz") else path.name
    stem = stem[:-4] if stem.endswith(".gmt") else stem.rsplit(".", 1)[0]
    return "gmt_" + re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")


def _sets_layer(path: Path, set_names: np.ndarray, genes: np.ndarray, to_entrez: ToEntrez,
                max_size: int | None, rows: int, dropped: dict) -> tuple[Layer, dict]:
    """The co-membership layer of (set, gene) rows, and the source's report entry (rows:
    gene-set memberships, except where the file's rows are something else)."""
    ids, mapped, unmapped = names_to_entrez(genes, to_entrez)
    set_codes = pd.factorize(set_names)[0]
    edges, skipped, used = co_membership(set_codes, ids, max_size)
    dropped = {**dropped, "gene mapped to no gene ID": int((ids < 0).sum()),
               "in a set over gmt_max_size or of one gene": int((ids >= 0).sum()) - used}
    entry = source_entry(path, rows, used, dropped)
    entry.update(sets=int(len(np.unique(set_codes))), sets_over_max_size=skipped)
    return Layer(edges, mapped, unmapped, skipped), entry


def read_gmt(path: Path, to_entrez: ToEntrez, max_size: int | None) -> tuple[Layer, dict]:
    """GMT: `name<TAB>description<TAB>gene<TAB>gene...` (symbols or Entrez IDs)."""
    set_names, genes = [], []
    try:
        with open_text(path) as handle:
            for number, line in enumerate(handle, start=1):
                fields = line.rstrip("\r\n").split("\t")
                if not line.strip():
                    continue
                if len(fields) < 3:
                    raise DataError(f"{path}, line {number}: {len(fields)} tab-separated field(s); "
                                    "a GMT line is name<TAB>description<TAB>gene...")
                members = [g.strip() for g in fields[2:] if g.strip()]
                genes.extend(members)
                set_names.extend([f"{number}"] * len(members))  # a set is its line
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise DataError(f"{path}: cannot read the GMT file ({err})") from err
    return _sets_layer(path, np.asarray(set_names, dtype=object), np.asarray(genes, dtype=object),
                       to_entrez, max_size, len(genes), {})


def read_reactome(path: Path, taxon: int, to_entrez: ToEntrez, max_size: int | None) -> tuple[Layer, dict]:
    """NCBI2Reactome.txt (no header): Entrez ID, pathway ID, URL, name, evidence, species."""
    try:
        frame = pd.read_csv(path, sep="\t", header=None, dtype=str, na_filter=False, quoting=3)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not an NCBI2Reactome file ({str(err).splitlines()[0]})") from err
    if frame.shape[1] < REACTOME_COLUMNS:
        raise DataError(f"{path}, line 1: {frame.shape[1]} column(s); NCBI2Reactome.txt has "
                        f"{REACTOME_COLUMNS} (Entrez ID, pathway ID, URL, name, evidence, species)")
    species = species_names(taxon, "reactome")[0]
    of_taxon = (frame[5].str.strip() == species).to_numpy()
    return _sets_layer(path, frame[1].to_numpy()[of_taxon], frame[0].to_numpy()[of_taxon],
                       to_entrez, max_size, len(frame), {f"species not {species}": int((~of_taxon).sum())})


def read_pathways(path: Path, to_entrez: ToEntrez, max_size: int | None) -> tuple[Layer, dict]:
    """A table with a header whose first two columns are gene and pathway (set)."""
    table = read_table(path)
    if table.shape[1] < 2:
        raise DataError(f"{path}, line 1: expected two columns (gene, pathway), got {list(table.columns)}")
    genes, pathways = table.iloc[:, 0].to_numpy(dtype=object), table.iloc[:, 1].to_numpy(dtype=object)
    empty = np.flatnonzero((genes == "") | (pathways == ""))
    if len(empty):
        raise DataError(f"{path}, line {table.index[empty[0]]}: empty gene or pathway cell")
    return _sets_layer(path, pathways, genes, to_entrez, max_size, len(table), {})
