"""Prediction files: chunks of predictions (`tasks.base.PredictionChunk`) streamed into Parquet,
CSV, GCTX (CMap layout) and h5ad files at once, so memory stays bounded; every file appears
atomically, and a failed write leaves no partial or temporary file."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tfnet_jax.atomic import output_error, publish
from tfnet_jax.data.io.gctx_write import GCTXWriter
from tfnet_jax.data.io.h5ad_write import H5adWriter
from tfnet_jax.data.splits import PREDICTION_SPLITS


class TableSink:
    """Parquet or CSV: one row per prediction, identifying columns then one per output."""

    def __init__(self, path: Path, fmt: str):
        self.path, self.fmt = path, fmt
        self.tmp = path.with_name(f".{path.name}.tmp")
        self.writer, self.rows = None, 0

    def write(self, chunk):
        frame = chunk.frame()
        for column in chunk.meta.columns:  # typed strings: an all-missing first chunk fixes no null type
            frame[column] = frame[column].astype("string")
        if self.fmt == "csv":
            frame.to_csv(self.tmp, mode="w" if self.rows == 0 else "a", header=self.rows == 0,
                         index=False)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq
            table = pa.Table.from_pandas(frame, preserve_index=False)
            self.writer = self.writer or pq.ParquetWriter(self.tmp, table.schema)
            self.writer.write_table(table)
        self.rows += len(frame)

    def close(self):
        if self.writer is not None:
            self.writer, writer = None, self.writer
            writer.close()
        publish(self.tmp, self.path)

    def abort(self):
        if self.writer is not None:
            self.writer, writer = None, self.writer
            try:
                writer.close()
            except OSError:
                pass  # a full disk: the file is dropped anyway
        self.tmp.unlink(missing_ok=True)


def _text_meta(meta: pd.DataFrame) -> pd.DataFrame:
    """Every field as text, None where missing (so a field keeps one kind across chunks)."""
    return meta.astype(str).astype(object).where(meta.notna(), None)


class _MatrixSink:
    """A file whose writer is created from the first chunk (it needs the output columns)."""

    def __init__(self, path: Path):
        self.path, self.writer = path, None

    def close(self):
        if self.writer is not None:
            self.writer.close()

    def abort(self):
        if self.writer is not None:
            self.writer.abort()


class GctxSink(_MatrixSink):
    """GCTX in the CMap layout: outputs x predictions; column id = the identifying values
    joined by ':' (TranscriptionNet: TYPE:GENE); column metadata in CMap's vocabulary where
    the family gives it (`PredictionChunk.gctx_meta`)."""

    def write(self, chunk):
        if self.writer is None:
            symbols = chunk.column_symbols
            row_meta = None if symbols is None else pd.DataFrame(
                {"pr_gene_symbol": symbols}, index=chunk.columns)
            self.writer = GCTXWriter(self.path, chunk.columns, row_meta=row_meta)
        ids = chunk.ids()
        meta = chunk.meta if chunk.gctx_meta is None else chunk.gctx_meta
        self.writer.append(chunk.values.T, ids, col_meta=_text_meta(meta).set_axis(ids))


class H5adSink(_MatrixSink):
    """AnnData: obs = the identifying columns (index: the ids, as in GCTX), var = the outputs
    (index: their ids, `symbol` where known), X = predictions x outputs."""

    def write(self, chunk):
        if self.writer is None:
            var = pd.DataFrame(index=pd.Index(chunk.columns, dtype=object))
            if chunk.column_symbols is not None:
                var["symbol"] = chunk.column_symbols
            self.writer = H5adWriter(self.path, var)
        obs = _text_meta(chunk.meta)
        obs["split"] = pd.Categorical(obs["split"], categories=PREDICTION_SPLITS)
        self.writer.append(chunk.values, chunk.ids(), obs)


def write_predictions(sinks: list, chunks) -> int:
    """Streams every chunk into every sink; on any error no partial or temporary file is
    left, and a failed write (a full disk) is one line naming the file."""
    rows, writing = 0, None
    try:
        for chunk in chunks:
            for sink in sinks:
                writing = sink
                sink.write(chunk)
            writing = None  # an OSError from the chunks themselves is an input's, not ours
            rows += len(chunk.meta)
        for sink in sinks:
            writing = sink
            sink.close()
    except BaseException as err:
        for sink in sinks:
            sink.abort()
        if writing is not None and isinstance(err, OSError):
            raise output_error(writing.path, err) from None
        raise
    return rows


def sinks_for(stem: Path, formats: list[str]) -> list:
    """One sink per format, writing `stem` + `.<format>`."""
    matrix_sinks = {"gctx": GctxSink, "h5ad": H5adSink}
    return [matrix_sinks[fmt](stem.with_suffix(f".{fmt}")) if fmt in matrix_sinks
            else TableSink(stem.with_suffix(f".{fmt}"), fmt) for fmt in formats]
