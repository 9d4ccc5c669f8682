"""Reading undirected, weighted gene-gene edge lists into network layers.

Edge-list policy (the one place it is defined):
- The file needs a header with columns `gene_a` and `gene_b`; a `weight` column is
  optional (without it every edge weighs 1.0). Other columns are ignored.
- Gene IDs are kept as strings, exactly as written (stripped).
- Weights must be finite and > 0 (after conversion to float32); anything else is a
  `DataError` naming the file, the line and the column.
- Self-loops (gene_a == gene_b) are dropped.
- Edges are undirected: repeated edges and reversed repeats, (a, b) and (b, a), are
  merged into one edge that keeps the MAXIMUM weight.
- An edge list with no edge left after that is a `DataError`.
- Output is canonical: one row per pair with gene_a < gene_b (string order), sorted by
  (gene_a, gene_b).
The numbers of dropped self-loops and merged duplicates are logged and, on request,
written to a `report` dict.

A well-formed file is read by a fast path (`tables.read_table_fast`, edges merged on
integer gene codes); any file it cannot vouch for goes through the checked path, which
gives the same result on good files and names the file, line and column on bad ones.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tfnet_jax.data.io.tables import (
    column_as_float,
    column_as_str,
    preview,
    read_table,
    read_table_fast,
    require_columns,
)
from tfnet_jax.errors import DataError

log = logging.getLogger(__name__)

EDGE_COLUMNS = ("gene_a", "gene_b", "weight")


@dataclass(frozen=True)
class NetworkLayer:
    """One undirected network layer over the shared gene index.

    Each edge appears once with `senders < receivers`; no self-loops; weights > 0.
    """

    name: str
    senders: np.ndarray  # int32 [E]
    receivers: np.ndarray  # int32 [E]
    weights: np.ndarray  # float32 [E]

    @property
    def num_edges(self) -> int:
        return int(self.senders.shape[0])


def _check_weights_positive(weights: np.ndarray, table: pd.DataFrame, path: str | Path) -> None:
    not_positive = np.flatnonzero(weights <= 0)
    if len(not_positive):
        row = not_positive[0]
        raise DataError(f"{path}, line {table.index[row]}, column 'weight': "
                        f"weight '{table['weight'].iloc[row]}' is not > 0 (as float32)")


def read_edge_list(path: str | Path, report: dict | None = None) -> pd.DataFrame:
    """Read an edge list into canonical form: columns gene_a < gene_b (str), weight (float32).

    `report`, when given, receives counts `self_loops` and `duplicates` (rows merged away).
    """
    edges = _read_edge_list_fast(path, report)
    return _read_edge_list_checked(path, report) if edges is None else edges


def _read_edge_list_checked(path: str | Path, report: dict | None = None) -> pd.DataFrame:
    """The checked path: every cell as text, every fault a DataError naming its line."""
    table = read_table(path)
    require_columns(table, ("gene_a", "gene_b"), path)
    gene_a = column_as_str(table, "gene_a", path)
    gene_b = column_as_str(table, "gene_b", path)
    if "weight" in table.columns:
        weights = column_as_float(table, "weight", path, dtype=np.float32)
        _check_weights_positive(weights, table, path)
    else:
        weights = np.ones(len(table), dtype=np.float32)

    not_loop = gene_a != gene_b
    num_self_loops = int((~not_loop).sum())
    gene_a, gene_b, weights = gene_a[not_loop], gene_b[not_loop], weights[not_loop]
    low = np.where(gene_a < gene_b, gene_a, gene_b)
    high = np.where(gene_a < gene_b, gene_b, gene_a)
    edges = (pd.DataFrame({"gene_a": low, "gene_b": high, "weight": weights})
             .groupby(["gene_a", "gene_b"], sort=True, as_index=False)["weight"].max())
    num_duplicates = len(low) - len(edges)
    if edges.empty:
        raise DataError(f"{path}: no edges left after dropping {num_self_loops} self-loop(s)")
    return _finish_edges(path, edges, num_self_loops, num_duplicates, report)


def _read_edge_list_fast(path: str | Path, report: dict | None = None) -> pd.DataFrame | None:
    """The fast path: the same edges as `_read_edge_list_checked`, or None if in any doubt."""
    table = read_table_fast(path, ("gene_a", "gene_b"), ("weight",), dtype=np.float32)
    if table is None:
        return None
    if "weight" in table.columns:
        weights = table["weight"].to_numpy(dtype=np.float64).astype(np.float32)
        if not (weights > 0).all():
            return None  # the checked path names the line
    else:
        weights = np.ones(len(table), dtype=np.float32)

    # Integer codes in string order (sort=True): code order is gene_a < gene_b order.
    codes, genes = pd.factorize(
        np.concatenate([table["gene_a"].to_numpy(dtype=object), table["gene_b"].to_numpy(dtype=object)]),
        sort=True)
    code_a, code_b = codes[:len(table)], codes[len(table):]
    not_loop = code_a != code_b
    num_self_loops = int(len(table) - not_loop.sum())
    code_a, code_b, weights = code_a[not_loop], code_b[not_loop], weights[not_loop]
    if not len(weights):
        return None
    pair = np.minimum(code_a, code_b).astype(np.int64) * len(genes) + np.maximum(code_a, code_b)
    # Sorted by pair, then weight: the last row of each pair holds its maximum weight.
    order = np.lexsort((weights, pair))
    pair, weights = pair[order], weights[order]
    last = np.append(pair[1:] != pair[:-1], True)
    pair, weights = pair[last], weights[last]
    edges = pd.DataFrame({"gene_a": genes[pair // len(genes)], "gene_b": genes[pair % len(genes)],
                          "weight": weights})
    return _finish_edges(path, edges, num_self_loops, len(order) - len(pair), report)


def _finish_edges(path: str | Path, edges: pd.DataFrame, num_self_loops: int, num_duplicates: int,
                  report: dict | None) -> pd.DataFrame:
    edges["gene_a"] = edges["gene_a"].astype(str)
    edges["gene_b"] = edges["gene_b"].astype(str)
    edges["weight"] = edges["weight"].astype(np.float32)
    if num_self_loops or num_duplicates:
        log.info("%s: dropped %d self-loop(s), merged %d duplicate edge(s); %d edges left",
                 path, num_self_loops, num_duplicates, len(edges))
    if report is not None:
        report["self_loops"] = num_self_loops
        report["duplicates"] = num_duplicates
    return edges.reset_index(drop=True)


def layer_from_edges(name: str, edges: pd.DataFrame, gene_position: dict[str, int]) -> NetworkLayer:
    """Index a canonical edge list (see `read_edge_list`) into a layer over `gene_position`.

    Edges come out with senders < receivers in index order, sorted by (sender, receiver).
    """
    missing_columns = [c for c in EDGE_COLUMNS if c not in edges.columns]
    if missing_columns:
        raise DataError(f"network layer '{name}': edge table lacks column(s) {missing_columns}")
    # Each distinct gene is looked up once; edges carry integer codes from here on.
    codes, genes = pd.factorize(np.concatenate([edges["gene_a"].astype(str).to_numpy(dtype=object),
                                                edges["gene_b"].astype(str).to_numpy(dtype=object)]))
    known = pd.Index(list(gene_position), dtype=object)
    where = known.get_indexer(genes)
    if (where < 0).any():
        unknown = sorted(genes[where < 0].tolist())
        raise DataError(f"network layer '{name}': gene(s) not in the gene index: {preview(unknown)}")
    positions = np.fromiter(gene_position.values(), dtype=np.int64, count=len(gene_position))[where]
    index_a, index_b = positions[codes[:len(edges)]], positions[codes[len(edges):]]
    weights = edges["weight"].to_numpy(dtype=np.float32)
    if (index_a == index_b).any():
        raise DataError(f"network layer '{name}': self-loops are not allowed")
    if not (np.isfinite(weights) & (weights > 0)).all():
        raise DataError(f"network layer '{name}': weights must be finite and > 0")
    senders = np.minimum(index_a, index_b)
    receivers = np.maximum(index_a, index_b)
    order = np.lexsort((receivers, senders))
    senders, receivers, weights = senders[order], receivers[order], weights[order]
    if len(senders) > 1 and ((np.diff(senders) == 0) & (np.diff(receivers) == 0)).any():
        raise DataError(f"network layer '{name}': an edge is listed twice")
    return NetworkLayer(name=name, senders=senders.astype(np.int32),
                        receivers=receivers.astype(np.int32), weights=weights)
