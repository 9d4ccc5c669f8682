"""Disease fold-changes through a trained TFNet run: `python -m tfnet_jax.disease run_dir=RUN`.

See tfnet_jax.analysis.disease for how a fold-change enters the model. Writes
`RUN/disease.json` (Spearman rho of predicted vs observed target fold-changes) and
`RUN/disease_tf_ranking.csv` (TFs by how much dropping each one lowers rho).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

from omegaconf import DictConfig

from tfnet_jax.analysis.disease import disease_analysis, read_fold_changes
from tfnet_jax.atomic import atomic_write_json, atomic_write_with
from tfnet_jax.cli import Command, hydra_command
from tfnet_jax.config_checks import check_command
from tfnet_jax.data.dataset import DataError
from tfnet_jax.api import load_run

log = logging.getLogger(__name__)


def run_disease(cfg: DictConfig) -> dict:
    check_command("disease", cfg)  # values and files, before the run is loaded
    run_dir = Path(cfg.run_dir)
    run = load_run(run_dir, family="tfnet")
    prepared, trainer = run.prepared, run.trainer
    planted = prepared.data.extras.get("disease")
    if cfg.tf_fold_changes and cfg.observed:
        tf_lfc, observed = read_fold_changes(cfg.tf_fold_changes), read_fold_changes(cfg.observed)
        log_base = cfg.log_base
    elif planted is not None and not (cfg.tf_fold_changes or cfg.observed):
        tf_lfc, observed, log_base = planted["tf_lfc"], planted["target_lfc"], math.e
    else:
        raise DataError("tf_fold_changes and observed: give both tables (columns gene, log_fc)")
    summary, ranking = disease_analysis(trainer.model, prepared, tf_lfc, observed, log_base)
    if planted is not None and not cfg.tf_fold_changes:
        top = ranking["tf"].head(len(planted["shifted_masters"])).tolist()
        summary["shifted_masters"] = planted["shifted_masters"]
        summary["shifted_masters_in_top"] = len(set(top) & set(planted["shifted_masters"]))
    atomic_write_json(run_dir / "disease.json", summary)
    atomic_write_with(run_dir / "disease_tf_ranking.csv", lambda tmp: ranking.to_csv(tmp, index=False))
    log.info(f"predicted vs observed target fold-changes: Spearman rho {summary['spearman_rho']:.3f} "
             f"over {summary['n_targets']} targets; top TFs by rho drop: "
             f"{', '.join(ranking['tf'].head(5))}")
    return summary


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
    run_disease(cfg)


if __name__ == "__main__":
    main()
