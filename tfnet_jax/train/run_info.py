"""What a run needs to be reproduced: package versions, git commit, host."""
from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("tfnet_jax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy",
            "pandas", "scikit-learn", "hydra-core")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_commit(cwd: Path | None = None) -> dict:
    cwd = cwd or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty if commit else None}


def run_info() -> dict:
    import jax
    return {"versions": {name: _version(name) for name in PACKAGES},
            "git": git_commit(), "python": platform.python_version(), "host": platform.node(),
            "devices": [str(d) for d in jax.devices()]}
