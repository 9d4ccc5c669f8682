"""How each public resource names a species (NCBI taxon ID -> Reactome's Latin name, CORUM's
common name), for the taxa they cover."""
from __future__ import annotations

from tfnet_jax.errors import ConfigError

# taxon: (Latin name as in NCBI2Reactome.txt, organism as in CORUM)
SPECIES = {
    9606: ("Homo sapiens", "Human"),
    10090: ("Mus musculus", "Mouse"),
    10116: ("Rattus norvegicus", "Rat"),
    9913: ("Bos taurus", "Bovine"),
    9823: ("Sus scrofa", "Pig"),
}


def species_names(taxon: int, key: str) -> tuple[str, str]:
    """(Latin name, common name) of `taxon`; a ConfigError naming `key` for one not listed."""
    if taxon not in SPECIES:
        raise ConfigError(f"taxon={taxon}: {key}= covers only the taxa {sorted(SPECIES)} "
                          f"here ({', '.join(n for n, _ in SPECIES.values())})")
    return SPECIES[taxon]
