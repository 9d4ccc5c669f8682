"""tfnet_jax: gene-expression response models (TranscriptionNet, TFNet, GenoNet) on one JAX engine.

    import tfnet_jax
    run = tfnet_jax.fit("tfnet", train={"max_steps": 200})
    run.metrics, run.predict(new_samples)

The API is imported lazily, so `import tfnet_jax` stays cheap (no jax, no matplotlib).
"""
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("tfnet_jax")
except _metadata.PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["fit", "load_run", "Run", "__version__"]

# Before jax starts its threads: XLA's per-step host temporaries are reused, not re-faulted.
from tfnet_jax.host_memory import reuse_freed_memory as _reuse_freed_memory  # noqa: E402

_reuse_freed_memory()

# Registers the config schemas with Hydra, which must happen before any composition (cheap).
from tfnet_jax import config as _config  # noqa: E402,F401


def __getattr__(name):
    if name in ("fit", "load_run", "Run"):
        from tfnet_jax import api
        return getattr(api, name)
    raise AttributeError(f"module 'tfnet_jax' has no attribute {name!r}")
