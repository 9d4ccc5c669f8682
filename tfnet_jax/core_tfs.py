"""Core TFs of a trained TFNet run: `python -m tfnet_jax.core_tfs run_dir=RUN`.

Nested elimination (tfnet_jax.analysis.tf_selection: TFs ranked once, nested candidate
sets fine-tuned together in one warm-started run, all scored in one compiled pass) writes
`RUN/core_tfs.csv` (one row per set: number of TFs, valid/test variance explained, the TFs kept),
`RUN/core_tfs.json` (the smallest sets keeping 80% / 95% of the full model's fit; on
synthetic data, how many planted master TFs each contains) and `RUN/figures/core_tfs.png`.
"""
from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from tfnet_jax.analysis.tf_selection import select_core_tfs, smallest_sets
from tfnet_jax.atomic import atomic_write_json, atomic_write_with
from tfnet_jax.cli import Command, hydra_command
from tfnet_jax.config_checks import check_command
from tfnet_jax.eval.plots import core_tf_curve
from tfnet_jax.api import load_run

log = logging.getLogger(__name__)


def run_core_tfs(cfg: DictConfig) -> dict:
    check_command("core_tfs", cfg)  # values and files, before the run is loaded
    run_dir = Path(cfg.run_dir)
    run = load_run(run_dir, family="tfnet")
    prepared, trainer = run.prepared, run.trainer
    table = select_core_tfs(trainer, prepared, steps=cfg.retrain_steps, importance=cfg.importance,
                            drop_fraction=cfg.drop_fraction, min_tfs=cfg.min_tfs)
    sets = smallest_sets(table, tuple(cfg.keep))
    core = prepared.data.extras.get("core_tfs")
    if core is not None:  # synthetic: recall of the planted masters
        for chosen in sets.values():
            chosen["planted_core_recall"] = len(set(core) & set(chosen["tfs"])) / len(core)
    atomic_write_with(run_dir / "core_tfs.csv", lambda tmp: table.to_csv(tmp, index=False))
    atomic_write_json(run_dir / "core_tfs.json", {"importance": cfg.importance, "sets": sets})
    core_tf_curve(table, run_dir / "figures" / "core_tfs.png")
    for share, chosen in sets.items():
        recall = (f", planted core recall {chosen['planted_core_recall']:.2f}"
                  if "planted_core_recall" in chosen else "")
        log.info(f"smallest set keeping {share} of validation variance explained: {chosen['n_tfs']} TFs "
                 f"(test share {chosen['test_share_of_full']:.3f}{recall})")
    return sets


CORE_TFS = Command(
    name="tfnet-core-tfs",
    usage="run_dir=RUN [importance=lightup|gradient] [drop_fraction=0.2] [retrain_steps=600]",
    summary=("Core TFs of a trained TFNet run: rank the TFs once, fine-tune one model on nested "
             "sets of the top TFs (the rest switched off), score every set; writes "
             "RUN/core_tfs.csv, RUN/core_tfs.json (the smallest sets keeping 80% / 95% of the "
             "fit) and RUN/figures/core_tfs.png."),
    example="tfnet-core-tfs run_dir=outputs/runs/model=tfnet retrain_steps=200",
)


@hydra_command(CORE_TFS, config_name="core_tfs")
def main(cfg: DictConfig) -> None:
    run_core_tfs(cfg)


if __name__ == "__main__":
    main()
