"""Checkpoints after a kill at any moment, or corrupted: the run resumes from the newest
consistent step (what is passed over is set aside, not deleted) and ends where an
uninterrupted run ends."""
import logging
import shutil

import numpy as np
import pytest
from flax import nnx

from tfnet_jax.train.engine import Trainer, TrainConfig

SCORES = {10: 0.1, 20: 0.2, 30: 0.5, 40: 0.3}  # validation score by step: best at 30


class Killed(Exception):
    pass


def _trainer(run_dir):
    def loss_fn(model, batch, context, key):
        pred = model(batch["x"])[:, 0]
        return (((pred - batch["y"]) ** 2) * batch["mask"]).sum() / batch["mask"].sum(), {}

    cfg = TrainConfig(batch_size=8, eval_batch_size=8, max_steps=40, eval_every=10, log_every=10,
                      warmup_steps=2, patience=100, progress=False)
    return Trainer(nnx.Linear(3, 1, rngs=nnx.Rngs(0)), cfg, loss_fn=loss_fn,
                   predict_fn=lambda model, batch, context: model(batch["x"])[:, 0], context={},
                   run_dir=run_dir)


ARRAYS = {"x": np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)}
ARRAYS["y"] = (ARRAYS["x"] @ np.array([1.0, -2.0, 0.5])).astype(np.float32)


def _evaluate(trainer):
    return {"valid/pearson_delta": SCORES[int(nnx.to_pure_dict(trainer.state)[1]["step"])]}


def _killed_after_step_30(step, metrics):  # its checkpoints written: a kill right after them
    if step == 30:
        raise Killed


def _params(trainer):
    return [np.asarray(x) for x in jax_leaves(trainer.state)]


def jax_leaves(tree):
    import jax
    return jax.tree.leaves(tree)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run, and one killed after step 30's checkpoints (latest 20, 30; best 20, 30)."""
    root = tmp_path_factory.mktemp("ckpt")
    straight = _trainer(root / "straight")
    meta = straight.fit(ARRAYS, _evaluate)
    with pytest.raises(Killed):
        _trainer(root / "killed").fit(ARRAYS, _evaluate, on_eval=_killed_after_step_30)
    return root, _params(straight), meta


def _steps(folder):
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


def _resume(runs, tmp_path, damage):
    root, want_params, want_meta = runs
    run_dir = tmp_path / "run"
    shutil.copytree(root / "killed", run_dir)
    damage(run_dir / "checkpoints")
    trainer = _trainer(run_dir)
    meta = trainer.fit(ARRAYS, _evaluate)
    assert (meta["step"], meta["best_step"], meta["best_score"]) == (40, 30, 0.5) == (
        want_meta["step"], want_meta["best_step"], want_meta["best_score"])
    for got, want in zip(_params(trainer), want_params):  # the best (step 30) state, exactly resumed
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    aside = run_dir / "checkpoints" / "set_aside"
    return sorted(p.name.rsplit("-", 2)[0] for p in aside.iterdir()) if aside.exists() else []


def test_killed_layout(runs):
    root = runs[0]
    assert _steps(root / "killed" / "checkpoints" / "latest") == [20, 30]
    assert _steps(root / "killed" / "checkpoints" / "best") == [20, 30]


def _corrupt_state(step_dir):
    files = sorted((f for f in (step_dir / "state").rglob("*") if f.is_file()), key=lambda f: f.stat().st_size)
    with open(files[-1], "r+b") as handle:  # the largest file: the array data
        handle.truncate(max(files[-1].stat().st_size // 2, 1))
    for f in files:
        if f.stat().st_size and f.suffix in ("", ".json") and "manifest" in f.name:
            f.write_bytes(b"garbage")


def _garble_meta(step_dir):
    for f in (step_dir / "meta").rglob("*"):
        if f.is_file():
            f.write_text("{not json")


@pytest.mark.parametrize("damage, aside", [
    # killed after best/30 finished, before latest/30 was written: best/30 is set aside
    (lambda c: shutil.rmtree(c / "latest" / "30"), ["best-30"]),
    # best/30 lost, latest/30 names it: latest/30 is set aside, the run resumes from step 20
    (lambda c: shutil.rmtree(c / "best" / "30"), ["latest-30"]),
    (lambda c: _corrupt_state(c / "latest" / "30"), ["best-30", "latest-30"]),
    (lambda c: _garble_meta(c / "latest" / "30"), ["best-30", "latest-30"]),
    (lambda c: shutil.rmtree(c / "latest" / "30" / "meta"), ["best-30", "latest-30"]),
    (lambda c: [f.unlink() for f in (c / "latest" / "30").rglob("*manifest*")], ["best-30", "latest-30"]),
    # the best checkpoint of the newest step is corrupt: back to step 20 as well
    (lambda c: _corrupt_state(c / "best" / "30"), ["best-30", "latest-30"]),
], ids=["best-before-latest", "best-lost", "state-truncated", "meta-garbled", "meta-deleted",
        "manifest-deleted", "best-corrupt"])
def test_resumes_from_the_newest_consistent_step(runs, tmp_path, caplog, damage, aside):
    caplog.set_level(logging.INFO, logger="tfnet_jax")
    assert _resume(runs, tmp_path, damage) == aside
    assert "Resumed from checkpoint at step 20" in caplog.text and "set aside" in caplog.text


def test_nothing_usable_starts_afresh(runs, tmp_path, caplog):
    def everything(c):
        for step in (20, 30):
            _garble_meta(c / "latest" / str(step))
    assert _resume(runs, tmp_path, everything) == ["best-20", "best-30", "latest-20", "latest-30"]
    assert "Resumed from checkpoint" not in caplog.text


def test_full_disk_during_a_checkpoint_save_is_one_line(tmp_path, monkeypatch):
    import errno
    from tfnet_jax.errors import RunDirError
    from tfnet_jax.train import checkpoint

    def full(*args, **kwargs):
        raise RuntimeError("async save failed") from OSError(errno.ENOSPC, "No space left on device")
    trainer = _trainer(tmp_path / "run")
    monkeypatch.setattr(checkpoint.ocp.CheckpointManager, "save", full)
    with pytest.raises(RunDirError, match=r"checkpoints: no space left on device"):
        trainer.fit(ARRAYS, _evaluate)
