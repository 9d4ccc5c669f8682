"""Sweeps through Hydra's launcher plugins (configs/hydra/launcher/): a 2-arm sweep through
submitit's local executor (the SLURM code path without SLURM) and through joblib, collected
like any multirun; a re-run that trains only the arm that did not finish; the SLURM preset
composed with its resource fields; one-line errors for a wrong or missing launcher."""
import os
import subprocess
import sys

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from conftest import REPO_ROOT, TINY_DATA, TINY_MODEL
from tfnet_jax.cli import CONFIG_DIR
from tfnet_jax.experiments.collect import collect

ARMS = "network.ablation=all,only_1"
STEPS = {"max_steps": 10, "batch_size": 16, "eval_batch_size": 32, "eval_every": 5,
         "log_every": 5, "warmup_steps": 2, "progress": "false"}
ENV = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}


def train(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "tfnet_jax.train", *args], cwd=REPO_ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def sweep(sweep_dir, launcher, *extra):
    """The 2-arm x 1-seed sweep on tiny data through `hydra/launcher=<launcher>`."""
    done = train("-m", f"hydra/launcher={launcher}", f"hydra.sweep.dir={sweep_dir}", ARMS, "seed=0",
                 *[f"data.{k}={v}" for k, v in TINY_DATA.items()],
                 *[f"model.{k}={v}" for k, v in TINY_MODEL.items()],
                 *[f"train.{k}={v}" for k, v in STEPS.items()], *extra)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name[0].isdigit())


def assert_collects_both_arms(sweep_dir):
    result = collect(sweep_dir)
    assert not result["missing"]  # .submitit/ (no .hydra/) is not taken for an unfinished run
    table = pd.read_csv(sweep_dir / "results.csv")
    assert set(table["arm"]) == {"all", "only_1"} and table["run"].nunique() == 2


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep_dir = tmp_path_factory.mktemp("submitit_local")
    return sweep_dir, sweep(sweep_dir, "local")


@pytest.mark.e2e
def test_submitit_local_sweep_keeps_the_layout_and_collects(local_sweep):
    sweep_dir, runs = local_sweep
    # Hydra's <job num>_<overrides> run dirs, as with the basic launcher; submitit's own files
    # (pickles, per-job logs) in .submitit/ beside them.
    assert [p.name[:2] for p in runs] == ["0_", "1_"]
    assert all((p / "metrics.json").exists() for p in runs)
    assert list((sweep_dir / ".submitit").glob("*/*_log.out"))
    assert_collects_both_arms(sweep_dir)


@pytest.mark.e2e
def test_rerun_under_a_launcher_trains_only_the_missing_arm(local_sweep):
    sweep_dir, (kept, killed) = local_sweep
    (killed / "metrics.json").unlink()  # the second arm "did not finish"
    before = (kept / "metrics.json").stat().st_mtime_ns
    assert sweep(sweep_dir, "local") == [kept, killed]  # the same arm -> the same run dir
    assert (kept / "metrics.json").stat().st_mtime_ns == before
    assert (killed / "metrics.json").exists()
    assert "Skipped" in (kept / "run.log").read_text()  # each job's Hydra log, appended
    assert "Skipped" not in (killed / "run.log").read_text()
    assert_collects_both_arms(sweep_dir)


@pytest.mark.slow  # 72 s on 2 shared cores; the local sweep covers layout and re-runs
@pytest.mark.e2e
def test_joblib_sweep_collects(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    runs = sweep(tmp_path, "parallel")
    assert [p.name[:2] for p in runs] == ["0_", "1_"]
    assert_collects_both_arms(tmp_path)


def test_slurm_preset_composes_with_its_resources():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", return_hydra_config=True, overrides=[
            "hydra/launcher=slurm", "hydra.launcher.partition=gpu",
            "hydra.launcher.gpus_per_node=2", "hydra.launcher.timeout_min=120",
            "hydra.launcher.mem_gb=32"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.timeout_min, launcher.mem_gb) == \
        ("gpu", 2, 120, 32)
    assert launcher.cpus_per_task == 8 and launcher.array_parallelism == 32  # the preset's defaults
    assert launcher.submitit_folder.endswith("/.submitit/%j")  # in the sweep dir; collect skips it


@pytest.mark.e2e
def test_wrong_launcher_is_one_line():
    done = train("-m", "hydra/launcher=slrum", "seed=0,1", timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(
        "error: config: hydra/launcher=slrum: no such option; expected one of")
    assert "slurm" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.e2e
def test_missing_launcher_plugin_names_the_extra():
    code = ("import sys; sys.modules['hydra_plugins.hydra_submitit_launcher'] = None; "
            "sys.argv = ['tfnet-train', '-m', 'hydra/launcher=slurm', 'seed=0,1']; "
            "from tfnet_jax.run import main; main()")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=ENV, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: config: hydra/launcher: submitit_slurm needs the "
                                   'hydra-submitit-launcher plugin; pip install "tfnet_jax[cluster]"')


@pytest.mark.e2e
def test_a_failed_run_under_submitit_is_one_line(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    done = train("-m", "hydra/launcher=local", f"hydra.sweep.dir={tmp_path}",
                 "network.ablation=only_9", "train.max_steps=10", timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "error: sweep run failed: network.ablation=only_9: layer index 9 out of range")
    assert f"(log: {tmp_path}/.submitit/" in last and last.endswith("_log.err)")
