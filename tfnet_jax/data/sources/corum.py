"""CORUM protein complexes (`allComplexes.txt`, tab-separated, or its JSON export; fields
`Organism` and `subunits(Entrez IDs)`, `;`-separated) into the co-membership layer `corum`."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

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

ORGANISM, SUBUNITS = "Organism", "subunits(Entrez IDs)"
NO_SUBUNIT = ("", "None", "NULL", "-")


def _complexes(path: Path) -> pd.DataFrame:
    """Organism and subunits per complex, from the tab table or the JSON export."""
    try:
        if path.name.endswith((".json", ".json.gz")):
            with open_text(path) as handle:
                records = json.load(handle)
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise DataError(f"{path}: expected a JSON list of complexes (objects)")
            frame = pd.DataFrame.from_records(records)
            where = "a complex"
        else:
            frame = pd.read_csv(path, sep="\t", dtype=str, na_filter=False, quoting=3)
            where = "line 1"
    except (json.JSONDecodeError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise DataError(f"{path}: not a CORUM complexes file ({str(err).splitlines()[0]})") from err
    missing = [c for c in (ORGANISM, SUBUNITS) if c not in frame.columns]
    if missing:
        raise DataError(f"{path}, {where}: no field(s) {missing} (CORUM's allComplexes has "
                        f"{ORGANISM!r} and {SUBUNITS!r})")
    return frame[[ORGANISM, SUBUNITS]].astype(str)


def read_corum(path: Path, taxon: int, to_entrez: ToEntrez, max_size: int | None) -> tuple[dict[str, Layer], dict]:
    frame = _complexes(path)
    organism = species_names(taxon, "corum")[1]
    of_taxon = (frame[ORGANISM].str.strip() == organism).to_numpy()
    subunits = frame[SUBUNITS][of_taxon].str.split(";").explode().str.strip()
    subunits = subunits[~subunits.isin(NO_SUBUNIT)]
    genes, mapped, unmapped = names_to_entrez(subunits.to_numpy(), to_entrez)
    edges, skipped, _ = co_membership(subunits.index.to_numpy(), genes, max_size)
    dropped = {f"organism not {organism}": int((~of_taxon).sum()),
               "complex over gmt_max_size": skipped}
    return ({"corum": Layer(edges, mapped, unmapped, skipped)},
            {"corum": source_entry(path, len(frame), int(of_taxon.sum()) - skipped, dropped)})
