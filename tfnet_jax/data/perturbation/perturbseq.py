"""Perturbation signatures from an AnnData `.h5ad` of cells or pseudobulk profiles
(`data=anndata`): single-cell CRISPR screens (Perturb-seq) for the TranscriptionNet family.

Inputs (config keys of `schemas.AnnDataConfig` in parentheses):
- path: an `.h5ad`, rows = cells (or pseudobulk profiles), columns = genes. X may be dense or
  sparse; it is opened in backed mode and read in row chunks of bounded size (`h5ad_chunks`),
  so a large file is never loaded whole (CSR is read row by row; CSC works but each chunk
  reads every column).
- obs columns: the perturbed gene (gene_column); the perturbation type (type_column; without
  it every cell is default_type); control status (control_column, a boolean; without it a cell
  is a control when its gene label is one of control_labels, exact and case-sensitive, so the
  gene CTRL is not the label "ctrl"); optionally a batch (batch_column, e.g. gem_group).
- networks, node_features: as `data=cmap`; gene_table: map perturbed genes and readouts given
  as symbols, aliases or Ensembl IDs to Entrez IDs (`GeneTable.entrez_of`) when the networks
  are keyed by Entrez IDs; labels of one gene are pooled, a var gene mapped twice kept once.

Rules:
- X is expected log-normalised (e.g. scanpy normalize_total + log1p) and used as it is. With
  log1p=true X holds raw counts: each cell is scaled to target_sum counts (over every var
  gene, not only the readouts) and log1p'ed. Every value must be finite (counts >= 0, and a
  cell's total > 0).
- Type labels map to RNAi | CRISPR | OE through type_map, case-insensitive (DEFAULT_TYPE_MAP
  when unset: CRISPRi -> CRISPR, CRISPRa -> OE, ...); an unknown label is an error.
- Signature of perturbation (gene g, type t) = the mean over its cells i of x_i - c(t, b_i):
  the mean log-fold change against controls. c(t, b) is the mean of the control cells of
  batch b (of the whole file without batch_column) whose type is t or unlabelled (a control
  with an empty type cell serves every type). A (type, batch) with perturbed cells but no
  controls is an error.
- Readouts: the var genes (var_names, or var_column), in var order; a subset by a boolean var
  column (readout_column, e.g. highly_variable) or a file of genes (readout_list).
- Perturbed genes that are not a node of any network layer are skipped with one warning
  (counts and examples); so are perturbations with fewer than min_cells cells. The gene index
  follows `data=dir` (`datadir.assemble_perturbation_data`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tfnet_jax.data.genes import GeneTable
from tfnet_jax.data.io.h5ad_chunks import group_sums, open_backed
from tfnet_jax.data.io.tables import preview
from tfnet_jax.data.perturbation.container import PerturbationData
from tfnet_jax.data.perturbation.datadir import (
    assemble_perturbation_data,
    read_network_layers,
)
from tfnet_jax.data.perturbation.priors import read_feature_tables
from tfnet_jax.data.perturbation.synthetic import PERT_TYPES
from tfnet_jax.errors import ConfigError, DataError
from tfnet_jax.schemas import MISSING, AnnDataConfig

log = logging.getLogger(__name__)

DEFAULT_TYPE_MAP = {"rnai": "RNAi", "shrna": "RNAi", "sirna": "RNAi", "trt_sh": "RNAi",
                    "trt_sh.cgs": "RNAi",
                    "crispr": "CRISPR", "crisprko": "CRISPR", "crispr-ko": "CRISPR",
                    "crispri": "CRISPR", "trt_xpr": "CRISPR", "oe": "OE", "orf": "OE",
                    "overexpression": "OE", "crispra": "OE", "trt_oe": "OE"}
_TRUE, _FALSE = {"true", "1", "1.0", "yes"}, {"false", "0", "0.0", "no"}


def check_config(cfg: AnnDataConfig, paths: bool = True) -> None:
    """One-line ConfigError at the first bad field; `config.validate` runs it with `paths=False`
    (the paths are checked at load time, as for data=dir and data=cmap)."""
    for name in ("path", "networks") if paths else ():
        if getattr(cfg, name) in (None, "", MISSING):
            raise ConfigError(f"config: data.{name}: set it (data=anndata needs data.path, an "
                              f".h5ad, and data.networks, a directory of edge lists)")
    if cfg.default_type not in PERT_TYPES:
        raise ConfigError(f"config: data.default_type={cfg.default_type!r}: expected one of "
                          f"{', '.join(PERT_TYPES)}")
    for label, pert_type in (cfg.type_map or {}).items():
        if pert_type not in PERT_TYPES:
            raise ConfigError(f"config: data.type_map.{label}={pert_type!r}: expected one of "
                              f"{', '.join(PERT_TYPES)}")
    if cfg.readout_column is not None and cfg.readout_list is not None:
        raise ConfigError("config: data.readout_list: set data.readout_column or "
                          "data.readout_list, not both")
    if not (isinstance(cfg.min_cells, int) and not isinstance(cfg.min_cells, bool)
            and cfg.min_cells >= 1):
        raise ConfigError(f"config: data.min_cells={cfg.min_cells!r}: must be a positive integer")
    if not (isinstance(cfg.target_sum, (int, float)) and cfg.target_sum > 0):
        raise ConfigError(f"config: data.target_sum={cfg.target_sum!r}: must be a positive number")


# ---------------------------------------------------------------- obs: what each cell is
@dataclass
class Cells:
    """Per-cell annotations (aligned with X's rows)."""
    genes: np.ndarray    # object [n]: perturbed gene label ("" for controls)
    control: np.ndarray  # bool [n]
    types: np.ndarray    # object [n]: RNAi | CRISPR | OE, or "" (a control without a type)
    batches: np.ndarray  # object [n]: "" without batch_column


def _obs_column(obs: pd.DataFrame, name: str, key: str, path: Path,
                where: str = "obs") -> np.ndarray:
    """An obs (or var) column as stripped strings, "" where missing; an absent column is an error."""
    if name not in obs.columns:
        raise DataError(f"{path}: {where} has no column {name!r} (data.{key}); its columns are "
                        f"{preview([str(c) for c in obs.columns])}")
    column = obs[name]
    text = column.astype(object).where(column.notna(), "").astype(str).str.strip()
    return text.to_numpy(dtype=object)


def _first_cell(mask: np.ndarray, obs: pd.DataFrame) -> str:
    return repr(str(obs.index[int(np.argmax(mask))]))


def _control_flags(obs: pd.DataFrame, genes: np.ndarray, cfg: AnnDataConfig,
                   path: Path) -> np.ndarray:
    if cfg.control_column is None:
        control = np.isin(genes, list(cfg.control_labels))
        if not control.any():
            raise DataError(f"{path}: no control cells: no value of obs column "
                            f"{cfg.gene_column!r} is one of {list(cfg.control_labels)} "
                            f"(data.control_labels); set it or data.control_column")
        return control
    text = np.char.lower(_obs_column(obs, cfg.control_column, "control_column", path).astype(str))
    known = np.isin(text, list(_TRUE | _FALSE))
    if not known.all():
        raise DataError(f"{path}: obs column {cfg.control_column!r} (data.control_column) is not "
                        f"boolean: cell {_first_cell(~known, obs)} has "
                        f"{text[~known][0] or 'an empty value'!r}")
    control = np.isin(text, list(_TRUE))
    if not control.any():
        raise DataError(f"{path}: no control cells: obs column {cfg.control_column!r} "
                        f"(data.control_column) marks none")
    return control


def _cell_types(obs: pd.DataFrame, control: np.ndarray, cfg: AnnDataConfig,
                path: Path) -> np.ndarray:
    if cfg.type_column is None:
        return np.full(len(obs), cfg.default_type, dtype=object)
    type_map = {str(k).strip().lower(): v for k, v in (cfg.type_map or DEFAULT_TYPE_MAP).items()}
    labels = _obs_column(obs, cfg.type_column, "type_column", path)
    empty = labels == ""
    if (empty & ~control).any():
        raise DataError(f"{path}: obs column {cfg.type_column!r} (data.type_column) is empty "
                        f"for perturbed cell {_first_cell(empty & ~control, obs)}")
    lowered = pd.Series(labels, dtype=object).str.lower()
    known = lowered.isin(list(type_map)).to_numpy() | empty
    unknown = sorted(set(labels[~known].tolist()))
    if unknown:
        raise DataError(f"{path}: obs column {cfg.type_column!r} has unknown perturbation type "
                        f"label(s) {preview(unknown, 5)}; known (data.type_map, any case): "
                        f"{sorted(type_map)}")
    return lowered.map(type_map).fillna("").to_numpy(dtype=object)


def read_cells(obs: pd.DataFrame, cfg: AnnDataConfig, path: Path) -> Cells:
    genes = _obs_column(obs, cfg.gene_column, "gene_column", path)
    control = _control_flags(obs, genes, cfg, path)
    if control.all():
        raise DataError(f"{path}: every cell is a control; no perturbed cells")
    unnamed = (genes == "") & ~control
    if unnamed.any():
        raise DataError(f"{path}: obs column {cfg.gene_column!r} (data.gene_column) is empty "
                        f"for perturbed cell {_first_cell(unnamed, obs)}")
    genes = np.where(control, "", genes)
    types = _cell_types(obs, control, cfg, path)
    batches = (np.full(len(obs), "", dtype=object) if cfg.batch_column is None
               else _obs_column(obs, cfg.batch_column, "batch_column", path))
    return Cells(genes=genes, control=control, types=types, batches=batches)


# ---------------------------------------------------------------- var: the readouts
def _gene_list(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"data.readout_list: file not found: {path}")
    genes = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [g for g in genes if g]


def read_readouts(var: pd.DataFrame, cfg: AnnDataConfig, path: Path,
                  gene_table: GeneTable | None) -> tuple[np.ndarray, np.ndarray]:
    """(X column positions int [R], readout gene IDs str [R]) in var order."""
    names = (np.asarray(var.index.astype(str), dtype=object) if cfg.var_column is None
             else _obs_column(var, cfg.var_column, "var_column", path, where="var"))
    keep = np.ones(len(names), dtype=bool)
    if cfg.readout_column is not None:
        if cfg.readout_column not in var.columns:
            raise DataError(f"{path}: var has no column {cfg.readout_column!r} "
                            f"(data.readout_column); its columns are {preview(list(var.columns))}")
        flags = var[cfg.readout_column]
        if not pd.api.types.is_bool_dtype(flags):
            raise DataError(f"{path}: var column {cfg.readout_column!r} (data.readout_column) is "
                            f"not boolean (dtype {flags.dtype})")
        keep = flags.to_numpy(dtype=bool)
    elif cfg.readout_list is not None:
        listed = _gene_list(Path(cfg.readout_list))
        keep = np.isin(names, listed)
        absent = sorted(set(listed) - set(names[keep].tolist()))
        if absent:
            log.warning("%s: %d of %d genes of %s are not var genes of %s; ignored: %s",
                        cfg.readout_list, len(absent), len(set(listed)), cfg.readout_list, path,
                        preview(absent, 5))
    columns = np.flatnonzero(keep & (names != ""))
    if gene_table is not None:
        mapped, _ = gene_table.entrez_of(names[columns])  # unmapped: logged there
        columns = columns[[m is not None for m in mapped]]
        names = names.copy()
        names[columns] = [m for m in mapped if m is not None]
        again = pd.Index(names[columns]).duplicated()
        if again.any():  # e.g. a symbol and an alias of one gene: its first var column is kept
            log.warning("%s: %d var gene(s) map to the Entrez ID of an earlier one through %s; "
                        "dropped: %s", path, int(again.sum()), cfg.gene_table,
                        preview(names[columns][again].tolist(), 5))
            columns = columns[~again]
    if not len(columns):
        raise DataError(f"{path}: no readout genes (var genes left after data.readout_column / "
                        f"data.readout_list{' / data.gene_table' if gene_table else ''})")
    readouts = names[columns].astype(str)
    repeated = pd.Index(readouts).duplicated()
    if repeated.any():
        raise DataError(f"{path}: var gene {readouts[int(np.argmax(repeated))]!r} is listed twice")
    return columns, readouts


# ---------------------------------------------------------------- signatures
def _signatures(cells: Cells, pert_code: np.ndarray, pert_keys: pd.MultiIndex,
                strata: dict[tuple[str, str], int], sums: np.ndarray, path: Path,
                batch_column: str | None) -> np.ndarray:
    """Mean log-fold change of each perturbation against its matched controls (float64)."""
    num_perts = len(pert_keys)
    counts = np.bincount(pert_code[pert_code >= 0], minlength=num_perts).astype(np.float64)
    means = sums[:num_perts] / counts[:, None]
    # `strata`: (type or "", batch) -> control count; their sums follow the perturbations' in
    # `sums`. Perturbation of type t in batch b: the controls of (t, b) and ("", b) together.
    stratum_row = {key: num_perts + i for i, key in enumerate(strata)}
    perturbed = pert_code >= 0
    pairs = (pd.DataFrame({"p": pert_code[perturbed], "t": cells.types[perturbed],
                           "b": cells.batches[perturbed]})
             .groupby(["p", "t", "b"], sort=True).size().reset_index(name="n"))
    keys = pd.MultiIndex.from_frame(pairs[["t", "b"]])
    key_code, needed = pd.factorize(keys, sort=True)
    control_means = np.zeros((len(needed), sums.shape[1]))
    for k, (t, b) in enumerate(needed):  # one per (type, batch): few
        matched = [key for key in ((t, b), ("", b)) if key in strata]
        if not matched:
            first = pairs.iloc[int(np.argmax(key_code == k))]
            where = f" in batch {b!r} of obs column {batch_column!r}" if batch_column else ""
            raise DataError(f"{path}: no control cells for type {t}{where} (perturbed gene "
                            f"{pert_keys[int(first['p'])][1]!r} has {int(first['n'])} cell(s) there)")
        control_means[k] = (sums[[stratum_row[key] for key in matched]].sum(axis=0)
                            / sum(strata[key] for key in matched))
    # Each perturbation's cells weight their batch's control mean by their share of its cells.
    share = np.zeros((num_perts, len(needed)))
    p = pairs["p"].to_numpy()
    share[p, key_code] = pairs["n"].to_numpy() / counts[p]
    shift = share @ control_means
    return means - shift


def _perturbations(cells: Cells, graph_genes: set[str], cfg: AnnDataConfig, path: Path,
                   gene_table: GeneTable | None) -> tuple[np.ndarray, pd.MultiIndex]:
    """(code of each cell's perturbation, -1 for controls and skipped cells; (type, gene) keys)."""
    perturbed = ~cells.control
    labels = cells.genes.copy()
    if gene_table is not None:
        unique = sorted(set(labels[perturbed].tolist()))
        mapped, _ = gene_table.entrez_of(unique)
        entrez = {s: m or "" for s, m in zip(unique, mapped)}
        labels[perturbed] = [entrez[s] for s in labels[perturbed]]
        perturbed &= labels != ""  # unmapped symbols: logged by to_entrez
        if not perturbed.any():
            raise DataError(f"{path}: no perturbed gene of obs column {cfg.gene_column!r} maps to "
                            f"an Entrez ID through {cfg.gene_table}: {preview(unique, 5)}")
    in_graph = pd.Series(labels, dtype=object).isin(graph_genes).to_numpy()
    outside = perturbed & ~in_graph
    if outside.any() and not (perturbed & in_graph).any():
        raise DataError(f"{path}: no perturbed gene of obs column {cfg.gene_column!r} is a node of "
                        f"the networks in {cfg.networks}: {preview(sorted(set(labels[outside])), 5)}; "
                        f"are they the same kind of ID (symbols, Entrez; see data.gene_table)?")
    if outside.any():
        missing = sorted(set(labels[outside].tolist()))
        log.warning("%s: %d of %d perturbed genes (%d cells) are not nodes of the networks in %s; "
                    "skipped: %s", path, len(missing), len(set(labels[perturbed].tolist())),
                    int(outside.sum()), cfg.networks, preview(missing, 5))
    perturbed &= in_graph
    keys = pd.MultiIndex.from_arrays([cells.types[perturbed], labels[perturbed]])
    codes, uniques = pd.factorize(keys, sort=True)
    counts = np.bincount(codes, minlength=len(uniques))
    if (counts < cfg.min_cells).any():
        few = counts < cfg.min_cells
        log.warning("%s: %d perturbation(s) with fewer than %d cells (data.min_cells) skipped: %s",
                    path, int(few.sum()), cfg.min_cells,
                    preview([f"{t}:{g}" for t, g in uniques[few]], 5))
        if few.all():
            raise DataError(f"{path}: no perturbation has data.min_cells={cfg.min_cells} cells")
        remap = np.cumsum(~few) - 1
        codes = np.where(few[codes], -1, remap[codes])
        uniques = uniques[~few]
    pert_code = np.full(len(labels), -1, dtype=np.int64)
    pert_code[perturbed] = codes
    return pert_code, pd.MultiIndex.from_tuples(list(uniques))


def load_anndata(cfg: AnnDataConfig) -> PerturbationData:
    """Build the data set (rules in the module docstring)."""
    check_config(cfg)
    path = Path(cfg.path)
    gene_table = GeneTable.from_file(cfg.gene_table) if cfg.gene_table else None
    edge_lists = read_network_layers(Path(cfg.networks))
    graph_genes: set[str] = set()
    for edges in edge_lists.values():
        graph_genes.update(pd.unique(edges[["gene_a", "gene_b"]].to_numpy().ravel()).tolist())

    adata = open_backed(path)
    try:
        cells = read_cells(adata.obs, cfg, path)
        columns, readouts = read_readouts(adata.var, cfg, path, gene_table)
        pert_code, pert_keys = _perturbations(cells, graph_genes, cfg, path, gene_table)
        control_keys = pd.MultiIndex.from_arrays([cells.types[cells.control],
                                                  cells.batches[cells.control]])
        control_code, control_uniques = pd.factorize(control_keys, sort=True)
        strata = dict(zip(control_uniques, np.bincount(control_code).tolist()))
        groups = pert_code.copy()
        groups[cells.control] = len(pert_keys) + control_code
        num_groups = len(pert_keys) + len(strata)
        if adata.X is None:
            raise DataError(f"{path}: the AnnData object has no X matrix")
        sums = group_sums(adata.X, groups, num_groups, columns, path, adata.obs_names,
                          adata.var_names, target_sum=cfg.target_sum if cfg.log1p else None)
    finally:
        if adata.file is not None:
            adata.file.close()
    values = _signatures(cells, pert_code, pert_keys, strata, sums, path, cfg.batch_column)

    types = pert_keys.get_level_values(0).to_numpy(dtype=object)
    pert_genes = pert_keys.get_level_values(1).to_numpy(dtype=object)
    tables = {t: (pert_genes[types == t].astype(str), values[types == t].astype(np.float32))
              for t in sorted(set(types))}
    feature_tables = (read_feature_tables([Path(cfg.node_features)], "data.node_features")
                      if cfg.node_features else [])
    cells_per_type = {t: int(n) for t, n in pd.Series(cells.types[pert_code >= 0]).value_counts().items()}
    log.info("%s: %d cells (%d controls) -> %s perturbations, %d readouts", path,
             len(cells.control), int(cells.control.sum()),
             {t: len(g) for t, (g, _) in tables.items()}, len(readouts))
    data = assemble_perturbation_data(edge_lists, readouts, tables, feature_tables,
                                      source=str(path))
    data.extras.update(cells_per_type=cells_per_type,
                       control_cells=int(cells.control.sum()))
    return data
