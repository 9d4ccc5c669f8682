"""Predict signatures with a trained run: `python -m tfnet_jax.predict run_dir=RUN_DIR`.

Loads the run's own config and its best checkpoint, then writes the predicted signature
of every requested perturbation type for every gene of the graph (or the genes listed
one per line in `genes=FILE`) to `RUN_DIR/predictions.{parquet,csv}` (or `output=PATH`).
Rows are written in chunks, so memory stays bounded for genome-wide gene lists.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from tfnet_jax.atomic import atomic_write_with
from tfnet_jax.data.dataset import DataError
from tfnet_jax.run import CONFIG_DIR, build_trainer, load_prepared

log = logging.getLogger(__name__)
FORMATS = ("parquet", "csv")


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


def _chunk_frames(trainer, prepared, gene_index, pert_types, chunk_size):
    readouts = prepared.data.readout_genes.tolist()
    for t in pert_types:
        for start in range(0, len(gene_index), chunk_size):
            chunk = gene_index[start:start + chunk_size]
            pred = prepared.unscale(trainer.predict(prepared.query(chunk, t)), t)
            frame = pd.DataFrame(pred.astype(np.float32), columns=readouts)
            frame.insert(0, "pert_gene", prepared.data.genes[chunk])
            frame.insert(0, "pert_type", t)
            yield frame


def write_predictions(path: Path, frames, fmt: str) -> int:
    """Stream frames into one file, atomically; returns the number of rows."""
    rows = 0

    def writer(tmp):
        nonlocal rows
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq
            sink = None
            for frame in frames:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                sink = sink or pq.ParquetWriter(tmp, table.schema)
                sink.write_table(table)
                rows += len(frame)
            if sink is not None:
                sink.close()
        else:
            for i, frame in enumerate(frames):
                frame.to_csv(tmp, mode="w" if i == 0 else "a", header=i == 0, index=False)
                rows += len(frame)

    atomic_write_with(path, writer)
    return rows


def predict_run(cfg: DictConfig) -> Path:
    run_dir = Path(cfg.run_dir)
    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.exists():
        raise DataError(f"run_dir={run_dir}: no training config at {config_file}")
    if cfg.format not in FORMATS:
        raise DataError(f"format={cfg.format!r}: choose one of {FORMATS}")
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
    output = Path(cfg.output) if cfg.output else run_dir / f"predictions.{cfg.format}"
    rows = write_predictions(output, _chunk_frames(trainer, prepared, gene_index, types, cfg.chunk_size),
                             cfg.format)
    print(f"wrote {rows} predicted signatures ({len(gene_index)} genes x {len(types)} types, "
          f"{len(prepared.data.readout_genes)} readouts) to {output}")
    return output


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict")
def main(cfg: DictConfig) -> None:
    logging.getLogger("absl").setLevel(logging.WARNING)
    try:
        predict_run(cfg)
    except DataError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
