"""A training process killed with SIGKILL and restarted with the same command resumes."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO_ROOT


def latest_steps(run_dir):
    latest = run_dir / "checkpoints" / "latest"
    return sorted(int(p.name) for p in latest.iterdir() if p.name.isdigit()) if latest.exists() else []


@pytest.mark.e2e
@pytest.mark.slow  # test_kill_points covers ten kill moments; this one-kill case runs with them
def test_killed_run_resumes_with_the_same_command(tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "tfnet_jax.train", "experiment=smoke", f"hydra.run.dir={run_dir}",
               "train.max_steps=400", "train.eval_every=10", "train.patience=1000",
               "train.progress=false", "data.num_genes=300", "data.perts_per_type=60",
               "data.num_readouts=30"]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and len(latest_steps(run_dir)) < 2 and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = latest_steps(run_dir)
    assert killed_at and killed_at[-1] < 400, f"no checkpoint before the kill: {killed_at}"
    assert not (run_dir / "metrics.json").exists()

    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    resumed_from = int(done.stdout.split("Resumed from checkpoint at step ")[1].split()[0])
    assert resumed_from >= killed_at[-1] - 10 and resumed_from in latest_steps(run_dir) + killed_at
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["train"]["step"] == 400
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
             if "train/loss" in line]
    assert steps == sorted(set(steps)) and steps[-1] == 400  # no repeated or lost records
