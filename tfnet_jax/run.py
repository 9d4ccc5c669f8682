"""Hydra entry point for training: `python -m tfnet_jax.train` / `tfnet-train`.

One run = one Hydra run dir holding `.hydra/`, `run_info.json`, `splits.csv`,
`metrics.jsonl` (per step), `checkpoints/`, `metrics.json` (final, test split) and
`predictions_test.parquet`. Re-running the same command resumes from the checkpoints.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import logging
import re
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from tfnet_jax.atomic import atomic_write_json, atomic_write_text
from tfnet_jax.data.dataset import DataError
from tfnet_jax.run_info import run_info

log = logging.getLogger(__name__)
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "configs")
# model.name -> the module whose `run(cfg, run_dir)` trains and evaluates that family.
FAMILIES = {"transcriptionnet": "tfnet_jax.tasks.perturbation_run",
            "tfnet": "tfnet_jax.tasks.expression_run",
            "genonet": "tfnet_jax.tasks.genotype_run"}


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


def finished_before(run_dir: Path) -> bool:
    """True when the run wrote metrics.json and its newest checkpoint says training finished."""
    if not (run_dir / "metrics.json").exists():
        return False
    # The meta is Orbax's JsonSave item; reading the file avoids building the model to restore it.
    steps = [int(p.name) for p in (run_dir / "checkpoints" / "latest").glob("[0-9]*")
             if p.name.isdigit()]
    if not steps:
        return False
    meta_file = run_dir / "checkpoints" / "latest" / str(max(steps)) / "meta" / "metadata"
    try:
        return bool(json.loads(meta_file.read_text()).get("finished"))
    except (OSError, ValueError):
        return False


def family_module(name: str):
    if name not in FAMILIES:
        raise DataError(f"model.name={name!r}: unknown model family; known: {sorted(FAMILIES)}")
    return importlib.import_module(FAMILIES[name])


def train_and_evaluate(cfg: DictConfig, run_dir: Path) -> dict:
    """Train (or resume) the family named by `model.name`, then score it and its baselines."""
    if finished_before(run_dir):  # lets a re-run sweep finish only its missing arms
        print(f"Skipped {run_dir}: already finished (metrics.json present)", flush=True)
        return json.loads((run_dir / "metrics.json").read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.exists():  # Hydra writes it for CLI runs; library callers get it here
        atomic_write_text(config_file, OmegaConf.to_yaml(cfg, resolve=True))
    atomic_write_json(run_dir / "run_info.json", {"seed": cfg.seed, **run_info()})
    return family_module(cfg.model.name).run(cfg, run_dir)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every save at INFO
    try:
        metrics = train_and_evaluate(cfg, run_dir)
    except DataError as err:
        sys.exit(f"error: {err}")
    # Sweepers (Optuna) optimise this: the best validation score, never a test score.
    return metrics["train"]["best_score"]


if __name__ == "__main__":
    main()
