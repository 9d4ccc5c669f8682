"""tfnet_jax: gene-expression response models (TranscriptionNet, TFNet, GenoNet) on one JAX engine.

    import tfnet_jax
    run = tfnet_jax.fit("tfnet", train={"max_steps": 200})
    run.metrics, run.predict(new_samples)

The API is imported lazily, so `import tfnet_jax` stays cheap (no jax, no matplotlib), and
importing it changes nothing in the importing process: the commands tune glibc's malloc for
XLA's CPU steps themselves; a Python user may call `tfnet_jax.tune_host_memory()` first.
"""
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("tfnet_jax")
except _metadata.PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["fit", "load_run", "Run", "tune_host_memory", "__version__"]

# Registers the config schemas with Hydra, which must happen before any composition (cheap).
from tfnet_jax import config as _config  # noqa: E402,F401


def tune_host_memory() -> bool:
    """Keep freed host memory for reuse between CPU steps (glibc: one arena, no mmap for large
    blocks), so XLA's per-step temporaries are not re-faulted; ~15% of a genome-scale CPU step.
    Call it before jax starts its threads (before the first computation); True when it took
    effect. TFNET_JAX_MALLOC_TUNING=0 turns it off. The commands call it themselves."""
    from tfnet_jax.host_memory import reuse_freed_memory
    return reuse_freed_memory()


def __getattr__(name):
    if name in ("fit", "load_run", "Run"):
        from tfnet_jax import api
        return getattr(api, name)
    raise AttributeError(f"module 'tfnet_jax' has no attribute {name!r}")
