"""The families' hooks take the run's typed config, not a DictConfig; the defaults live in the
schemas only; one mesh and one identity hash per run."""
from __future__ import annotations

import inspect
import re

import pytest
from conftest import REPO_ROOT, TINY_DATA, TINY_MODEL

from tfnet_jax.tasks.base import FAMILIES, Family, import_object

ROOT = REPO_ROOT
HOOKS = [name for name, member in vars(Family).items() if inspect.isfunction(member) and not name.startswith("_")]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_hooks_match_the_protocol_and_take_no_dictconfig(family):
    cls = import_object(FAMILIES[family], "model.family")
    for hook in HOOKS:
        ours = inspect.signature(getattr(cls, hook))
        theirs = inspect.signature(getattr(Family, hook))
        # The same parameters in the same order (a family may add keyword-only extras).
        names = [p.name for p in ours.parameters.values() if p.kind is not p.KEYWORD_ONLY
                 and p.kind is not p.VAR_KEYWORD]
        expected = [p.name for p in theirs.parameters.values() if p.kind is not p.VAR_KEYWORD]
        assert names[:len(expected)] == expected, f"{family}.{hook}{ours} vs Family.{hook}{theirs}"
        annotations = " ".join(str(p.annotation) for p in ours.parameters.values())
        assert "DictConfig" not in annotations, f"{family}.{hook}{ours} takes a DictConfig"


def test_no_built_in_model_takes_a_dictconfig():
    from tfnet_jax.models.genonet import GenoNet
    from tfnet_jax.models.tfnet import TFNet
    from tfnet_jax.models.transcriptionnet import TranscriptionNet
    for model in (TranscriptionNet, TFNet, GenoNet):
        assert "DictConfig" not in str(inspect.signature(model.__init__))


CONFIG_NAMES = r"(?:cfg|config|model_cfg|split_cfg|en_cfg|options|model|train|split|data|network|s|m)"


def test_no_fallback_default_on_a_config_object_in_tasks():
    # `cfg.model.get("hops", 2)`-style reads would give a second definition of a default.
    pattern = re.compile(rf"\b{CONFIG_NAMES}(?:\.\w+)*\.get\([^()]*,")
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in sorted((ROOT / "tfnet_jax" / "tasks").rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), start=1)
             if pattern.search(line) and "groups.get" not in line]
    assert not found, "fallback defaults on config objects:\n" + "\n".join(found)


def test_the_grep_sees_a_fallback_default():
    pattern = re.compile(rf"\b{CONFIG_NAMES}(?:\.\w+)*\.get\([^()]*,")
    assert pattern.search('hops = int(cfg.model.get("hops", 2))')
    assert not pattern.search('state = metrics.get("guard")')


def test_one_mesh_and_one_identity_hash_per_run(tmp_path, monkeypatch):
    import jax

    from tfnet_jax.config import compose
    from tfnet_jax.tasks import base, identity
    from tfnet_jax.train import engine

    overrides = ([f"data.{k}={v}" for k, v in TINY_DATA.items()]
                 + [f"model.{k}={v}" for k, v in TINY_MODEL.items()]
                 + ["train.max_steps=4", "train.eval_every=2", "train.log_every=2", "train.batch_size=16",
                    "train.eval_batch_size=32", "train.warmup_steps=1", "train.progress=false",
                    "train.num_devices=2", "predictions.write=false"])
    cfg = compose(overrides)
    counts = {"mesh": 0, "hash": 0}
    make_mesh, record = jax.make_mesh, identity.identity_record

    def counted_mesh(*args, **kwargs):
        counts["mesh"] += 1
        return make_mesh(*args, **kwargs)

    def counted_record(*args, **kwargs):
        counts["hash"] += 1
        return record(*args, **kwargs)

    engine._mesh.cache_clear()
    monkeypatch.setattr(jax, "make_mesh", counted_mesh)
    monkeypatch.setattr(identity, "identity_record", counted_record)
    metrics = base.run(cfg, tmp_path / "run")
    assert counts == {"mesh": 1, "hash": 1}
    assert metrics["identity"] == record(cfg)["hash"]
