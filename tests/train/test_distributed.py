"""Multi-process training with jax.distributed: 2 CPU processes on 127.0.0.1 (gloo collectives,
one device each) train to the metrics of one process, resume after SIGKILL, and resume a run
dir across process counts (1 -> 2 and 2 -> 1)."""
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO_ROOT
from tfnet_jax.config import compose
from tfnet_jax.errors import ConfigError
from tfnet_jax.tasks.identity import config_hash

TINY = ["experiment=smoke", "train.max_steps=100", "train.eval_every=10", "train.patience=1000",
        "train.progress=false", "data.num_genes=300", "data.perts_per_type=60",
        "data.num_readouts=30"]
TIMEOUT = 400


# ---------------------------------------------------------------- config (fast)
@pytest.mark.parametrize("overrides, message", [
    (["distributed.coordinator=127.0.0.1:1234", "distributed.num_processes=2",
      "distributed.process_id=2"], "distributed.process_id=2: must be below distributed.num_processes"),
    (["distributed.coordinator=127.0.0.1", "distributed.num_processes=2", "distributed.process_id=0"],
     "distributed.coordinator='127.0.0.1': expected HOST:PORT"),
    (["distributed.coordinator=127.0.0.1:99999", "distributed.num_processes=2",
      "distributed.process_id=0"], "distributed.coordinator='127.0.0.1:99999': expected HOST:PORT"),
    (["distributed.num_processes=2", "distributed.process_id=0"],
     "distributed.coordinator=None: set it too"),
    (["distributed.coordinator=h:1", "distributed.num_processes=0", "distributed.process_id=0"],
     "distributed.num_processes=0: must be a positive integer"),
])
def test_bad_distributed_config_is_a_one_line_error(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as err:
        compose(overrides)
    assert "\n" not in str(err.value)


def test_distributed_settings_are_not_part_of_the_run_identity():
    auto = compose(["distributed=auto"])
    explicit = compose(["distributed.coordinator=10.0.0.1:1234", "distributed.num_processes=4",
                        "distributed.process_id=3"])
    assert auto.distributed.auto and not compose([]).distributed.auto
    assert config_hash(auto) == config_hash(explicit) == config_hash(compose([]))


def test_one_process_by_default():
    from tfnet_jax.train import distributed
    assert not distributed.requested(compose([]).distributed)
    distributed.initialize(compose([]).distributed)  # a no-op: nothing joins, nothing waits
    assert not distributed.is_multiprocess() and distributed.is_primary()


# ---------------------------------------------------------------- processes (slow)
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(run_dir, processes: int, log_dir) -> list[subprocess.Popen]:
    """The training command on `processes` processes of one CPU device each (worktree code)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "tfnet_jax.train", *TINY, f"hydra.run.dir={run_dir}"]
    port = free_port()
    procs = []
    for rank in range(processes):
        extra = [] if processes == 1 else [f"distributed.coordinator=127.0.0.1:{port}",
                                           f"distributed.num_processes={processes}",
                                           f"distributed.process_id={rank}"]
        log = open(log_dir / f"{run_dir.name}.{processes}x.{rank}.{time.time_ns()}.log", "w")
        procs.append(subprocess.Popen(command + extra, cwd=REPO_ROOT, env=env, stdout=log,
                                      stderr=subprocess.STDOUT, text=True))
        procs[-1].log_path = log.name
        log.close()
    return procs


def finish(procs) -> str:
    """Wait for every process; each must succeed. Returns process 0's output."""
    deadline = time.time() + TIMEOUT
    for proc in procs:
        try:
            proc.wait(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            raise
    outputs = [open(proc.log_path).read() for proc in procs]
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output[-4000:]
    return outputs[0]


def latest_steps(run_dir):
    latest = run_dir / "checkpoints" / "latest"
    return sorted(int(p.name) for p in latest.iterdir() if p.name.isdigit()) if latest.exists() else []


def kill_after_first_checkpoint(procs, run_dir) -> int:
    deadline = time.time() + TIMEOUT
    while time.time() < deadline and not latest_steps(run_dir) and all(p.poll() is None for p in procs):
        time.sleep(0.05)
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
    for proc in procs:
        proc.wait()
    killed_at = latest_steps(run_dir)
    assert killed_at and killed_at[-1] < 100, f"no checkpoint before the kill: {killed_at}"
    assert not (run_dir / "metrics.json").exists()
    return killed_at[-1]


def numbers(metrics: dict) -> dict[str, float]:
    """The trained model's figures in metrics.json, flattened: test tables, best score, fusion."""
    out = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}/{key}")
        elif isinstance(node, (int, float)):
            out[prefix] = float(node)
    for key in ("model", "train", "fusion_weights"):
        walk(metrics[key], key)
    return out


def assert_same_metrics(run_dir, reference: dict):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    got, want = numbers(metrics), numbers(reference)
    assert got.keys() == want.keys()
    off = {k: (got[k], want[k]) for k in want
           if not math.isclose(got[k], want[k], rel_tol=1e-4, abs_tol=1e-6)}
    assert not off, off
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "train/loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 100  # one writer: no repeated records


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The run on one process with one device: the figures every other layout must reproduce."""
    root = tmp_path_factory.mktemp("reference")
    start = time.time()
    finish(launch(root / "one", 1, root))
    print(f"1 process: {time.time() - start:.0f} s")
    return json.loads((root / "one" / "metrics.json").read_text())


@pytest.mark.e2e
@pytest.mark.slow
def test_two_processes_train_to_the_one_process_metrics(reference, tmp_path):
    run_dir = tmp_path / "two"
    start = time.time()
    output = finish(launch(run_dir, 2, tmp_path))
    print(f"2 processes: {time.time() - start:.0f} s")
    assert "Process 0 of 2: 1 local of 2 global devices" in output
    assert_same_metrics(run_dir, reference)
    log = (run_dir / "run.log").read_text()
    assert "Process 0 of 2" in log and "Process 1 of 2" not in log  # process 0 writes the files


@pytest.mark.e2e
@pytest.mark.slow
def test_killed_two_process_run_resumes_to_the_same_metrics(reference, tmp_path):
    run_dir = tmp_path / "killed"
    killed_at = kill_after_first_checkpoint(launch(run_dir, 2, tmp_path), run_dir)
    output = finish(launch(run_dir, 2, tmp_path))
    resumed_from = int(output.split("Resumed from checkpoint at step ")[1].split()[0])
    assert resumed_from >= killed_at
    assert_same_metrics(run_dir, reference)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("first, then", [(1, 2), (2, 1)])
def test_run_dir_resumes_across_process_counts(reference, tmp_path, first, then):
    run_dir = tmp_path / f"from{first}to{then}"
    killed_at = kill_after_first_checkpoint(launch(run_dir, first, tmp_path), run_dir)
    output = finish(launch(run_dir, then, tmp_path))
    assert int(output.split("Resumed from checkpoint at step ")[1].split()[0]) >= killed_at
    assert_same_metrics(run_dir, reference)
