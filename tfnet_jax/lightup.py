"""Light-up of a trained TFNet run: `python -m tfnet_jax.lightup run_dir=RUN`.

Writes `RUN/lightup.parquet` (decoupler's columns `source` (the TF), `target`, `weight` and,
with jacobian=true, `jacobian`) and, where known TF -> target pairs exist (`known=FILE` in
TRRUST format, or a synthetic run's planted edges), `RUN/lightup_validation.json` (one block
per scored column, the |Spearman| control inside the `weight` block) and
`RUN/lightup_validation_per_target.csv`. Known pairs in other gene IDs than the run's are
mapped through `gene_table=` (default: the run's `data.gene_table`).
"""
from __future__ import annotations

from omegaconf import DictConfig

from tfnet_jax.cli import Command, hydra_command, on_loaded_run
from tfnet_jax.schemas.commands import LightupCommand


def lightup_command(cfg: DictConfig) -> dict:
    """The command on a composed `configs/lightup.yaml` (`tfnet_jax.analysis.lightup:run_lightup`)."""
    return on_loaded_run(cfg, LightupCommand, "tfnet_jax.analysis.lightup:run_lightup", family="tfnet")


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
    lightup_command(cfg)


if __name__ == "__main__":
    main()
