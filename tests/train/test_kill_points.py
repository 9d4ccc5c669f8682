"""SIGKILL at many moments of one run, each time restarted with the same command: the run
ends with the metrics.json of an uninterrupted run and a metrics.jsonl without gaps or repeats."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO_ROOT

MAX_STEPS = 60
COMMAND = ["-m", "tfnet_jax.train", "experiment=smoke", f"train.max_steps={MAX_STEPS}", "train.eval_every=10",
           "train.log_every=10", "train.patience=1000", "train.progress=false", "data.num_genes=300",
           "data.perts_per_type=60", "data.num_readouts=30"]
ENV = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}


def _latest(run_dir, which="latest"):
    folder = run_dir / "checkpoints" / which
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.exists() else []


def _saving(run_dir):  # a checkpoint write in progress
    return any((run_dir / "checkpoints").glob("*/*.orbax-checkpoint-tmp*"))


def _records(run_dir):
    path = run_dir / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


# One kill per restart, in order; each waits for its moment (or the run's end).
MOMENTS = {
    "just started": lambda d, t0: time.time() - t0 > 0.5,
    "data loaded": lambda d, t0: (d / "run_info.json").exists(),
    "first log record": lambda d, t0: _records(d) >= 1,
    "during a checkpoint write": lambda d, t0: _saving(d),
    "after a latest checkpoint": lambda d, t0: len(_latest(d)) >= 1 and not _saving(d),
    "after a best checkpoint": lambda d, t0: len(_latest(d, "best")) >= 1,
    "during another write": lambda d, t0: _saving(d) and max(_latest(d) or [0]) >= 20,
    "mid-interval": lambda d, t0: max(_latest(d) or [0]) >= 30 and _records(d) % 2 == 1,
    "at the last checkpoint": lambda d, t0: MAX_STEPS in _latest(d),
    "after the last checkpoint": lambda d, t0: MAX_STEPS in _latest(d) and not _saving(d),
}


def _close(a, b, path="metrics"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6) or (math.isnan(a) and math.isnan(b)), path
    else:
        assert a == b, path


@pytest.mark.e2e
@pytest.mark.slow
def test_sigkill_at_ten_moments_gives_the_uninterrupted_metrics(tmp_path):
    straight = tmp_path / "straight"
    done = subprocess.run([sys.executable, *COMMAND, f"hydra.run.dir={straight}"], cwd=REPO_ROOT, env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]

    run_dir = tmp_path / "killed"
    command = [sys.executable, *COMMAND, f"hydra.run.dir={run_dir}"]
    killed = []
    for name, moment in MOMENTS.items():
        proc = subprocess.Popen(command, cwd=REPO_ROOT, env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        t0 = time.time()
        while proc.poll() is None and not moment(run_dir, t0) and time.time() - t0 < 300:
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed.append(name)
        proc.wait()
        if (run_dir / "metrics.json").exists():
            break  # finished before this moment came: nothing left to kill
    assert len(killed) >= 8, killed
    final = subprocess.run(command, cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]

    want = json.loads((straight / "metrics.json").read_text())
    got = json.loads((run_dir / "metrics.json").read_text())
    _close(got, want)
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    straight_lines = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [r["step"] for r in straight_lines]  # no gaps, no repeats
    _close(lines, straight_lines, "metrics.jsonl")
    assert not list(run_dir.rglob("*.orbax-checkpoint-tmp*")) and not (run_dir / ".lock").exists()
