"""Orbax checkpoints: the latest N for resuming and the best by validation metric.

A checkpoint holds `state` (a pure dict of arrays: parameters and optimiser state) and
`meta` (JSON: step, early-stopping bookkeeping, `best_step`). `latest/` is the commit point:
a step's best checkpoint is written (and finished) before its latest one, after the previous
latest finished, and best/ keeps the previous best too, so after a kill at any moment the
newest latest step's `best_step` is in best/. `resume` checks exactly that, sets aside
(moves to `set_aside/`, never deletes) whatever cannot be restored or belongs to an
uncommitted step, and falls back to older steps, or to a fresh start. Restores go against an abstract target
built from the freshly initialised state, so shapes and dtypes are checked; its shardings
are the current mesh's, so a checkpoint restores onto any number of devices or processes.
All processes of a multi-process run call every method together (Orbax coordinates them).
"""
from __future__ import annotations

import logging
import shutil
import time
from contextlib import contextmanager
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
        self.directory = directory
        # Across processes every save ends in a named barrier per step: the two managers save
        # the same steps, so each needs its own barrier names.
        self.latest = ocp.CheckpointManager(
            directory / "latest", options=ocp.CheckpointManagerOptions(
                max_to_keep=keep_latest, multiprocessing_options=_barriers("latest")))
        self.best = ocp.CheckpointManager(
            directory / "best", options=ocp.CheckpointManagerOptions(
                max_to_keep=2, best_fn=lambda metrics: metrics["score"], best_mode=best_mode,
                multiprocessing_options=_barriers("best")))

    @staticmethod
    def _args(state, meta):
        return ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))

    def save(self, step: int, state, meta: dict, score: float | None, is_best: bool):
        """best/ first and finished, then latest/ (the commit point; it saves in the background)."""
        with _writing(self.directory):
            self.latest.wait_until_finished()
            if is_best:
                self.best.save(step, args=self._args(state, meta), metrics={"score": float(score)},
                               force=True)
                self.best.wait_until_finished()
            self.latest.save(step, args=self._args(state, meta), force=True)

    def resume(self, template_state):
        """(state, meta) of the newest latest step that restores and whose best step is in
        best/ and restores too; None when none is left (start afresh). Anything passed over is
        set aside with a warning, and so are best steps newer than the step resumed from."""
        for step in sorted(self.latest.all_steps(), reverse=True):
            try:
                state, meta = self.restore(template_state, "latest", step)
                problem = self._best_problem(template_state, meta.get("best_step"))
            except Exception as err:  # a truncated, garbled or missing item
                problem = f"cannot be restored ({_first_line(err)})"
            if problem is None:
                for later in [s for s in self.best.all_steps() if s > step]:
                    self._set_aside("best", later, f"is newer than the last committed step {step}")
                return state, meta
            self._set_aside("latest", step, problem)
        for orphan in self.best.all_steps():
            self._set_aside("best", orphan, "has no committed latest step left")
        return None

    def _best_problem(self, template_state, best_step: int | None) -> str | None:
        if best_step is None:
            return None
        if best_step not in self.best.all_steps():
            return f"its best step {best_step} is not in best/"
        try:
            self.restore(template_state, "best", best_step)
        except Exception as err:
            self._set_aside("best", best_step, f"cannot be restored ({_first_line(err)})")
            return f"its best step {best_step} cannot be restored"
        return None

    def _set_aside(self, which: str, step: int, reason: str) -> None:
        from tfnet_jax.train import distributed
        manager = getattr(self, which)
        source = Path(manager.directory) / str(step)
        target = Path(manager.directory).parent / "set_aside" / f"{which}-{step}-{time.strftime('%Y%m%d-%H%M%S')}"
        if distributed.is_primary():
            log.warning("checkpoint %s/%s %s: set aside as %s", which, step, reason, target)
            target.parent.mkdir(parents=True, exist_ok=True)
            source.rename(target)
        distributed.barrier(f"set aside {which} {step}")
        manager.reload()

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
        with _writing(self.directory):
            self.latest.wait_until_finished()
            self.best.wait_until_finished()

    def close(self):
        self.latest.close()
        self.best.close()


@contextmanager
def _writing(directory: Path):
    """A failed checkpoint write whose cause is an OSError (full disk, read-only, quota): the
    one-line error naming the checkpoint dir, whatever Orbax wrapped it in."""
    from tfnet_jax.atomic import output_error
    try:
        yield
    except Exception as err:
        cause = err
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise output_error(directory, cause) from err


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def remove_partial_saves(directory: str | Path) -> list[Path]:
    """Delete the temporary dirs of saves a kill cut short (under latest/ and best/); they are
    never resumed from and would otherwise pile up. Returns what it removed."""
    removed = sorted(Path(directory).glob(f"*/{PARTIAL_SAVE}"))
    for path in removed:
        log.warning("removing %s: a checkpoint save that never finished", path)
        shutil.rmtree(path, ignore_errors=True)
    return removed
