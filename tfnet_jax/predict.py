"""Predict signatures with a trained run: `python -m tfnet_jax.predict run_dir=RUN_DIR`.

Loads the run's own config and its best checkpoint, then writes the predicted signature
of every requested perturbation type for every gene of the graph (or the genes listed
one per line in `genes=FILE`) to `RUN_DIR/predictions.{parquet,csv,gctx}` (`format=` takes
one or several, e.g. `format=[parquet,gctx]`; `output=STEM` moves them), with metadata
(pert_type, gene ID, symbol where a gene table knows it). Chunks are streamed to every
file, so memory stays bounded for genome-wide gene lists; files appear atomically.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from tfnet_jax.atomic import publish
from tfnet_jax.cli import Command, hydra_command
from tfnet_jax.data.dataset import DataError
from tfnet_jax.data.gctx import GCTXWriter
from tfnet_jax.data.gene_ids import GeneTable
from tfnet_jax.tasks.perturbation_run import build_trainer, load_prepared

log = logging.getLogger(__name__)
FORMATS = ("parquet", "csv", "gctx")


def read_gene_list(path: str | Path, known: dict[str, int]) -> np.ndarray:
    """Indices of the genes in `path` (one per line, '#' comments); unknown genes are an error."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"genes: file not found: {path}")
    names, unknown = [], []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        gene = line.split("#", 1)[0].strip()
        if not gene:
            continue
        (names if gene in known else unknown).append((line_no, gene))
    if unknown:
        shown = ", ".join(f"line {n}: {g!r}" for n, g in unknown[:8])
        raise DataError(f"{path}: {len(unknown)} gene(s) not in the run's gene index ({shown}"
                        f"{', ...' if len(unknown) > 8 else ''})")
    if not names:
        raise DataError(f"{path}: no genes listed")
    return np.array([known[g] for _, g in names], dtype=np.int32)


def _chunks(trainer, prepared, gene_index, pert_types, chunk_size):
    """Yields (pert_type, gene indices, predictions [k, R]) chunk by chunk."""
    for t in pert_types:
        for start in range(0, len(gene_index), chunk_size):
            chunk = gene_index[start:start + chunk_size]
            pred = prepared.unscale(trainer.predict(prepared.query(chunk, t)), t)
            yield t, chunk, pred.astype(np.float32)


class TableSink:
    """Parquet or CSV: one row per (pert_type, pert_gene), one column per readout."""

    def __init__(self, path: Path, fmt: str, readouts: list[str]):
        self.path, self.fmt, self.readouts = path, fmt, readouts
        self.tmp = path.with_name(f".{path.name}.tmp")
        self.writer, self.rows = None, 0

    def write(self, meta: pd.DataFrame, pred: np.ndarray):
        frame = pd.concat([meta.reset_index(drop=True),
                           pd.DataFrame(pred, columns=self.readouts)], axis=1)
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
            self.writer.close()
        publish(self.tmp, self.path)

    def abort(self):
        if self.writer is not None:
            self.writer.close()
        self.tmp.unlink(missing_ok=True)


class GctxSink:
    """GCTX in the CMap layout: readout genes x signatures, column id TYPE:GENE."""

    def __init__(self, path: Path, readouts: list[str], readout_symbols: list):
        self.path = path
        self.writer = GCTXWriter(path, readouts, row_meta=pd.DataFrame(
            {"pr_gene_symbol": readout_symbols}, index=readouts))

    def write(self, meta: pd.DataFrame, pred: np.ndarray):
        ids = (meta["pert_type"] + ":" + meta["pert_gene"]).tolist()
        self.writer.append(pred.T, ids, col_meta=meta.set_axis(ids))

    def close(self):
        self.writer.close()

    def abort(self):
        self.writer.abort()


def find_gene_table(train_cfg, explicit: str | None) -> GeneTable | None:
    """The gene table for symbols: `gene_table=PATH`, else ROOT/gene_meta*.csv[.gz] of data=dir."""
    if explicit:
        return GeneTable.from_file(explicit)
    root = train_cfg.data.get("root") if train_cfg.data.get("name") == "dir" else None
    found = sorted(Path(root).glob("gene_meta*.csv*")) if root else []
    return GeneTable.from_file(found[0]) if found else None


def write_predictions(sinks: list, chunks, symbol_of) -> int:
    """Streams every chunk into every sink; on any error no partial file is left."""
    rows = 0
    try:
        for pert_type, genes, pred in chunks:
            meta = pd.DataFrame({"pert_type": pert_type, "pert_gene": genes,
                                 "pert_symbol": [symbol_of(g) for g in genes]})
            for sink in sinks:
                sink.write(meta, pred)
            rows += len(genes)
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    for sink in sinks:
        sink.close()
    return rows


def predict_run(cfg: DictConfig) -> Path:
    run_dir = Path(cfg.run_dir)
    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.exists():
        raise DataError(f"run_dir={run_dir}: no training config at {config_file}")
    formats = [cfg.format] if isinstance(cfg.format, str) else list(cfg.format)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise DataError(f"format={formats}: choose from {FORMATS}")
    train_cfg = OmegaConf.load(config_file)
    prepared = load_prepared(train_cfg)
    types = list(cfg.pert_types) if cfg.pert_types is not None else prepared.types
    unknown = [t for t in types if t not in prepared.types]
    if unknown:
        raise DataError(f"pert_types: unknown type(s) {unknown}; the run has {prepared.types}")

    trainer = build_trainer(train_cfg, prepared, run_dir=None)
    meta = trainer.restore(run_dir / "checkpoints", which="best")
    log.info("loaded best checkpoint of %s (step %s)", run_dir, meta.get("step"))
    if cfg.genes:
        gene_index = read_gene_list(cfg.genes, prepared.data.gene_position())
    else:
        gene_index = np.arange(prepared.data.num_genes, dtype=np.int32)
    stem = Path(cfg.output) if cfg.output else run_dir / "predictions"
    genes = prepared.data.genes
    table = find_gene_table(train_cfg, cfg.gene_table)
    symbols = dict(zip(genes.tolist(), table.to_symbols(genes)[0])) if table else {}
    readouts = prepared.data.readout_genes.tolist()
    sinks = [GctxSink(stem.with_suffix(".gctx"), readouts, [symbols.get(g) for g in readouts])
             if fmt == "gctx" else TableSink(stem.with_suffix(f".{fmt}"), fmt, readouts)
             for fmt in formats]
    chunks = ((t, genes[index], pred)
              for t, index, pred in _chunks(trainer, prepared, gene_index, types, cfg.chunk_size))
    rows = write_predictions(sinks, chunks, lambda g: symbols.get(g))
    paths = [str(sink.path) for sink in sinks]
    print(f"wrote {rows} predicted signatures ({len(gene_index)} genes x {len(types)} types, "
          f"{len(readouts)} readouts) to {', '.join(paths)}")
    return [sink.path for sink in sinks]


PREDICT = Command(
    name="tfnet-predict",
    usage="run_dir=RUN_DIR [genes=FILE] [pert_types=[..]] [format=parquet|csv|gctx] [output=STEM]",
    summary=("Predict with a trained run: load its config and best checkpoint and write the "
             "predicted signature of every requested perturbation type for every gene (or the "
             "genes in genes=FILE) to RUN_DIR/predictions.<format>."),
    example="tfnet-predict run_dir=outputs/runs/default format=[parquet,gctx]",
)


@hydra_command(PREDICT, config_name="predict")
def main(cfg: DictConfig) -> None:
    predict_run(cfg)


if __name__ == "__main__":
    main()
