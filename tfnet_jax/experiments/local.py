"""A small in-process sweep (arms x seeds) laid out like a Hydra multirun, for notebooks.

`collect` reads the result like any multirun dir: each run gets `.hydra/config.yaml` and
`.hydra/overrides.yaml` (the arm's overrides plus the seed; `base` overrides are constant
across runs and so only in config.yaml). Finished runs are skipped, as in a multirun.
"""
from __future__ import annotations

from pathlib import Path

from tfnet_jax.config import compose
from tfnet_jax.run import run_name, train_and_evaluate


def run_grid(sweep_dir: str | Path, arms: list[list[str]], seeds=(0,), base=()) -> list[Path]:
    """Train every arm (a list of overrides) for every seed into `sweep_dir/<num>_<overrides>`."""
    sweep_dir = Path(sweep_dir)
    run_dirs = []
    for arm in arms:
        for seed in seeds:
            overrides = [*arm, f"seed={seed}"]
            cfg = compose([*base, *overrides])  # validated, like a command-line run
            run_dir = sweep_dir / f"{len(run_dirs)}_{run_name(','.join(sorted(overrides)))}"
            train_and_evaluate(cfg, run_dir, overrides=overrides)  # writes .hydra/ after the identity check
            run_dirs.append(run_dir)
    return run_dirs
