"""Reuse of freed host memory between CPU steps (glibc only).

On CPU, XLA allocates a step's temporaries with malloc (one block of ~2 GB for a genome-scale
TranscriptionNet step) and frees them after the step. glibc serves blocks over 32 MB with
fresh mmap pages, so every step the kernel zeroes and faults in every page again: ~15% of
such a step (benchmarks/genome_scale.py). One arena (XLA's worker threads then share one
heap), no mmap for large blocks and trimming only above 2 GB keep freed blocks for reuse.
Peak memory is unchanged: the same blocks are reused. Applied by every command (tfnet_jax.cli,
before its first computation starts jax's threads) and by `tfnet_jax.tune_host_memory()`,
never on import: a library does not change its importer's process. TFNET_JAX_MALLOC_TUNING=0
turns it off.
"""
from __future__ import annotations

import ctypes
import logging
import os
import sys
from functools import lru_cache

log = logging.getLogger(__name__)

# glibc <malloc.h>
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
_SETTINGS = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1))


@lru_cache(maxsize=1)
def reuse_freed_memory() -> bool:
    """Apply the settings once per process; True when they took effect."""
    if not sys.platform.startswith("linux") or os.environ.get("TFNET_JAX_MALLOC_TUNING", "1") == "0":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    applied = all(mallopt(option, value) == 1 for option, value in _SETTINGS)
    if not applied:
        log.debug("mallopt refused a setting: freed host memory is not kept for reuse")
    return applied
