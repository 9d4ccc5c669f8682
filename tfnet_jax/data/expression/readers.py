"""Expression matrices for TFNet: predict every target gene's level from the TFs' levels.

Readers: AnnData `.h5ad` (obs = samples, var = genes), delimited text (`.csv`, `.tsv`,
`.txt`, optionally `.gz`; first column = sample ids, header = gene ids) and `.parquet`
(same layout). `orientation="genes_x_samples"` reads the transposed layout. Every bad
input is a DataError naming the file and the line, sample, gene or field at fault.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from tfnet_jax.data.expression.container import ExpressionData
from tfnet_jax.data.genes import GeneTable, gene_lines, match_listed_genes
from tfnet_jax.data.io.tables import preview, read_table, split_table_name
from tfnet_jax.errors import DataError
from tfnet_jax.schemas.data import ExpressionSource

log = logging.getLogger(__name__)

TRANSFORMS = ("none", "log1p", "cpm_log1p")
ORIENTATIONS = ("auto", "samples_x_genes", "genes_x_samples")
# Spellings of a missing value in text tables: reported as NaN (with a count), not as junk.
_MISSING_TOKENS = {"", "na", "n/a", "nan", "null", "none"}


def _check_unique(ids: np.ndarray, path: Path, what: str, where: list[str]) -> None:
    _, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        twice = str(ids[first[counts > 1][0]])
        places = [where[i] for i in np.flatnonzero(ids == twice)[:2]]
        raise DataError(f"{path}: {what} id {twice!r} appears more than once ({' and '.join(places)})")


def _cell_float(cell) -> float | None:
    """float of a cell; NaN for a missing-value token; None for junk."""
    try:
        return float(cell)
    except (ValueError, TypeError):
        if cell is None or str(cell).strip().lower() in _MISSING_TOKENS:
            return np.nan
        return None


def _parse_cells(raw: np.ndarray, path: Path, row_where: list[str], columns: list[str]) -> np.ndarray:
    """Object/str cells -> float64; a non-numeric cell names its column and first bad row."""
    try:
        return raw.astype(np.float64)
    except (ValueError, TypeError):
        pass
    # Slow path only on bad input, column by column so clean columns stay vectorised.
    out = np.empty(raw.shape, dtype=np.float64)
    for c in range(raw.shape[1]):
        try:
            out[:, c] = raw[:, c].astype(np.float64)
            continue
        except (ValueError, TypeError):
            pass
        parsed = [_cell_float(x) for x in raw[:, c]]
        junk = [i for i, v in enumerate(parsed) if v is None]
        if junk:
            raise DataError(f"{path}, column {columns[c]!r}: non-numeric value {str(raw[junk[0], c])!r} "
                            f"at {row_where[junk[0]]} ({len(junk)} such cells in this column)")
        out[:, c] = parsed
    return out


def _frame_to_matrix(frame: pd.DataFrame, path: Path, unit: str, group_column: str | None,
                     transpose: bool):
    """A table (first column = row ids) -> (values [samples, genes], samples, genes, groups)."""
    row_where = [f"{unit} {i}" for i in frame.index]
    id_col = frame.columns[0]
    row_ids = np.asarray([str(x).strip() for x in frame[id_col].tolist()], dtype=str)
    col_ids = np.asarray([str(c).strip() for c in frame.columns[1:]], dtype=str)
    empty = np.flatnonzero(row_ids == "")
    if len(empty):
        raise DataError(f"{path}, {row_where[empty[0]]}, column {id_col!r}: empty id")
    row_what, col_what = ("gene", "sample") if transpose else ("sample", "gene")
    _check_unique(row_ids, path, row_what, row_where)
    _check_unique(col_ids, path, col_what, [f"column {c!r}" for c in col_ids])
    groups = None
    keep_rows = np.ones(len(row_ids), dtype=bool)
    keep_cols = np.ones(len(col_ids), dtype=bool)
    if group_column is not None:
        if not transpose:
            if group_column not in col_ids:
                raise DataError(f"{path}: group column {group_column!r} not found; the columns are "
                                f"{preview(list(frame.columns))}")
            keep_cols = col_ids != group_column
            groups = np.asarray([str(x).strip() for x in frame.iloc[:, 1 + int(np.argmin(keep_cols))]], dtype=str)
        else:
            # Transposed tables carry groups as a row named by group_column.
            if group_column not in row_ids:
                raise DataError(f"{path}: group row {group_column!r} not found in column {id_col!r} "
                                f"(genes_x_samples); the first ids are {preview(row_ids.tolist())}")
            keep_rows = row_ids != group_column
            groups = np.asarray([str(x).strip() for x in frame.iloc[int(np.argmin(keep_rows)), 1:]], dtype=str)
    if groups is not None and (groups == "").any():
        sample_ids = col_ids if transpose else row_ids
        raise DataError(f"{path}: group {group_column!r} is empty for sample "
                        f"{str(sample_ids[int(np.argmax(groups == ''))])!r}")
    raw = frame.iloc[keep_rows, 1:].to_numpy(dtype=object)[:, keep_cols]
    rows = [w for w, k in zip(row_where, keep_rows) if k]
    values = _parse_cells(raw, path, rows, col_ids[keep_cols].tolist())
    row_ids, col_ids = row_ids[keep_rows], col_ids[keep_cols]
    if transpose:
        return values.T, col_ids, row_ids, groups
    return values, row_ids, col_ids, groups


def _read_h5ad(path: Path, group_column: str | None, transpose: bool):
    import anndata
    try:
        adata = anndata.read_h5ad(path)
        matrix = adata.X
        if matrix is None:
            raise DataError(f"{path}: the AnnData object has no X matrix")
        matrix = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
    except DataError:
        raise
    except Exception as err:  # h5py/anndata raise many types on truncated or corrupt files
        raise DataError(f"{path}: cannot read the h5ad file, truncated or corrupt? ({err})") from err
    if not np.issubdtype(matrix.dtype, np.number) and matrix.dtype != bool:
        raise DataError(f"{path}: X has non-numeric dtype {matrix.dtype}")
    rows = np.asarray(adata.obs_names.astype(str), dtype=str)
    cols = np.asarray(adata.var_names.astype(str), dtype=str)
    _check_unique(rows, path, "gene" if transpose else "sample", [f"obs row {i + 1}" for i in range(len(rows))])
    _check_unique(cols, path, "sample" if transpose else "gene", [f"var row {i + 1}" for i in range(len(cols))])
    groups = None
    if group_column is not None:
        table, name = (adata.var, "var") if transpose else (adata.obs, "obs")
        if group_column not in table.columns:
            raise DataError(f"{path}: group column {group_column!r} not in {name}; its columns are "
                            f"{preview([str(c) for c in table.columns])}")
        column = table[group_column]
        if column.isna().any():
            bad = str(table.index[column.isna().to_numpy()][0])
            raise DataError(f"{path}: {name} column {group_column!r} is missing for {bad!r}")
        groups = np.asarray(column.astype(str), dtype=str)
    values = matrix.astype(np.float64)
    if transpose:
        return values.T, cols, rows, groups
    return values, rows, cols, groups


def read_expression_matrix(path: str | Path, *, group_column: str | None = None,
                           orientation: str = "auto"):
    """(values float64 [samples, genes], samples, genes, groups or None) from one file."""
    path = Path(path)
    if orientation not in ORIENTATIONS:
        raise DataError(f"{path}: orientation must be one of {ORIENTATIONS}, not {orientation!r}")
    transpose = orientation == "genes_x_samples"
    name = path.name.lower()
    if not (name.endswith((".h5ad", ".parquet", ".pq")) or split_table_name(name)):
        raise DataError(f"{path}: unknown expression file type; use .h5ad, .csv, .tsv, .txt (.gz) or .parquet")
    if not path.is_file():
        raise DataError(f"{path}: expression file not found")
    if name.endswith(".h5ad"):
        values, samples, genes, groups = _read_h5ad(path, group_column, transpose)
    elif name.endswith((".parquet", ".pq")):
        try:
            frame = pd.read_parquet(path)
        except Exception as err:  # pyarrow raises its own error types on bad files
            raise DataError(f"{path}: cannot read the parquet file ({err})") from err
        if not isinstance(frame.index, pd.RangeIndex):
            frame = frame.reset_index()  # ids written as the index become the first column
        if frame.shape[1] < 2 or frame.shape[0] == 0:
            raise DataError(f"{path}: empty matrix ({frame.shape[0]} rows, {frame.shape[1]} columns)")
        frame.index = pd.RangeIndex(1, len(frame) + 1)
        values, samples, genes, groups = _frame_to_matrix(frame, path, "row", group_column, transpose)
    else:
        frame = read_table(path)  # index = line numbers in the file
        values, samples, genes, groups = _frame_to_matrix(frame, path, "line", group_column, transpose)
    if values.size == 0:
        raise DataError(f"{path}: empty matrix ({len(samples)} samples x {len(genes)} genes)")
    bad = ~np.isfinite(values)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"{path}: {int(bad.sum())} missing or non-finite values (NaN/Inf); the first "
                        f"is at sample {str(samples[r])!r}, gene {str(genes[c])!r}")
    return values, samples, genes, groups


def apply_transform(values: np.ndarray, transform: str, *, source: str = "",
                    samples: np.ndarray | None = None) -> np.ndarray:
    """Per-sample / elementwise transforms (so no train/test leakage). Returns float64."""
    where = f"{source}: " if source else ""
    values = np.asarray(values, dtype=np.float64)
    if transform == "none":
        return values
    if transform not in TRANSFORMS:
        raise DataError(f"{where}transform must be one of {TRANSFORMS}, not {transform!r}")
    if (values < 0).any():
        r, c = np.argwhere(values < 0)[0]
        name = str(samples[r]) if samples is not None else f"row {r}"
        raise DataError(f"{where}transform {transform!r} needs non-negative values, but sample "
                        f"{name!r} (column {c}) has {values[r, c]:g}; the data is probably already "
                        f"log-scaled: use transform=none")
    if transform == "cpm_log1p":
        totals = values.sum(axis=1, keepdims=True)
        zero = np.flatnonzero(totals[:, 0] == 0)
        if len(zero):
            name = str(samples[zero[0]]) if samples is not None else f"row {zero[0]}"
            raise DataError(f"{where}sample {name!r} has zero total counts; cannot scale to CPM")
        values = values / totals * 1e6
    return np.log1p(values)


def _resolve(listed: list[tuple[int, str]], present: set[str], path, what: str,
             policy: str, other_genes: list[str], table=None) -> list[str]:
    """Listed genes found in the matrix (through the gene table when their IDs differ);
    missing ones are an error or dropped per policy."""
    if table is not None:
        listed = match_listed_genes(listed, other_genes, table, f"{path}", what)
    missing = [(n, g) for n, g in listed if g not in present]
    found = [g for _, g in listed if g in present]
    if not found:
        hint = ("" if table is not None else
                "; set data.gene_table=GENES.csv to map symbols, Entrez and Ensembl IDs")
        raise DataError(
            f"{path}: none of the {len(listed)} {what} genes are in the expression matrix "
            f"(list starts {preview([g for _, g in listed], 5)}, matrix genes start "
            f"{preview(other_genes, 5)}); probably different ID types, e.g. Ensembl vs symbol{hint}")
    if missing and policy == "error":
        shown = ", ".join(f"{g} (line {n})" for n, g in missing[:10])
        raise DataError(
            f"{path}: {len(missing)} {what} genes are not in the expression matrix: {shown}"
            f"{', ...' if len(missing) > 10 else ''}; {len(found)} of {len(listed)} are present. "
            f"Set data.missing_tfs=drop to drop them")
    if missing:
        log.warning("%s: dropped %d of %d %s genes absent from the expression matrix (e.g. %s)",
                    path, len(missing), len(listed), what, ", ".join(g for _, g in missing[:5]))
    return found


def read_expression_data(source: ExpressionSource | dict) -> ExpressionData:
    """Read the matrix, TF list and targets named by cfg (the `data` config group)."""
    cfg = source if isinstance(source, ExpressionSource) else ExpressionSource(**source)
    path = cfg.path
    policy = cfg.missing_tfs
    if policy not in ("error", "drop"):
        raise DataError(f"data.missing_tfs must be 'error' or 'drop', not {policy!r}")
    values, samples, genes, groups = read_expression_matrix(
        path, group_column=cfg.group_column, orientation=cfg.orientation)
    transform = cfg.transform
    values = apply_transform(values, transform, source=str(path), samples=samples)
    gene_list = genes.tolist()
    present = set(gene_list)
    table = GeneTable.from_file(cfg.gene_table) if cfg.gene_table else None
    tfs = _resolve(gene_lines(cfg.tf_list), present, cfg.tf_list, "tf", policy, gene_list, table)
    tf_set = set(tfs)
    if cfg.targets:
        # Same missing policy as TFs: one knob for "my lists and matrix disagree".
        listed = _resolve(gene_lines(cfg.targets), present, cfg.targets, "target", policy,
                          gene_list, table)
        targets = [g for g in listed if g not in tf_set]
        if len(targets) < len(listed):
            log.info("%s: %d listed targets are TFs and are used as inputs only",
                     cfg.targets, len(listed) - len(targets))
    else:
        targets = [g for g in gene_list if g not in tf_set]
    min_targets = cfg.min_targets
    if len(targets) < min_targets:
        raise DataError(f"{path}: {len(targets)} target genes after removing TFs, fewer than "
                        f"data.min_targets={min_targets}")
    with np.errstate(over="ignore"):
        values32 = values.astype(np.float32)
    if not np.isfinite(values32).all():
        r, c = np.argwhere(~np.isfinite(values32))[0]
        raise DataError(f"{path}: sample {str(samples[r])!r}, gene {str(genes[c])!r} is too large for float32")
    return ExpressionData(values=values32, samples=samples, genes=genes,
                          tf_genes=np.asarray(tfs, dtype=str), target_genes=np.asarray(targets, dtype=str),
                          groups=groups, source=str(path), transform=transform)


def write_expression_h5ad(path: str | Path, values: np.ndarray, samples, genes,
                          obs: dict | None = None) -> Path:
    """Write a small AnnData file (obs = samples, var = genes); for tests and demos."""
    import anndata
    path = Path(path)
    obs_frame = pd.DataFrame(obs or {}, index=pd.Index([str(s) for s in samples]))
    var_frame = pd.DataFrame(index=pd.Index([str(g) for g in genes]))
    adata = anndata.AnnData(X=np.asarray(values, dtype=np.float32), obs=obs_frame, var=var_frame)
    adata.write_h5ad(path)
    return path


def expression_data(matrix, tfs, targets=None, groups=None, source: str = "in-memory") -> ExpressionData:
    """An ExpressionData from memory, for the Python API: `matrix` is a samples x genes
    DataFrame or an AnnData (obs = samples, var = genes), already transformed; `tfs` the input
    genes; `targets` (default: every other gene); `groups` a sequence per sample or an
    `obs` column name (for split.by=group)."""
    if hasattr(matrix, "to_df"):  # AnnData
        if isinstance(groups, str):
            if groups not in matrix.obs:
                raise DataError(f"{source}: groups={groups!r} is not an obs column; obs has "
                                f"{preview(list(matrix.obs.columns))}")
            groups = matrix.obs[groups].to_numpy()
        matrix = matrix.to_df()
    if not isinstance(matrix, pd.DataFrame):
        raise DataError(f"{source}: expected a samples x genes DataFrame or an AnnData, got "
                        f"{type(matrix).__name__}")
    genes = np.asarray(matrix.columns.astype(str), dtype=str)
    samples = np.asarray(matrix.index.astype(str), dtype=str)
    _check_unique(genes, Path(source), "gene", [f"column {g!r}" for g in genes])
    _check_unique(samples, Path(source), "sample", [f"row {s!r}" for s in samples])
    values = matrix.to_numpy(np.float64)
    if not np.isfinite(values).all():
        r, c = np.argwhere(~np.isfinite(values))[0]
        raise DataError(f"{source}: NaN/Inf at sample {samples[r]!r}, gene {genes[c]!r}")
    present = set(genes.tolist())
    tf_list = [str(g) for g in tfs]
    target_list = None if targets is None else [str(g) for g in targets]
    missing = [g for g in tf_list + (target_list or []) if g not in present]
    if missing:
        raise DataError(f"{source}: {len(missing)} listed gene(s) are not columns: {preview(missing)}")
    tf_set = set(tf_list)
    target_list = [g for g in (target_list or genes.tolist()) if g not in tf_set]
    if not tf_list or not target_list:
        raise DataError(f"{source}: need at least one TF and one target gene "
                        f"({len(tf_list)} TFs, {len(target_list)} targets)")
    return ExpressionData(values=values.astype(np.float32), samples=samples, genes=genes,
                          tf_genes=np.asarray(tf_list, dtype=str), target_genes=np.asarray(target_list, dtype=str),
                          groups=None if groups is None else np.asarray(groups, dtype=str), source=source)


def tf_levels(inputs, tf_genes: np.ndarray, transform: str = "none",
              all_genes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(sample ids, [samples, TFs] levels) from a DataFrame (samples x genes), an AnnData or a
    matrix file, after the run's per-sample `transform`; every TF of the run must be a column.
    A transform that normalises each sample by its total (cpm_log1p) needs `all_genes`, the
    training matrix's genes, so the totals mean the same."""
    from tfnet_jax.data.expression.readers import read_expression_matrix
    if isinstance(inputs, (str, Path)):
        values, samples, genes, _ = read_expression_matrix(inputs)
        frame = pd.DataFrame(values, index=samples, columns=genes)
    elif isinstance(inputs, pd.DataFrame):
        frame = inputs
    elif hasattr(inputs, "to_df"):  # AnnData
        frame = inputs.to_df()
    else:
        raise DataError(f"inputs: expected a DataFrame, an AnnData or a matrix file, got "
                        f"{type(inputs).__name__}")
    frame = frame.rename(columns=str)
    if transform == "cpm_log1p" and all_genes is not None:
        absent = sorted(set(all_genes.tolist()) - set(frame.columns))
        if absent:
            raise DataError(f"inputs: data.transform=cpm_log1p scales each sample by its total over "
                            f"the training matrix's {len(all_genes)} genes; {len(absent)} are missing "
                            f"({absent[:5]}{' ...' if len(absent) > 5 else ''})")
        frame = frame[all_genes.tolist()]
    genes = frame.columns.tolist()
    missing = sorted(set(tf_genes.tolist()) - set(genes))
    if missing:
        raise DataError(f"inputs: {len(missing)} of the run's {len(tf_genes)} TFs are missing: "
                        f"{missing[:8]}{' ...' if len(missing) > 8 else ''}")
    values = frame.to_numpy(np.float64)
    if not np.isfinite(values).all():
        r, c = np.argwhere(~np.isfinite(values))[0]
        raise DataError(f"inputs: NaN/Inf at sample {frame.index[r]!r}, gene {genes[c]!r}")
    samples = np.asarray(frame.index.astype(str))
    values = apply_transform(values, transform, source="inputs", samples=samples)  # whole samples (CPM)
    position = {g: i for i, g in enumerate(genes)}
    return samples, values[:, [position[g] for g in tf_genes.tolist()]]
