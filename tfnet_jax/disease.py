"""Disease fold-changes through a trained TFNet run: `python -m tfnet_jax.disease run_dir=RUN`.

See tfnet_jax.analysis.disease for how a fold-change enters the model. Writes
`RUN/disease.json` (Spearman rho of predicted vs observed target fold-changes) and
`RUN/disease_tf_ranking.csv` (TFs by how much dropping each one lowers rho).
"""
from __future__ import annotations

from omegaconf import DictConfig

from tfnet_jax.cli import Command, hydra_command, on_loaded_run
from tfnet_jax.schemas.commands import DiseaseCommand


def disease_command(cfg: DictConfig) -> dict:
    """The command on a composed `configs/disease.yaml` (`tfnet_jax.analysis.disease:run_disease`)."""
    return on_loaded_run(cfg, DiseaseCommand, "tfnet_jax.analysis.disease:run_disease", family="tfnet")


DISEASE = Command(
    name="tfnet-disease",
    usage="run_dir=RUN [tf_fold_changes=TF_FC.csv observed=TARGET_FC.csv] [log_base=2]",
    summary=("Disease fold-changes through a trained TFNet run: move each TF by its log "
             "fold-change from the training-mean background, compare the predicted target "
             "fold-changes with the observed ones (RUN/disease.json, Spearman rho) and rank TFs "
             "by how much dropping each lowers rho (RUN/disease_tf_ranking.csv). A synthetic run "
             "without tables uses its planted case-vs-control contrast."),
    example="tfnet-disease run_dir=outputs/runs/model=tfnet tf_fold_changes=tf_fc.csv observed=target_fc.csv",
)


@hydra_command(DISEASE, config_name="disease")
def main(cfg: DictConfig) -> None:
    disease_command(cfg)


if __name__ == "__main__":
    main()
