"""Reading perturbation signatures, node features and split tables.

Signature and node-feature files are gene-keyed matrices: the first column names the
gene (`pert_gene` / `gene`), every other column is one numeric feature whose header is
kept as a string (readout gene IDs such as "10007" stay strings). Every value must be a
finite number; a gene listed twice or a column name used twice is an error.

Well-formed matrices are read by a fast path (`tables.read_table_fast`); anything it cannot
vouch for goes through the checked path, which names the file, line and column at fault.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tfnet_jax.data.io.tables import (
    block_as_float,
    check_unique_keys,
    column_as_str,
    read_table,
    read_table_fast,
    require_columns,
    require_first_column,
    table_layout,
)
from tfnet_jax.data.perturbation.container import SPLIT_NAMES
from tfnet_jax.errors import DataError

SPLIT_COLUMNS = ("pert_type", "pert_gene", "split")


def _read_gene_matrix(path: str | Path, key_column: str,
                      what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keys str [n], column names str [k], values float32 [n, k]) of a gene-keyed matrix."""
    fast = _read_gene_matrix_fast(path, key_column)
    return _read_gene_matrix_checked(path, key_column, what) if fast is None else fast


def _read_gene_matrix_fast(path: str | Path,
                           key_column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """What `_read_gene_matrix_checked` returns for a well-formed matrix; None if in any doubt."""
    table = read_table_fast(path, [key_column], None, dtype=np.float32)
    if table is None or table.columns[0] != key_column or len(table.columns) < 2:
        return None
    if table[key_column].duplicated().any():
        return None  # the checked path names both lines
    value_columns = [str(c) for c in table.columns[1:]]
    keys = np.asarray(table[key_column].tolist(), dtype=str)
    values = block_as_float(table, value_columns, path, dtype=np.float32)
    return keys, np.asarray(value_columns, dtype=str), values


def _read_gene_matrix_checked(path: str | Path, key_column: str,
                              what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The checked path: every cell as text, every fault a DataError naming its line."""
    table = read_table(path)  # also rejects duplicate column names
    require_first_column(table, key_column, path)
    value_columns = [str(c) for c in table.columns[1:]]
    if not value_columns:
        raise DataError(f"{path}, line 1: no value columns after '{key_column}'")
    keys = column_as_str(table, key_column, path)
    check_unique_keys(table, [key_column], path, what=what)
    values = block_as_float(table, value_columns, path, dtype=np.float32)
    return keys, np.asarray(value_columns, dtype=str), values


def read_signature_table(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read one perturbation type's signatures.

    Returns (pert_genes str [n], readout_genes str [R], values float32 [n, R]).
    """
    return _read_gene_matrix(path, "pert_gene", what="perturbed gene")


LONG_COLUMNS = ("gene", "feature")  # then optionally "value" (default 1)


def read_gene_feature_table(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read a gene-keyed table: (genes str [n], column names str [F], values float32 [n, F]).

    Wide (`gene, F1, F2, ...`, one row per gene) or long (`gene, feature[, value]`, one row per
    nonzero cell, value 1 when absent: e.g. GO-term memberships, ~100x smaller than wide)."""
    path = Path(path)
    names = table_layout(path)[1]
    if tuple(names[:2]) == LONG_COLUMNS and len(names) <= 3:
        return _read_long_feature_table(path, names)
    return _read_gene_matrix(path, "gene", what="gene")


def _read_long_feature_table(path: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    value_columns = names[2:]
    table = read_table_fast(path, list(LONG_COLUMNS), value_columns, dtype=np.float32)
    if table is None:  # the checked path names the faulty line
        table = read_table(path)
        for column in LONG_COLUMNS:
            table[column] = column_as_str(table, column, path)
    check_unique_keys(table, list(LONG_COLUMNS), path, what="(gene, feature)")
    values = (block_as_float(table, value_columns, path, dtype=np.float32)[:, 0] if value_columns
              else np.ones(len(table), dtype=np.float32))
    gene_codes, genes = pd.factorize(table["gene"].to_numpy(dtype=object))
    feature_codes, features = pd.factorize(table["feature"].to_numpy(dtype=object), sort=True)
    matrix = np.zeros((len(genes), len(features)), dtype=np.float32)
    matrix[gene_codes, feature_codes] = values
    return np.asarray(genes, dtype=str), np.asarray(features, dtype=str), matrix


def read_node_features(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read per-gene features: (genes str [n], features float32 [n, F])."""
    genes, _, features = read_gene_feature_table(path)
    return genes, features


def read_splits_table(path: str | Path) -> pd.DataFrame:
    """Read a split assignment: columns pert_type, pert_gene, split (all str).

    The index holds each row's line number in the file, for later error messages.
    """
    table = read_table(path)
    require_columns(table, SPLIT_COLUMNS, path)
    splits = pd.DataFrame({c: column_as_str(table, c, path) for c in SPLIT_COLUMNS},
                          index=table.index)
    unknown = ~splits["split"].isin(SPLIT_NAMES).to_numpy()
    if unknown.any():
        row = int(np.argmax(unknown))
        raise DataError(f"{path}, line {splits.index[row]}, column 'split': unknown split "
                        f"'{splits['split'].iloc[row]}'; expected one of {list(SPLIT_NAMES)}")
    check_unique_keys(splits, ["pert_type", "pert_gene"], path, what="(pert_type, pert_gene)")
    return splits
