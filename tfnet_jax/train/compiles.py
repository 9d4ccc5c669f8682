"""Counting XLA compilations through jax's public switch (`jax_log_compiles`): one log record
"Compiling jit(<name>) ..." per compilation. Retrace checks (tests), the core-TF selection's
report and the benchmarks read these counts, never jax's private jit caches."""
from __future__ import annotations

import logging
import re
from collections import Counter

import jax

_COMPILING = re.compile(r"Compiling (?:jit\()?([\w.]+)")
# Where jax logs a compilation (and, with the switch on, its timings): counted here, not shown.
_SOURCES = ("jax._src.interpreters.pxla", "jax._src.dispatch")
_TIMINGS = re.compile(r"Finished (tracing|jaxpr to MLIR|XLA compilation)")


class CompileCounter(logging.Handler):
    """Compilations per function name while active: `with CompileCounter() as c: ...; c["train_step"]`,
    or `c = CompileCounter().start(); ...; c.stop()`."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.counts: Counter[str] = Counter()
        self._was_logging = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        found = _COMPILING.match(message)
        if found:
            self.counts[found.group(1)] += 1
        elif not _TIMINGS.match(message):  # any other record goes on as it would have
            logging.getLogger("jax").handle(record)

    def __getitem__(self, name: str) -> int:
        return self.counts[name]

    def start(self) -> "CompileCounter":
        self._was_logging = jax.config.jax_log_compiles
        jax.config.update("jax_log_compiles", True)
        for name in _SOURCES:
            source = logging.getLogger(name)
            source.addHandler(self)
            source.propagate = False
        return self

    def stop(self) -> "CompileCounter":
        for name in _SOURCES:
            source = logging.getLogger(name)
            source.removeHandler(self)
            source.propagate = True
        jax.config.update("jax_log_compiles", bool(self._was_logging))
        return self

    def __enter__(self) -> "CompileCounter":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
