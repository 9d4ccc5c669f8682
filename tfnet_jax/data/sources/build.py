"""`build_networks`: public gene-network resources -> a data directory's network layers.

    OUT/networks/<layer>.tsv.gz     gene_a, gene_b, weight (one per layer built; each pair once)
    OUT/networks/report.json        what was read, kept, dropped and mapped (also logged)
    OUT/node_features_go.csv.gz     with go_features=true: genes x GO terms, 0/1

Layers of an earlier build that this one does not build are left alone; a layer it builds
replaces the earlier file of that name (whatever its extension). Every gene is mapped to its
Entrez ID through one GeneTable (gene_info) and written in the `ids` namespace.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from tfnet_jax.atomic import atomic_write_json
from tfnet_jax.data.genes import GeneTable, entrez_mapper
from tfnet_jax.data.io.tables import split_table_name
from tfnet_jax.data.sources.biogrid import read_biogrid
from tfnet_jax.data.sources.coexpression import read_coexpression
from tfnet_jax.data.sources.corum import read_corum
from tfnet_jax.data.sources.edges import (
    EXAMPLES,
    Layer,
    canonical,
    sha256_of,
    source_entry,
)
from tfnet_jax.data.sources.gene_sets import (
    gmt_layer_name,
    read_gmt,
    read_pathways,
    read_reactome,
)
from tfnet_jax.data.sources.go import build_go_layers
from tfnet_jax.data.sources.options import Options, check_writable, parse_options
from tfnet_jax.data.sources.output import (
    features_in_namespace,
    in_namespace,
    write_features,
    write_layer,
)
from tfnet_jax.data.sources.string import read_string
from tfnet_jax.errors import DataError

log = logging.getLogger(__name__)

REPORT_NAME = "report.json"  # the data-dir loader skips it in OUT/networks
FEATURES_NAME = "node_features_go.csv.gz"


def build_networks(out, **sources) -> dict:
    """Build the layers of `sources` (keys: `tfnet_jax.data.sources.options.Options`) into
    `out`; returns the report (also written to OUT/networks/report.json)."""
    options = parse_options({"out": out, **sources})
    check_writable(options.out)
    table = GeneTable.from_gene_info(options.gene_info, options.taxon) if options.gene_info else None
    report = {"out": str(options.out), "ids": options.ids, "taxon": options.taxon,
              "gene_info": None if table is None else
              {**source_entry(options.gene_info, table.num_genes, table.num_genes)},
              "sources": {}, "layers": {}, "skipped_layers": {}}
    layers, features = _read_sources(options, table, report["sources"])
    networks = options.out / "networks"
    for name, layer in layers.items():
        frame, lost = in_namespace(layer.edges, options.ids, table)
        if frame.empty:
            reason = "no edge left after mapping genes" + (f" to {options.ids}" if lost else "")
            log.warning("layer %s: %s; skipped", name, reason)
            report["skipped_layers"][name] = reason
            continue
        path = networks / f"{name}.tsv.gz"
        write_layer(path, frame)
        _remove_other_versions(networks, name, path)
        genes = np.union1d(frame["gene_a"].to_numpy(), frame["gene_b"].to_numpy())
        report["layers"][name] = {
            "file": str(path), "genes": int(len(genes)), "edges": int(len(frame)),
            "ids_mapped": layer.mapped, "ids_unmapped": len(layer.unmapped),
            "unmapped_examples": layer.unmapped[:EXAMPLES], "sets_skipped": layer.skipped_sets,
            f"edges_lost_mapping_to_{options.ids}": lost}
    if not report["layers"]:
        raise DataError(f"{options.out}: no layer has any edge after mapping genes "
                        f"({', '.join(report['skipped_layers'])}); check taxon= and gene_info=")
    if features is not None:
        features = features_in_namespace(features, options.ids, table)
        write_features(options.out / FEATURES_NAME, features)
        report["node_features"] = {"file": str(options.out / FEATURES_NAME),
                                   "genes": int(features.shape[0]), "columns": int(features.shape[1])}
    atomic_write_json(networks / REPORT_NAME, report)
    log_report(report)
    return report


def _read_sources(options: Options, table: GeneTable | None,
                  reports: dict) -> tuple[dict[str, Layer], object]:
    """Every layer the options ask for (by name) and the GO features (None unless asked)."""
    to_entrez = entrez_mapper(table)
    max_size, layers = options.gmt_max_size, {}
    if options.string:
        found, entries = read_string(options.string, options.string_info, options.string_aliases,
                                     table, options.string_min_score, options.string_channels)
        layers.update(found)
        reports.update(entries)
    if options.biogrid:
        found, entries = read_biogrid(options.biogrid, options.taxon, to_entrez)
        layers.update(found)
        reports.update(entries)
    if options.corum:
        found, entries = read_corum(options.corum, options.taxon, to_entrez, max_size)
        layers.update(found)
        reports.update(entries)
    for path in options.gmt:
        name = gmt_layer_name(path)
        layers[name], reports[name] = read_gmt(path, to_entrez, max_size)
    if options.reactome:
        layers["reactome"], reports["reactome"] = read_reactome(options.reactome, options.taxon,
                                                                to_entrez, max_size)
    if options.pathways:
        layers["pathways"], reports["pathways"] = read_pathways(options.pathways, to_entrez, max_size)
    if options.coexpression:
        layers["coexpression"], reports["coexpression"] = read_coexpression(
            options.coexpression, to_entrez, options.coexpression_top_k)
    features = None
    if options.go:
        found, features, reports["go"] = _go_layers(options, table)
        layers.update(found)
    return layers, features


def _go_layers(options: Options, table: GeneTable | None) -> tuple[dict[str, Layer], object, dict]:
    """The GO reader's layers (tfnet_jax.data.sources.go), as canonical edges."""
    result = build_go_layers(
        annotations=options.go, obo=options.obo, aspects=list(options.go_aspects),
        evidence_exclude=list(options.go_evidence_exclude), top_k=options.go_top_k,
        features=options.go_features, taxon=options.taxon,
        to_entrez=None if table is None else entrez_mapper(table), skip_empty=True)
    layers = {}
    for name, frame in result.layers.items():
        edges, _ = canonical(frame["gene_a"].astype(np.int64).to_numpy(),
                             frame["gene_b"].astype(np.int64).to_numpy(),
                             frame["weight"].to_numpy(dtype=np.float64))
        layers[name] = Layer(edges, mapped=edges.num_genes)
    read = result.report["annotations"]
    # Each dropped reason is a count or {"count": n, ...}: the report's table wants counts.
    dropped = {reason: n if isinstance(n, int) else n["count"] for reason, n in read["dropped"].items()}
    entry = {**source_entry(options.go, read["rows"], read["kept"], dropped),
             "obo": {"file": str(options.obo), "sha256": sha256_of(options.obo)},
             "reader": dict(result.report)}
    return layers, result.features if options.go_features else None, entry


def _remove_other_versions(networks: Path, name: str, written: Path) -> None:
    """An earlier build's (or a hand-made) file of the same layer in another format, which
    the data-dir loader would reject as a second file of one layer."""
    for path in networks.iterdir():
        named = split_table_name(path)
        if path != written and named is not None and named[0] == name:
            log.info("%s: replaced by %s", path, written.name)
            path.unlink()


def log_report(report: dict) -> None:
    """The report as two tables: layers, then sources."""
    rows = [("layer", "genes", "edges", "IDs mapped", "unmapped", "e.g.")]
    for name, layer in report["layers"].items():
        rows.append((name, layer["genes"], layer["edges"], layer["ids_mapped"],
                     layer["ids_unmapped"], ", ".join(layer["unmapped_examples"][:3])))
    for name, reason in report["skipped_layers"].items():
        rows.append((name, 0, 0, "", "", f"skipped: {reason}"))
    log.info("layers written to %s/networks:\n%s", report["out"], _table(rows))
    rows = [("source", "rows read", "kept", "dropped", "file")]
    for name, entry in report["sources"].items():
        dropped = "; ".join(f"{reason}: {n}" for reason, n in entry.get("dropped", {}).items())
        rows.append((name, entry.get("rows_read", ""), entry.get("rows_kept", ""), dropped or "-",
                     entry["file"]))
    log.info("sources:\n%s", _table(rows))


def _table(rows: list[tuple]) -> str:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in rows)
