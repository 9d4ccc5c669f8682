"""BioGRID TAB3 (`BIOGRID-ALL-*.tab3.txt`, `BIOGRID-ORGANISM-*.tab3.txt`) into layers
`biogrid_physical` and `biogrid_genetic`: both interactors of the taxon, weight = the number of
rows (experiments, publications) supporting the pair."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tfnet_jax.data.sources.edges import (
    Layer,
    ToEntrez,
    canonical,
    names_to_entrez,
    source_entry,
)
from tfnet_jax.errors import DataError

FIRST_COLUMN = "#BioGRID Interaction ID"
GENE_A, GENE_B = "Entrez Gene Interactor A", "Entrez Gene Interactor B"
TYPE = "Experimental System Type"
TAXON_A, TAXON_B = "Organism ID Interactor A", "Organism ID Interactor B"
SYSTEM_TYPES = ("physical", "genetic")


def read_biogrid(path: Path, taxon: int, to_entrez: ToEntrez) -> tuple[dict[str, Layer], dict]:
    try:
        header = pd.read_csv(path, sep="\t", nrows=0, quoting=3).columns.tolist()
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
        raise DataError(f"{path}: cannot read the BioGRID file ({err})") from err
    needed = [GENE_A, GENE_B, TYPE, TAXON_A, TAXON_B]
    missing = [c for c in needed if c not in header]
    if not header or header[0] != FIRST_COLUMN or missing:
        raise DataError(f"{path}, line 1: not a BioGRID TAB3 header (first column {FIRST_COLUMN!r}, "
                        f"columns {needed}); missing {missing or [FIRST_COLUMN]}")
    frame = pd.read_csv(path, sep="\t", usecols=needed, dtype=str, na_filter=False, quoting=3)
    same_taxon = (frame[TAXON_A] == str(taxon)) & (frame[TAXON_B] == str(taxon))
    kind = frame[TYPE].str.strip().str.lower()
    gene_a, _, unmapped_a = names_to_entrez(frame[GENE_A].to_numpy(), to_entrez)
    gene_b, _, unmapped_b = names_to_entrez(frame[GENE_B].to_numpy(), to_entrez)
    mapped = (gene_a >= 0) & (gene_b >= 0)
    known = kind.isin(SYSTEM_TYPES).to_numpy()
    used = same_taxon.to_numpy() & known
    ids = pd.unique(np.concatenate([frame[GENE_A].to_numpy()[used], frame[GENE_B].to_numpy()[used]]))
    unmapped = [u for u in dict.fromkeys(unmapped_a + unmapped_b) if u in set(ids.tolist())]
    layers, loops = {}, 0
    for system in SYSTEM_TYPES:
        keep = used & mapped & (kind == system).to_numpy()
        edges, self_loops = canonical(gene_a[keep], gene_b[keep], np.ones(int(keep.sum())), merge="sum")
        loops += self_loops
        layers[f"biogrid_{system}"] = Layer(edges, mapped=len(ids) - len(unmapped), unmapped=unmapped)
    kept = int((used & mapped).sum()) - loops
    dropped = {f"interactor not of taxon {taxon}": int((~same_taxon).sum()),
               "system type not physical/genetic": int((same_taxon & ~known).sum()),
               "interactor mapped to no gene": int((used & ~mapped).sum()),
               "self interaction": loops}
    return layers, {"biogrid": source_entry(path, len(frame), kept, dropped)}
