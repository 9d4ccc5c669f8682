"""A network defined outside the package: registered by import path, swept over seeds in a
multirun (fresh subprocesses), and collected beside the built-in baselines in one table."""
import pytest
import os
import subprocess
import sys
import textwrap

import pandas as pd

PLUGIN = textwrap.dedent('''
    """A user's tiny TF -> target network (a TFNet-family plug-in)."""
    from flax import nnx


    class TinyMLP(nnx.Module):
        def __init__(self, num_inputs, num_outputs, width=8, *, rngs):
            self.hidden = nnx.Linear(num_inputs, width, rngs=rngs)
            self.out = nnx.Linear(width, num_outputs, rngs=rngs)

        def __call__(self, x, deterministic=True, rngs=None):
            return self.out(nnx.relu(self.hidden(x)))
''')
TINY = ["experiment=smoke_tfnet", "train.max_steps=20", "train.eval_every=10"]


def _run(args, tmp_path, plugin_dir):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), os.environ.get("PYTHONPATH", "")]),
           "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.e2e
def test_plugin_network_multirun_collects_beside_baselines(tmp_path):
    plugin_dir = tmp_path / "user_code"
    plugin_dir.mkdir()
    (plugin_dir / "my_tiny_net.py").write_text(PLUGIN)
    sweep = tmp_path / "sweep"
    train = _run(["-m", "tfnet_jax.train", "-m", "model=tfnet", *TINY,
                  "model._target_=my_tiny_net.TinyMLP", "model.name=tiny_mlp",
                  "+model.options.width=16", "train.max_steps=200", "train.eval_every=50",
                  "train.learning_rate=0.01", "seed=0,1", f"hydra.sweep.dir={sweep}"],
                 tmp_path, plugin_dir)
    assert train.returncode == 0, train.stderr[-3000:]
    collect = _run(["-m", "tfnet_jax.experiments.collect", str(sweep)], tmp_path, plugin_dir)
    assert collect.returncode == 0, collect.stderr[-3000:]

    table = pd.read_csv(sweep / "results.csv")
    r2 = table[(table["metric"] == "r2_median")]
    seeds = r2.groupby("method")["seed"].nunique()
    assert seeds["tiny_mlp"] == 2 and seeds["ridge"] == 2  # both methods, both seeds, one table
    assert set(r2.loc[r2["method"] == "tiny_mlp", "role"]) == {"model"}
    # The plug-in really trained: it beats predicting the training mean on held-out samples.
    means = r2.groupby("method")["value"].mean()
    assert means["tiny_mlp"] > means["mean"] + 0.1
    report = (sweep / "report.md").read_text()
    assert "tiny_mlp" in report and "test r2_median" in report  # TFNet's metric, chosen by default
    assert "| arm" in collect.stderr and "report.md" in collect.stderr  # logged under python -m


@pytest.mark.e2e
def test_unimportable_plugin_is_one_line_error(tmp_path):
    result = _run(["-m", "tfnet_jax.train", "model=tfnet", *TINY, "model._target_=no_such_mod.Net",
                   f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "model._target_='no_such_mod.Net'" in result.stderr
