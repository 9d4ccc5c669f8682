"""Building a PerturbationData from CMap (LINCS L1000) level-5 files (`data=cmap`).

Inputs:
- gctx: level-5 signatures, read with `gctx.GCTXReader`: only the needed signatures and
  the landmark genes come off the disk, in batches of bounded size.
- siginfo: one row per signature: sig_id, pert_type, the perturbed gene's symbol
  (cmap_name, or pert_iname in older releases), optionally the cell (cell_iname or
  cell_id) and the replicate count (nsample or distil_nsample; needed for "weighted").
- geneinfo: gene_id, gene_symbol, and feature_space or pr_is_lm (see `gene_ids`).
- networks: a directory of edge lists, as ROOT/networks of `data=dir`.
- node_features: optional gene-keyed table, as for `data=dir`.

Rules:
- siginfo pert_type -> perturbation type by `type_map` (DEFAULT_TYPE_MAP); rows of other
  pert types are ignored.
- Readouts are the landmark genes present in the GCTX, in GCTX row order.
- Signatures listed in siginfo but absent from the GCTX are skipped and counted: CMap
  ships one level-5 file per pert type beside a single siginfo for all of them.
- Perturbed-gene symbols are mapped to Entrez IDs through geneinfo; unknown or ambiguous
  symbols are logged, listed in `extras["unmapped_pert_symbols"]`, and their signatures
  dropped.
- All signatures of one (type, gene) are collapsed into one: over every cell
  (`cell=None`) or only those of one cell; `collapse="mean"` is the plain mean,
  `"weighted"` the mean weighted by replicate count.
- Where a (type, gene) has >= 2 signatures, they are also split into two seeded halves,
  each collapsed alike, in `extras[REPLICATE_HALVES]` = {type: (genes, half A, half B)}: the
  split-half replicate ceiling (`tasks.transcriptionnet.prepare.replicate_ceiling_metrics`).
- The gene index follows `data=dir` (`datadir.assemble_perturbation_data`).
"""
from __future__ import annotations

import logging
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from tfnet_jax.data.genes import GeneTable
from tfnet_jax.data.io.gctx import GCTXReader
from tfnet_jax.data.io.tables import (
    check_unique_keys,
    column_as_float,
    preview,
    read_table,
    require_columns,
)
from tfnet_jax.data.perturbation.container import REPLICATE_HALVES, PerturbationData
from tfnet_jax.data.perturbation.datadir import (
    assemble_perturbation_data,
    read_network_layers,
)
from tfnet_jax.data.perturbation.priors import read_feature_tables, resolve
from tfnet_jax.errors import DataError
from tfnet_jax.schemas import COLLAPSE_MODES, CMapConfig  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

DEFAULT_TYPE_MAP = {"trt_sh": "RNAi", "trt_sh.cgs": "RNAi", "trt_xpr": "CRISPR", "trt_oe": "OE"}
# Our type names -> CMap pert_type codes, for the files we write (GCTX predictions).
PERT_TYPE_CODES = {"RNAi": "trt_sh", "CRISPR": "trt_xpr", "OE": "trt_oe"}
SYMBOL_COLUMNS = ("cmap_name", "pert_iname")
CELL_COLUMNS = ("cell_iname", "cell_id")
REPLICATE_COLUMNS = ("nsample", "distil_nsample")
_BATCH_BYTES = 64 << 20  # bound on the signatures read from the GCTX at once


def _first_column(table: pd.DataFrame, names: Sequence[str]) -> str | None:
    return next((name for name in names if name in table.columns), None)


def _selected_signatures(cfg: CMapConfig, type_map: dict[str, str], genes: GeneTable,
                         gctx_ids: np.ndarray) -> tuple[pd.DataFrame, list[str]]:
    """Rows of siginfo to use: columns sig_id, pert_type (mapped), pert_gene (Entrez), weight.

    Also returns the perturbed-gene symbols that could not be mapped.
    """
    path = Path(cfg.siginfo)
    table = read_table(path)
    require_columns(table, ("sig_id", "pert_type"), path)
    symbol_column = _first_column(table, SYMBOL_COLUMNS)
    if symbol_column is None:
        raise DataError(f"{path}: no perturbed-gene symbol column ({' or '.join(SYMBOL_COLUMNS)}); "
                        f"the header has {preview(list(table.columns))}")
    keep = table["pert_type"].isin(list(type_map)).to_numpy()
    where = f"of pert_type {sorted(type_map)}"
    if cfg.cell is not None:
        cell_columns = [c for c in CELL_COLUMNS if c in table.columns]
        if not cell_columns:
            raise DataError(f"{path}: data.cell is set but there is no "
                            f"{' or '.join(CELL_COLUMNS)} column")
        keep = keep & (table[cell_columns] == str(cfg.cell)).any(axis=1).to_numpy()
        where += f" in cell {cfg.cell!r}"
    table = table[keep]
    if table.empty:
        raise DataError(f"{path}: no signatures {where}")
    check_unique_keys(table, ["sig_id"], path, what="signature")

    in_gctx = table["sig_id"].isin(gctx_ids.tolist()).to_numpy()
    if not in_gctx.any():
        raise DataError(f"{path}: none of the {len(table)} signatures {where} is in {cfg.gctx}")
    if not in_gctx.all():
        log.info("%s: %d of %d signatures %s are not in %s; skipped", path,
                 int((~in_gctx).sum()), len(table), where, cfg.gctx)
    table = table[in_gctx]

    entrez, unmapped = genes.to_entrez(table[symbol_column])
    mapped = np.asarray([e is not None for e in entrez])
    if unmapped:
        log.warning("%s: %d signature(s) of %d unmapped perturbed gene symbol(s) dropped",
                    path, int((~mapped).sum()), len(unmapped))
    table = table[mapped]
    if table.empty:
        raise DataError(f"{path}: no perturbed gene symbol {where} maps to an Entrez ID "
                        f"in {genes.source}: {preview(unmapped, 5)}")
    weights = np.ones(len(table))
    if cfg.collapse == "weighted":
        count_column = _first_column(table, REPLICATE_COLUMNS)
        if count_column is None:
            raise DataError(f"{path}: collapse=weighted needs a replicate count column "
                            f"({' or '.join(REPLICATE_COLUMNS)})")
        weights = column_as_float(table, count_column, path, dtype=np.float64)
        bad = np.flatnonzero(weights <= 0)
        if len(bad):
            raise DataError(f"{path}, line {table.index[bad[0]]}, column '{count_column}': "
                            f"replicate count '{table[count_column].iloc[bad[0]]}' is not > 0")
    chosen = pd.DataFrame({
        "sig_id": table["sig_id"].to_numpy(dtype=object),
        "pert_type": table["pert_type"].map(type_map).to_numpy(dtype=object),
        "pert_gene": np.asarray([e for e in entrez if e is not None], dtype=object),
        "weight": weights}, index=table.index)
    return chosen, unmapped


def replicate_halves(sigs: pd.DataFrame) -> np.ndarray:
    """Per signature, its half (0 or 1) in its (type, gene) group; -1 in groups of one.

    Each group's members, in sig_id order, are shuffled by a generator seeded with the group's
    key, so a gene's halves are the same in every run, whatever else is loaded and in whatever
    order; the first floor(k/2) shuffled members form half 0.
    """
    half = np.full(len(sigs), -1, dtype=np.int64)
    sig_ids = sigs["sig_id"].to_numpy(dtype=str)
    groups = sigs.groupby(["pert_type", "pert_gene"], sort=False).indices
    for (pert_type, gene), members in groups.items():
        if len(members) < 2:
            continue
        rng = np.random.default_rng(zlib.crc32(f"{pert_type}\t{gene}".encode()))
        in_order = members[np.argsort(sig_ids[members], kind="stable")]
        shuffled = in_order[rng.permutation(len(members))]
        half[shuffled] = np.arange(len(members)) >= len(members) // 2
    return half


def _collapsed(gctx: GCTXReader, sigs: pd.DataFrame, rows: np.ndarray
               ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, tuple]]:
    """Weighted mean signature of each (type, gene), reading the GCTX batch by batch; and,
    per type, (genes, half A mean, half B mean) of the groups with >= 2 signatures
    (`replicate_halves`), for the split-half replicate ceiling."""
    grouped = sigs.groupby(["pert_type", "pert_gene"], sort=True)
    codes = grouped.ngroup().to_numpy()
    keys = grouped.size().index
    weights = sigs["weight"].to_numpy(dtype=np.float64)
    half = replicate_halves(sigs)
    sums = np.zeros((len(keys), len(rows)), dtype=np.float64)
    half_sums = np.zeros((2, len(keys), len(rows)), dtype=np.float64)
    cols = gctx.positions(sigs["sig_id"].tolist(), "col")
    order = np.argsort(cols, kind="stable")  # disk order: each batch is a sorted, local read
    step = max(1, _BATCH_BYTES // (4 * len(rows)))
    for start in range(0, len(order), step):
        part = order[start:start + step]
        block = gctx.read_positions(rows, cols[part]).T  # signatures x readouts
        bad = ~np.isfinite(block).all(axis=1)
        if bad.any():
            raise DataError(f"{gctx.path}: non-finite values in signature(s) "
                            f"{preview(sigs['sig_id'].to_numpy()[part][bad].tolist(), 5)}")
        weighted = block * weights[part, None]
        np.add.at(sums, codes[part], weighted)
        split = half[part] >= 0
        np.add.at(half_sums, (half[part][split], codes[part][split]), weighted[split])
    means = (sums / np.bincount(codes, weights=weights)[:, None]).astype(np.float32)
    half_weights = np.stack([np.bincount(codes[half == h], weights=weights[half == h],
                                         minlength=len(keys)) for h in (0, 1)])
    replicated = half_weights[0] > 0
    half_means = (half_sums[:, replicated] / half_weights[:, replicated, None]).astype(np.float32)
    types = keys.get_level_values(0).to_numpy(dtype=object)
    genes = keys.get_level_values(1).to_numpy(dtype=object)
    tables = {t: (genes[types == t].astype(str), means[types == t]) for t in sorted(set(types))}
    rep_types, rep_genes = types[replicated], genes[replicated]
    halves = {t: (rep_genes[rep_types == t].astype(str), half_means[0][rep_types == t],
                  half_means[1][rep_types == t]) for t in sorted(set(rep_types))}
    return tables, halves


def load_cmap(cfg: CMapConfig, pert_types: Sequence[str] | None = None) -> PerturbationData:
    """Build the data set (rules in the module docstring); `pert_types` limits what is read."""
    cfg.validate()
    type_map = dict(cfg.type_map or DEFAULT_TYPE_MAP)
    if pert_types is not None:
        type_map = {k: v for k, v in type_map.items() if v in set(pert_types)}
        if not type_map:
            raise DataError(f"data.pert_types: none of {list(pert_types)} is a type of the "
                            f"type map {cfg.type_map or DEFAULT_TYPE_MAP}")
    genes = GeneTable.from_file(cfg.geneinfo)
    landmarks = genes.landmark_ids()
    edge_lists = read_network_layers(Path(cfg.networks))

    with GCTXReader(cfg.gctx) as gctx:
        rows = np.flatnonzero(np.isin(gctx.row_ids, landmarks))
        if not len(rows):
            raise DataError(f"{cfg.gctx}: none of the {len(landmarks)} landmark genes of "
                            f"{cfg.geneinfo} is a row id of the GCTX")
        if len(rows) < len(landmarks):
            log.warning("%s: %d of %d landmark genes of %s are not in the GCTX", cfg.gctx,
                        len(landmarks) - len(rows), len(landmarks), cfg.geneinfo)
        readout_genes = gctx.row_ids[rows].astype(str)
        sigs, unmapped = _selected_signatures(cfg, type_map, genes, gctx.col_ids)
        tables, halves = _collapsed(gctx, sigs, rows)

    several = cfg.node_feature_files is not None
    feature_files = cfg.node_feature_files if several else [cfg.node_features] if cfg.node_features else []
    feature_tables = read_feature_tables([resolve(None, f) for f in feature_files],
                                         f"data.{'node_feature_files' if several else 'node_features'}")
    counts = sigs["pert_type"].value_counts().to_dict()
    log.info("%s: collapsed (%s, cell %s) %s signatures into %s perturbed genes", cfg.gctx,
             cfg.collapse, cfg.cell, counts, {t: len(g) for t, (g, _) in tables.items()})
    data = assemble_perturbation_data(edge_lists, readout_genes, tables, feature_tables,
                                      source=str(cfg.gctx))
    data.extras.update(unmapped_pert_symbols=unmapped, signatures_per_type=counts)
    if halves:
        data.extras[REPLICATE_HALVES] = halves
        log.info("%s: split-half replicate ceiling from perturbed genes with >= 2 signatures: %s",
                 cfg.gctx, {t: len(g) for t, (g, _, _) in halves.items()})
    return data
