"""Readers of the public gene-network and annotation formats (STRING, BioGRID, CORUM, GMT, Reactome, GO, ...) used by tfnet-networks."""
