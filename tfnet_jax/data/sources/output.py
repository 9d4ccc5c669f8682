"""Writing the builder's outputs, each atomically: layer edge lists `OUT/networks/NAME.tsv.gz`
in the asked namespace, and GO node features `OUT/node_features_go.csv.gz`.

Both are formatted in bulk (pyarrow's CSV writer; the features as a long `gene,feature` table
of their nonzero cells) and gzip-compressed at a low level.
"""
from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from tfnet_jax.atomic import atomic_write_with
from tfnet_jax.data.genes import GeneTable
from tfnet_jax.data.io.tables import preview
from tfnet_jax.data.sources.edges import Edges

LAYER_LEVEL = 3  # gzip level: layers are read far more often than written, but 6+ is slow
FEATURE_LEVEL = 1
BATCH_ROWS = 1 << 20

log = logging.getLogger(__name__)


def in_namespace(edges: Edges, namespace: str, table: GeneTable | None) -> tuple[pd.DataFrame, int]:
    """(gene_a, gene_b, weight in `namespace`, each pair once; edges lost because a gene has no
    ID there). Two Entrez IDs with one symbol or Ensembl ID merge: the pair keeps its maximum."""
    if namespace == "entrez":
        return pd.DataFrame({"gene_a": edges.gene_a, "gene_b": edges.gene_b,
                             "weight": edges.weight}), 0
    genes = np.union1d(edges.gene_a, edges.gene_b)
    names, _ = table.convert([str(g) for g in genes.tolist()], namespace)
    name_of = np.array(names, dtype=object)
    a = name_of[np.searchsorted(genes, edges.gene_a)]
    b = name_of[np.searchsorted(genes, edges.gene_b)]
    known = pd.notna(a) & pd.notna(b)
    codes, uniques = pd.factorize(np.concatenate([a[known], b[known]]), sort=True)
    code_a, code_b = codes[:known.sum()], codes[known.sum():]
    low, high = np.minimum(code_a, code_b), np.maximum(code_a, code_b)
    frame = (pd.DataFrame({"low": low, "high": high, "weight": edges.weight[known]})
             .query("low != high").groupby(["low", "high"], sort=True, as_index=False)["weight"].max())
    uniques = np.asarray(uniques, dtype=object)
    return pd.DataFrame({"gene_a": uniques[frame["low"].to_numpy()],
                         "gene_b": uniques[frame["high"].to_numpy()],
                         "weight": frame["weight"].to_numpy()}), int((~known).sum())


def write_layer(path: Path, frame: pd.DataFrame) -> None:
    """gene_a<TAB>gene_b<TAB>weight, gzip-compressed, atomically."""
    table = pa.Table.from_pandas(frame[["gene_a", "gene_b", "weight"]], preserve_index=False)
    options = pacsv.WriteOptions(delimiter="\t", quoting_style="none", include_header=False)

    def write(tmp):
        with gzip.open(tmp, "wb", compresslevel=LAYER_LEVEL) as handle:
            handle.write(b"gene_a\tgene_b\tweight\n")
            for start in range(0, table.num_rows, BATCH_ROWS):
                sink = pa.BufferOutputStream()
                pacsv.write_csv(table.slice(start, BATCH_ROWS), sink, options)
                handle.write(sink.getvalue().to_pybytes())
    atomic_write_with(path, write)


def features_in_namespace(features: pd.DataFrame, namespace: str,
                          table: GeneTable | None) -> pd.DataFrame:
    """Rows renamed from Entrez IDs to `namespace`; rows without an ID there dropped, and so are
    rows of genes sharing one ID there (which gene's terms it means would be a guess)."""
    if namespace == "entrez":
        return features
    names, _ = table.convert([str(g) for g in features.index], namespace)
    names = pd.Series(names, dtype=object)
    shared = names.notna() & names.duplicated(keep=False)
    if shared.any():
        log.warning("GO features: %d genes share a %s ID with another gene and are left out, e.g. %s",
                    int(shared.sum()), namespace, preview(names[shared].unique().tolist(), 3))
    keep = (names.notna() & ~shared).to_numpy()
    out = features[keep].copy()
    out.index = names[keep].to_numpy()
    return out


def write_features(path: Path, features: pd.DataFrame) -> None:
    """The nonzero cells as a long table `gene,feature` (+ `value` unless every one is 1),
    atomically: GO membership is ~1% dense, so this is ~100x smaller and faster to read than
    the wide table (the node-feature reader takes both)."""
    values = features.to_numpy()
    rows, columns = np.nonzero(values)
    long = {"gene": np.asarray(features.index.astype(str))[rows],
            "feature": np.asarray(features.columns.astype(str))[columns]}
    if not (values[rows, columns] == 1).all():
        long["value"] = values[rows, columns]
    table = pa.table(long)

    def write(tmp):
        with gzip.open(tmp, "wb", compresslevel=FEATURE_LEVEL) as handle:
            sink = pa.BufferOutputStream()
            pacsv.write_csv(table, sink, pacsv.WriteOptions(quoting_style="none"))
            handle.write(sink.getvalue().to_pybytes())
    atomic_write_with(path, write)