"""Run dirs written before the package's reshape (commit a2fdd78, kept in fixtures/old_runs:
a TFNet and a TranscriptionNet smoke run) still load, predict and resume: the same identity
hash for the same config, the same checkpoint parameter paths, the same test figures."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import REPO_ROOT
from omegaconf import OmegaConf

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "old_runs"


def _model_figures(metrics: dict) -> dict[str, float]:
    return {f"{group}/{name}": value for group, values in metrics["model"].items()
            for name, value in values.items()}


@pytest.mark.parametrize("name", ["tfnet_smoke", "tn_smoke"])
def test_an_old_run_dir_loads_predicts_and_resumes(name, tmp_path):
    import tfnet_jax
    from tfnet_jax.config import compose
    from tfnet_jax.tasks.base import run
    from tfnet_jax.tasks.identity import identity_record

    run_dir = tmp_path / name
    shutil.copytree(FIXTURES / name, run_dir)
    cfg = compose(list(OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")))
    recorded = json.loads((run_dir / "identity.json").read_text())
    assert identity_record(cfg)["hash"] == recorded["hash"]
    old = json.loads((run_dir / "metrics.json").read_text())

    predictions = tfnet_jax.load_run(run_dir).predict()
    values = predictions.select_dtypes("number").to_numpy()
    assert len(predictions) > 0 and np.isfinite(values).all()

    (run_dir / "metrics.json").unlink()  # re-scored from its checkpoints: resumed, not retrained
    metrics = run(cfg, run_dir)
    assert metrics["train"]["step"] == old["train"]["step"]
    assert metrics["identity"] == old["identity"]
    new, before = _model_figures(metrics), _model_figures(old)
    assert new.keys() == before.keys()
    np.testing.assert_allclose([new[k] for k in before], list(before.values()), rtol=1e-4, atol=1e-6)


def test_keys_added_later_at_a_neutral_value_keep_the_run_dir(tmp_path):
    """A run dir recorded before a key existed resumes when the key is at a neutral value
    (None, [], {}), and is refused when the new key is set to anything else."""
    from tfnet_jax.config import compose
    from tfnet_jax.errors import RunDirError
    from tfnet_jax.tasks.identity import IDENTITY_FILE, Identity, check

    identity = Identity.of(compose(["experiment=smoke"]))
    older = json.loads(json.dumps(identity.record))
    added = "split.folds"  # a key whose None default a run could change
    assert older["config"][added] is None
    del older["config"][added]
    older["hash"] = "recorded-before-" + added
    (tmp_path / IDENTITY_FILE).write_text(json.dumps(older))
    (tmp_path / "metrics.json").write_text("{}")
    assert check(tmp_path, identity)
    changed = Identity(identity.cfg, {"hash": "set-later",
                                      "config": {**identity.record["config"], added: 3}})
    with pytest.raises(RunDirError, match=added):
        check(tmp_path, changed)
