"""Atomic writes: a failed write leaves the old file and no temporary behind."""
import os

import pytest

from tfnet_jax.atomic import atomic_write_json, atomic_write_with


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"old": 1})

    def dies_half_way(tmp):
        with open(tmp, "w") as handle:
            handle.write('{"new": ')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_with(target, dies_half_way)
    assert target.read_text() == '{\n  "old": 1\n}\n'
    assert os.listdir(tmp_path) == ["metrics.json"]
    assert (target.stat().st_mode & 0o777) == 0o666 & ~_umask()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
