"""Run dir safety: one writer per dir, an exact metrics.jsonl, and failed writes that leave
the previous file, no temporary, and one line naming the path."""
import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT, tiny_model

from tfnet_jax import cli
from tfnet_jax.data.io import prediction_files
from tfnet_jax.train import metrics_log
from tfnet_jax.atomic import atomic_write_json, atomic_write_with
from tfnet_jax.errors import RunDirError
from tfnet_jax.train.run_lock import RunLock
from tfnet_jax.tasks.transcriptionnet import prepare as task
from tfnet_jax.tasks.base import PredictionChunk
from tfnet_jax.train.engine import TrainConfig, Trainer

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
FULL_DISK = "no space left on device; free space or use another output dir"


@pytest.fixture(scope="module")
def trainer(tiny_prepared):
    """One Trainer (one compile) for every run of this file; `fit_in` points it at a run dir."""
    cfg = TrainConfig(batch_size=16, eval_batch_size=32, max_steps=40, eval_every=10, log_every=5,
                      warmup_steps=5, progress=False, patience=100)
    return Trainer(task.build_model(tiny_model(), tiny_prepared, seed=0), cfg,
                   loss_fn=task.make_loss_fn(0.5), predict_fn=task.predict_fn,
                   context=tiny_prepared.context)


def fit_in(trainer, run_dir, prepared, evaluate=None):
    """A fresh process's fit into `run_dir`: the initial parameters, then resume if it can."""
    trainer.reset()
    trainer.run_dir = run_dir
    return trainer.fit(prepared.rows("train"),
                       evaluate or (lambda tr: task.validation_metrics(tr, prepared)))


def dies_at_eval(prepared, n):
    calls = {"n": 0}

    def evaluate(trainer):
        calls["n"] += 1
        if calls["n"] == n:  # the eval of step 10 n: its checkpoint is never written
            raise KeyboardInterrupt
        return task.validation_metrics(trainer, prepared)
    return evaluate


def log_keys(run_dir):
    return [(r["step"], sorted(r)) for r in metrics_log.read(run_dir / "metrics.jsonl")]


def one_error_line(err, capsys) -> str:
    with pytest.raises(SystemExit):
        cli.exit_with_error(err)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    return lines[0]


# ---------------------------------------------------------------- one writer per run dir
@pytest.mark.e2e
@pytest.mark.slow  # two CLI trainings: ~60 s on 2 shared cores
def test_second_run_into_a_busy_dir_stops_at_once(tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "tfnet_jax.train", "experiment=smoke", f"hydra.run.dir={run_dir}",
               "train.max_steps=60", "train.progress=false", "data.num_genes=300",
               "data.perts_per_type=60", "data.num_readouts=30"]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
           "PYTHONPATH": str(REPO_ROOT)}
    first = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and first.poll() is None and not (run_dir / ".lock").exists():
            time.sleep(0.1)
        assert first.poll() is None, first.communicate()[0][-3000:]
        first.send_signal(signal.SIGSTOP)  # holds the lock however slow the second start is
        try:
            start = time.time()
            second = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                                    timeout=240)
            took = time.time() - start
        finally:
            first.send_signal(signal.SIGCONT)
        assert second.returncode == 2, second.stderr[-3000:]
        expected = f"error: {run_dir}/.lock: run dir in use by pid {first.pid} on host "
        assert expected in second.stderr and "use another hydra.run.dir" in second.stderr
        assert took < 120, f"the second run took {took:.0f} s to give up"
        output = first.communicate(timeout=400)[0]
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, output[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["train"]["step"] == 60
    steps = [r["step"] for r in metrics_log.read(run_dir / "metrics.jsonl") if "train/loss" in r]
    assert steps == [10, 20, 30, 40, 50, 60]  # nothing doubled by the refused run
    assert not (run_dir / ".lock").exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".lock").write_text(json.dumps(
        {"host": socket.gethostname(), "pid": dead.pid, "since": "2020-01-01T00:00:00"}))
    with caplog.at_level(logging.WARNING, logger="tfnet_jax"):
        with RunLock(tmp_path, owner=True):
            assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
            with pytest.raises(RunDirError, match=rf"\.lock: run dir in use by pid {os.getpid()} "):
                RunLock(tmp_path, owner=True).acquire()  # a second writer is refused
    assert f"stale lock of pid {dead.pid}" in caplog.text
    assert not (tmp_path / ".lock").exists()
    with RunLock(tmp_path, owner=False):  # another process of a multi-process run
        assert not (tmp_path / ".lock").exists()


# ---------------------------------------------------------------- metrics.jsonl
def test_metrics_log_exact_after_kill_and_after_restart(trainer, tiny_prepared, tmp_path):
    fit_in(trainer, tmp_path / "straight", tiny_prepared)
    straight = log_keys(tmp_path / "straight")

    killed = tmp_path / "killed"  # killed after the checkpoint of step 20, mid-write
    with pytest.raises(KeyboardInterrupt):
        fit_in(trainer, killed, tiny_prepared, dies_at_eval(tiny_prepared, 3))
    with (killed / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 30, "valid/')
    fit_in(trainer, killed, tiny_prepared)
    assert log_keys(killed) == straight  # no repeats, no gaps

    scratch = tmp_path / "scratch"  # killed before its first checkpoint: restarts from scratch
    with pytest.raises(KeyboardInterrupt):
        fit_in(trainer, scratch, tiny_prepared, dies_at_eval(tiny_prepared, 1))
    assert log_keys(scratch) == [(5, straight[0][1]), (10, straight[1][1])]
    fit_in(trainer, scratch, tiny_prepared)
    assert log_keys(scratch) == straight


def test_torn_last_line_is_skipped_and_repaired(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')
    with caplog.at_level(logging.WARNING, logger="tfnet_jax"):
        assert metrics_log.read(path) == [{"step": 1}, {"step": 2}]
    assert "metrics.jsonl: line 3 is cut short" in caplog.text
    metrics_log.append(path, {"step": 3})
    assert path.read_text() == '{"step": 1}\n{"step": 2}\n{"step": 3}\n'


# ---------------------------------------------------------------- full disk
def test_full_disk_keeps_the_old_file_and_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"old": 1})

    def fills_the_disk(tmp):
        with open(tmp, "w") as handle:
            handle.write('{"new": ')
        raise ENOSPC

    with pytest.raises(RunDirError) as caught:
        atomic_write_with(target, fills_the_disk)
    assert json.loads(target.read_text()) == {"old": 1}
    assert os.listdir(tmp_path) == ["metrics.json"]
    assert one_error_line(caught.value, capsys) == f"error: {target}: {FULL_DISK}"

    log = tmp_path / "metrics.jsonl"  # an append that fails half-way is cut back
    metrics_log.append(log, {"step": 1})
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: _half_then_full(real_write, fd, data))
    with pytest.raises(RunDirError, match=f"{log}: {FULL_DISK}"):
        metrics_log.append(log, {"step": 2})
    monkeypatch.undo()
    assert log.read_text() == '{"step": 1}\n'


def _half_then_full(real_write, fd, data):
    real_write(fd, data[: len(data) // 2])
    raise ENOSPC


@pytest.mark.parametrize("fmt", ["csv", "parquet", "gctx", "h5ad"])
def test_full_disk_while_predicting_leaves_no_temporary(tmp_path, monkeypatch, capsys, fmt):
    target = tmp_path / f"predictions.{fmt}"
    target.write_bytes(b"previous")
    chunks = [PredictionChunk(pd.DataFrame({"gene": genes, "split": "unseen"}),
                              np.ones((2, 3), np.float32), ["x", "y", "z"], id_columns=["gene"])
              for genes in (["a", "b"], ["c", "d"])]
    sinks = {"gctx": prediction_files.GctxSink, "h5ad": prediction_files.H5adSink}
    sink = sinks[fmt](target) if fmt in sinks else prediction_files.TableSink(target, fmt)
    if fmt in sinks:
        monkeypatch.setattr("tfnet_jax.data.io.h5_atomic.publish", lambda tmp, path: _raise(ENOSPC))
    else:
        monkeypatch.setattr(prediction_files, "publish", lambda tmp, path: _raise(ENOSPC))
    with pytest.raises(RunDirError) as caught:
        prediction_files.write_predictions([sink], iter(chunks))
    assert target.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == [target.name]
    assert one_error_line(caught.value, capsys) == f"error: {target}: {FULL_DISK}"


def _raise(err):
    raise err


# ---------------------------------------------------------------- killed Orbax saves
def test_killed_orbax_saves_are_removed_on_resume(trainer, tiny_prepared, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        fit_in(trainer, tmp_path, tiny_prepared, dies_at_eval(tiny_prepared, 3))
    partial = [tmp_path / "checkpoints" / "latest" / "30.orbax-checkpoint-tmp",
               tmp_path / "checkpoints" / "best" / "30.orbax-checkpoint-tmp-1700000000"]
    for path in partial:
        (path / "state").mkdir(parents=True)
        (path / "state" / "half_written").write_bytes(b"\0" * 10)
    meta = fit_in(trainer, tmp_path, tiny_prepared)
    assert meta["step"] == 40 and meta["finished"]
    assert not any(path.exists() for path in partial)
