"""Hydra entry point for training: `python -m tfnet_jax.train` / `tfnet-train`.

One run = one Hydra run dir holding `.hydra/`, `run_info.json`, `splits.csv`,
`metrics.jsonl` (per step), `checkpoints/`, `metrics.json` (final, test split) and
`predictions_test.parquet`. Re-running the same command resumes from the checkpoints.
While a run writes its dir it holds `RUN/.lock` (tfnet_jax.train.run_lock): a second run into the
same dir stops at once with one line naming the first.
"""
from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from tfnet_jax.cli import Command, hydra_command
from tfnet_jax.config import validate

log = logging.getLogger(__name__)


def run_name(overrides: str) -> str:
    """A directory-safe name for a set of command-line overrides ('default' for none)."""
    if not overrides:
        return "default"
    safe = re.sub(r"(?:[^A-Za-z0-9_.,=+-]|\.{2,})+", "_", overrides).strip("._") or "run"
    if len(safe) > 80:
        safe = safe[:60] + "-" + hashlib.sha1(overrides.encode()).hexdigest()[:10]
    return safe


if not OmegaConf.has_resolver("run_name"):
    OmegaConf.register_new_resolver("run_name", run_name)


def train_and_evaluate(cfg: DictConfig, run_dir: str | Path, data=None,
                       overrides: list[str] | None = None, on_eval=None) -> dict:
    """Train (or resume) one run and score it: the one orchestration, `tasks.base.run`.
    `on_eval(step, validation metrics)` sees every evaluation (tfnet-sweep prunes with it)."""
    from tfnet_jax.tasks.base import run
    return run(cfg, Path(run_dir), data, overrides=overrides, on_eval=on_eval)


TRAIN = Command(
    name="tfnet-train",
    usage="[KEY=VALUE ...] [-m]",
    summary=("Train one model family (model=transcriptionnet | tfnet | genonet) on the configured data, "
             "score it beside its baselines on the held-out split and write the run dir "
             "(metrics.json, checkpoints, predictions). Re-running the same command resumes it; "
             "-m runs a multirun (sweep) over comma-separated values."),
    example="tfnet-train model=tfnet train.max_steps=200 hydra.run.dir=outputs/tfnet_demo",
)


@hydra_command(TRAIN, config_name="config")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    hydra_cfg = HydraConfig.get()
    validate(cfg)  # types and ranges fail here, naming the field, before anything is built
    from tfnet_jax.train import distributed
    distributed.initialize(cfg.get("distributed"))  # before any JAX computation fixes the devices
    metrics = train_and_evaluate(cfg, Path(hydra_cfg.runtime.output_dir),
                                 overrides=list(hydra_cfg.overrides.task))
    # Sweepers (Optuna) optimise this: the best validation score, never a test score.
    return metrics["train"]["best_score"]


if __name__ == "__main__":
    main()
