"""Run identity: a run dir belongs to one resolved config, recorded in RUN/identity.json.

The hash covers every field that can change a result; it leaves out fields that only change
how a run is watched or where it runs (`IGNORED`). A re-run into a dir recorded for another
config refuses to skip or resume, names the differing fields, and writes nothing.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from tfnet_jax.atomic import atomic_write_json, atomic_write_text
from tfnet_jax.errors import RunDirError

IDENTITY_FILE = "identity.json"
# Dotted prefixes that do not change results: progress/logging, device count, multi-host
# set-up, and paths where files are cached or written.
IGNORED = ("train.progress", "train.log_every", "train.num_devices", "distributed", "hydra",
           "run_dir", "data.cache")
# What a run dir holds once a run has started; a dir with any of them but no identity record
# was made by an older version (or by hand) and is not reused.
RUN_OUTPUTS = ("metrics.json", "checkpoints", "fits")


def flat_config(cfg: DictConfig) -> dict[str, object]:
    """The resolved config as {dotted key: value}, minus `IGNORED` fields."""
    out: dict[str, object] = {}

    def walk(node, prefix):
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        elif not any(prefix == p or prefix.startswith(p + ".") for p in IGNORED):
            out[prefix] = node
    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


def identity_record(cfg: DictConfig) -> dict:
    """What identity.json holds: the hash and the flat config (JSON values) it was taken of."""
    config = json.loads(json.dumps(flat_config(cfg), default=str))
    text = json.dumps(config, sort_keys=True)
    return {"hash": hashlib.sha256(text.encode()).hexdigest()[:16], "config": config}


def config_hash(cfg: DictConfig) -> str:
    return identity_record(cfg)["hash"]


@dataclass(frozen=True)
class Identity:
    """A run's config and its identity record, hashed once per run (`Identity.of`)."""
    cfg: DictConfig
    record: dict

    @classmethod
    def of(cls, cfg: DictConfig) -> "Identity":
        return cls(cfg, identity_record(cfg))

    @property
    def hash(self) -> str:
        return self.record["hash"]


def _recorded(run_dir: Path) -> dict | None:
    path = run_dir / IDENTITY_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise RunDirError(f"{path}: unreadable run identity record; move the run dir aside") from None


# A key that a later version added, at one of these values, changes nothing a run did.
NEUTRAL_VALUES = (None, [], {})


def _differences(old: dict, new: dict) -> list[str]:
    """The fields that differ, except keys added since `old` was recorded at a neutral value
    (so a run dir from before e.g. `data.extra_networks` existed still resumes)."""
    keys = sorted(set(old) | set(new))
    missing = object()
    return [f"{k} ({old.get(k, '<unset>')!r} -> {new.get(k, '<unset>')!r})" for k in keys
            if old.get(k, missing) != new.get(k, missing)
            and not (k not in old and new[k] in NEUTRAL_VALUES)]


def check(run_dir: Path, identity: Identity) -> bool:
    """True if `run_dir` already belongs to the run's config; False if it holds no run yet (nothing
    trained: no checkpoints, fits or metrics.json).

    Raises RunDirError when it holds a run of another config (naming the fields).
    """
    run_dir = Path(run_dir)
    record = _recorded(run_dir)
    if record is None:
        found = [name for name in RUN_OUTPUTS if (run_dir / name).exists()]
        if found:
            raise RunDirError(f"run dir {run_dir} holds a run ({', '.join(found)}) with no identity "
                              f"record; choose a new run dir (hydra.run.dir=...) or move it aside")
        return False
    current = identity.record
    if record.get("hash") != current["hash"]:
        if not any((run_dir / name).exists() for name in RUN_OUTPUTS):
            return False  # an attempt that failed before training (e.g. a bad data path): reclaim
        diff = _differences(record.get("config", {}), current["config"])
        if not diff:
            return True
        shown = "; ".join(diff[:8]) + (f"; and {len(diff) - 8} more" if len(diff) > 8 else "")
        raise RunDirError(f"run dir {run_dir} holds a run of a different config: {shown}. Refusing to "
                          f"skip or resume: choose a new run dir (hydra.run.dir=...) or move the old "
                          f"one aside")
    return True


def finished(run_dir: Path, identity: Identity) -> bool:
    """The run dir holds this config's finished run (metrics.json is written last)."""
    return check(run_dir, identity) and (Path(run_dir) / "metrics.json").exists()


def claim(run_dir: Path, identity: Identity, overrides: list[str] | None = None) -> None:
    """Record the run's identity in the run dir (after `check`), with its resolved config and
    the command-line overrides (which `collect` reads to name arms)."""
    run_dir = Path(run_dir)
    if check(run_dir, identity):
        return
    cfg = identity.cfg
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / ".hydra" / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        if overrides is not None:
            atomic_write_text(run_dir / ".hydra" / "overrides.yaml",
                              OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
        atomic_write_json(run_dir / IDENTITY_FILE, identity.record)
    except OSError as err:
        raise RunDirError(f"run dir {run_dir}: cannot write ({err.strerror or err})") from None


def read_metrics(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text())
