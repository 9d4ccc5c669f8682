"""Predict with a trained run of any family: `tfnet-predict run_dir=RUN [inputs=...]`.

Loads the run's own config and best checkpoint (`tfnet_jax.load_run`) and writes the family's
predictions for `inputs` to `RUN/predictions.{parquet,csv,gctx,h5ad}` (`format=` takes one
or several; `output=STEM` moves them), each prediction with its `split` (train / valid / test
/ unseen: its input's role in the run's split):
- TranscriptionNet: the signature of every requested perturbation type for every gene of the
  graph, or the genes listed one per line in `inputs=FILE` (alias `genes=FILE`);
- TFNet: every target of the samples in `inputs=MATRIX` (.h5ad/.csv/.parquet; default: the
  run's test samples);
- GenoNet: predicted expression of the individuals in `inputs=PLINK_PREFIX` or `inputs=FILE.vcf.gz`
  (bgzipped and indexed; PredictDB dosage text: the Python API, `Run.predict({"dosage": ..., ...})`).
Chunks are streamed to every file, so memory stays bounded; files appear atomically.
"""
from __future__ import annotations

from omegaconf import DictConfig

from tfnet_jax.cli import Command, hydra_command, on_loaded_run
from tfnet_jax.schemas.commands import PredictCommand


def predict_run(cfg: DictConfig) -> list:
    """The command on a composed `configs/predict.yaml` (`tfnet_jax.api:Run.write_predictions`)."""
    return on_loaded_run(cfg, PredictCommand, "tfnet_jax.api:Run.write_predictions")


PREDICT = Command(
    name="tfnet-predict",
    usage=("run_dir=RUN_DIR [inputs=FILE|PREFIX] [pert_types=[..]] [format=parquet|csv|gctx|h5ad] "
           "[output=STEM]"),
    summary=("Predict with a trained run of any family: load its config and best checkpoint and "
             "write predictions for inputs= (TranscriptionNet: genes, default every gene x type; "
             "TFNet: a matrix of new samples' TF levels; GenoNet: a PLINK prefix or an indexed "
             ".vcf.gz of new genotypes) to RUN_DIR/predictions.<format>."),
    example="tfnet-predict run_dir=outputs/runs/default format=[parquet,gctx]",
)


@hydra_command(PREDICT, config_name="predict")
def main(cfg: DictConfig) -> None:
    predict_run(cfg)


if __name__ == "__main__":
    main()
