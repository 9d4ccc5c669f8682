"""Light-up of a trained TFNet run: `python -m tfnet_jax.lightup run_dir=RUN`.

Writes `RUN/lightup.parquet` (decoupler's columns `source` (the TF), `target`, `weight` and,
with jacobian=true, `jacobian`) and, where known TF -> target pairs exist (`known=FILE` in
TRRUST format, or a synthetic run's planted edges), `RUN/lightup_validation.json` (one block
per scored column, the |Spearman| control inside the `weight` block) and
`RUN/lightup_validation_per_target.csv`. Known pairs in other gene IDs than the run's are
mapped through `gene_table=` (default: the run's `data.gene_table`).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from tfnet_jax.analysis import lightup as lu
from tfnet_jax.analysis.validation import read_known_pairs, validate_lightup
from tfnet_jax.atomic import atomic_write_json, atomic_write_with
from tfnet_jax.cli import Command, hydra_command
from tfnet_jax.config_checks import check_command
from tfnet_jax.data.gene_ids import GeneTable
from tfnet_jax.api import load_run

log = logging.getLogger(__name__)


def planted_pairs(extras: dict) -> pd.DataFrame | None:
    """A synthetic run's true TF -> target edges (source, target, mode)."""
    edges = extras.get("edges")
    if edges is None:
        return None
    edges = edges[edges["kind"] == "tf->target"]
    mode = np.where(edges["sign"] > 0, "Activation", "Repression")
    return pd.DataFrame({"source": edges["tf"].to_numpy(), "target": edges["target"].to_numpy(),
                         "mode": mode})


def _summary(result: dict) -> dict:
    """JSON-ready scalars of a validation result (per-target tables go to CSV)."""
    out = {k: v for k, v in result.items() if not isinstance(v, (pd.DataFrame, dict))}
    for key, part in result.items():
        if isinstance(part, dict):
            out[key] = _summary(part)
    return {k: (float(v) if isinstance(v, (np.floating, np.integer)) else v) for k, v in out.items()}


def run_lightup(cfg: DictConfig) -> dict:
    check_command("lightup", cfg)  # values and files, before the run is loaded
    run_dir = Path(cfg.run_dir)
    run = load_run(run_dir, family="tfnet", which=cfg.which)
    prepared, trainer = run.prepared, run.trainer
    data = prepared.data
    deltas = lu.perturbation_sizes(prepared.x_sd, cfg.mode, cfg.k, cfg.log_base)
    model = trainer.model
    started = time.perf_counter()
    scores = lu.lightup_matrix(model, deltas, prepared.y_sd, chunk=cfg.chunk)
    seconds = time.perf_counter() - started
    jacobian = lu.jacobian_matrix(model, deltas, prepared.y_sd) if cfg.jacobian else None
    table = lu.lightup_table(scores, data.tf_genes, data.target_genes, jacobian)
    atomic_write_with(run_dir / "lightup.parquet", lambda tmp: table.to_parquet(tmp, index=False))
    log.info(f"light-up of {len(data.tf_genes)} TFs x {len(data.target_genes)} targets in "
             f"{seconds:.2f} s -> {run_dir / 'lightup.parquet'}")

    known = read_known_pairs(cfg.known) if cfg.known else planted_pairs(data.extras)
    if known is None:
        return {"lightup_seconds": seconds}
    table_path = cfg.get("gene_table") or run.config.data.get("gene_table")
    genes = GeneTable.from_file(table_path) if table_path else None
    train = prepared.split == "train"
    expression = pd.DataFrame(data.values[train], columns=data.genes)
    summary = {"lightup_seconds": seconds, "known": str(cfg.known or "planted edges")}
    per_target = []
    for column in ["weight"] + (["jacobian"] if jacobian is not None else []):
        scored = pd.DataFrame({"source": table["source"], "target": table["target"],
                               "weight": table[column]})
        result = validate_lightup(scored, known, expression=expression if column == "weight" else None,
                                  genes=genes, label=summary["known"])
        summary[column] = _summary(result)
        per_target.append(result["per_target"].assign(method=column))
    atomic_write_json(run_dir / "lightup_validation.json", summary)
    frame = pd.concat(per_target, ignore_index=True)
    atomic_write_with(run_dir / "lightup_validation_per_target.csv",
                      lambda tmp: frame.to_csv(tmp, index=False))
    s = summary["weight"]
    log.info(f"vs {summary['known']} ({s['n_known_pairs_used']} known of {s['n_pairs']} scored pairs): "
             f"sign agreement {s['sign_agreement']:.3f} (n={s['sign_n']}, p={s['sign_p']:.2g}), "
             f"targets with p<0.05 {s['frac_targets_p05']:.3f}")
    for name, part in [("light-up", s), ("|Spearman| control", s["correlation"])] + (
            [("Jacobian", summary["jacobian"])] if "jacobian" in summary else []):
        log.info(f"  {name:<18} AUROC {part['auroc']:.3f}  AUPRC ratio {part['auprc_ratio']:.2f}  "
                 f"EPR {part['epr']:.2f}")
    return summary


LIGHTUP = Command(
    name="tfnet-lightup",
    usage=("run_dir=RUN [mode=double|sd] [k=1.0] [known=TRRUST.tsv.gz] [gene_table=GENES.csv] "
           "[jacobian=true]"),
    summary=("Light-up of a trained TFNet run: raise each TF from the training-mean background "
             "and record every target's response (RUN/lightup.parquet); with known TF -> target "
             "pairs (known=, or a synthetic run's planted edges) validate the scores against them "
             "(RUN/lightup_validation.json)."),
    example="tfnet-lightup run_dir=outputs/runs/model=tfnet known=trrust_human.tsv.gz",
)


@hydra_command(LIGHTUP, config_name="lightup")
def main(cfg: DictConfig) -> None:
    run_lightup(cfg)


if __name__ == "__main__":
    main()
