"""Core TFs of a trained TFNet run: `python -m tfnet_jax.core_tfs run_dir=RUN`.

Nested elimination (tfnet_jax.analysis.tf_selection: TFs ranked once, nested candidate
sets fine-tuned together in one warm-started run, all scored in one compiled pass) writes
`RUN/core_tfs.csv` (one row per set: number of TFs, valid/test variance explained, the TFs kept),
`RUN/core_tfs.json` (the smallest sets keeping 80% / 95% of the full model's fit; on
synthetic data, how many planted master TFs each contains) and `RUN/figures/core_tfs.png`.
"""
from __future__ import annotations

from omegaconf import DictConfig

from tfnet_jax.cli import Command, hydra_command, on_loaded_run
from tfnet_jax.schemas.commands import CoreTFsCommand


def core_tfs_command(cfg: DictConfig) -> dict:
    """The command on a composed `configs/core_tfs.yaml` (`tfnet_jax.analysis.tf_selection:run_core_tfs`)."""
    return on_loaded_run(cfg, CoreTFsCommand, "tfnet_jax.analysis.tf_selection:run_core_tfs", family="tfnet")


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
    core_tfs_command(cfg)


if __name__ == "__main__":
    main()
