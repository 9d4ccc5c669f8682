"""Orbax checkpoints: the latest N for resuming and the single best by validation metric.

A checkpoint holds `state` (a pure dict of arrays: parameters and optimiser state) and
`meta` (JSON: step, early-stopping bookkeeping). Restores go against an abstract target
built from the freshly initialised state, so shapes and dtypes are checked; its shardings
are the current mesh's, so a checkpoint restores onto any number of devices or processes.
All processes of a multi-process run call every method together (Orbax coordinates them).
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import jax
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)
# Orbax (0.12) writes a step to `<step>.orbax-checkpoint-tmp` and renames it when complete.
PARTIAL_SAVE = "*.orbax-checkpoint-tmp*"


def _abstract(tree):
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def _barriers(prefix: str):
    return ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=prefix)


class Checkpoints:
    def __init__(self, directory: str | Path, keep_latest: int = 2, best_mode: str = "max"):
        directory = Path(directory).absolute()
        # Across processes every save ends in a named barrier per step: the two managers save
        # the same steps, so each needs its own barrier names.
        self.latest = ocp.CheckpointManager(
            directory / "latest", options=ocp.CheckpointManagerOptions(
                max_to_keep=keep_latest, multiprocessing_options=_barriers("latest")))
        self.best = ocp.CheckpointManager(
            directory / "best", options=ocp.CheckpointManagerOptions(
                max_to_keep=1, best_fn=lambda metrics: metrics["score"], best_mode=best_mode,
                multiprocessing_options=_barriers("best")))

    @staticmethod
    def _args(state, meta):
        return ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))

    def save(self, step: int, state, meta: dict, score: float | None, is_best: bool):
        self.latest.save(step, args=self._args(state, meta), force=True)
        if is_best:
            self.best.save(step, args=self._args(state, meta), metrics={"score": float(score)},
                           force=True)

    def latest_step(self, which: str = "latest") -> int | None:
        return getattr(self, which).latest_step()

    def restore(self, template_state, which: str = "latest", step: int | None = None):
        """Returns (state, meta) of `step` (default: newest) from `which` ('latest' or 'best')."""
        manager = getattr(self, which)
        if step is None:
            step = manager.best_step() if which == "best" else manager.latest_step()
        if step is None:
            raise FileNotFoundError(f"no {which} checkpoint under {manager.directory}")
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(_abstract(template_state)), meta=ocp.args.JsonRestore()))
        return restored["state"], restored["meta"]

    def wait(self):
        self.latest.wait_until_finished()
        self.best.wait_until_finished()

    def close(self):
        self.latest.close()
        self.best.close()


def remove_partial_saves(directory: str | Path) -> list[Path]:
    """Delete the temporary dirs of saves a kill cut short (under latest/ and best/); they are
    never resumed from and would otherwise pile up. Returns what it removed."""
    removed = sorted(Path(directory).glob(f"*/{PARTIAL_SAVE}"))
    for path in removed:
        log.warning("removing %s: a checkpoint save that never finished", path)
        shutil.rmtree(path, ignore_errors=True)
    return removed
