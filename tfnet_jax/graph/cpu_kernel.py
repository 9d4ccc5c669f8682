"""The fused CPU graph-attention kernel (gat_cpu.cc): compiled at first use, registered with XLA.

The C++ source ships with the package and is compiled once per machine type with the
system's C++ compiler against the XLA FFI headers that jaxlib ships, into a cache
directory ($TFNET_JAX_CACHE, default ~/.cache/tfnet_jax). Where no compiler is found the
graph layer falls back to XLA's gather/segment path (same numbers, slower on CPU).

$TFNET_JAX_GAT_KERNEL chooses: `auto` (default: the fused kernel on CPU when it builds),
`xla` (never), `fused` (always on CPU; an error if it cannot be built).
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import jax

from tfnet_jax.errors import ConfigError

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("gat_cpu.cc")
FORWARD, BACKWARD = "tfnet_gat_forward", "tfnet_gat_backward"
CHOICES = ("auto", "xla", "fused")


def kernel_choice() -> str:
    choice = os.environ.get("TFNET_JAX_GAT_KERNEL", "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise ConfigError(f"TFNET_JAX_GAT_KERNEL={choice!r}: expected one of {', '.join(CHOICES)}")
    return choice


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags")):
                return line
    except OSError:
        pass
    return platform.processor()


def _cache_dir() -> Path:
    return Path(os.environ.get("TFNET_JAX_CACHE") or Path.home() / ".cache" / "tfnet_jax")


def _compile(compiler: str) -> Path:
    # The library depends on the source, the FFI headers (jaxlib version) and the CPU it is
    # tuned for (-march=native): a shared cache dir on a mixed cluster keeps one per CPU type.
    key = hashlib.sha256(SOURCE.read_bytes() + jax.__version__.encode() + platform.machine().encode()
                         + _cpu_model().encode()).hexdigest()[:16]
    target = _cache_dir() / f"gat_cpu-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        command = [compiler, "-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-pthread",
                   f"-I{jax.ffi.include_dir()}", str(SOURCE), "-o", str(built)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip()[-2000:]}")
        os.replace(built, target)  # atomic: a concurrent build of the same key is harmless
    return target


@lru_cache(maxsize=1)
def fused_kernel_ready() -> bool:
    """True once the fused kernel is compiled and registered for CPU (done once per process)."""
    choice = kernel_choice()
    if choice == "xla":
        return False
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    try:
        if compiler is None:
            raise RuntimeError("no C++ compiler (g++/c++) on PATH; set CXX")
        library = ctypes.cdll.LoadLibrary(str(_compile(compiler)))
        jax.ffi.register_ffi_target(FORWARD, jax.ffi.pycapsule(library.TfnetGatForward), platform="cpu")
        jax.ffi.register_ffi_target(BACKWARD, jax.ffi.pycapsule(library.TfnetGatBackward), platform="cpu")
    except (RuntimeError, OSError) as error:
        if choice == "fused":
            raise ConfigError(f"TFNET_JAX_GAT_KERNEL=fused: the CPU kernel did not build: {error}") from None
        log.warning("graph attention: the fused CPU kernel did not build (%s); using XLA's "
                    "gather/segment path", str(error).splitlines()[0][:300])
        return False
    return True
