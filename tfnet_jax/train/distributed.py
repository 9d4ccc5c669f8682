"""Multi-process (multi-host) training with jax.distributed.

Every process runs the same program on the same data: it computes the same global batch
indices (engine.Trainer.train_batch is a pure function of seed and step), materialises only
the rows that land on its own devices, and joins the collectives of every step. Outputs
sharded across processes are gathered to every process, so validation metrics, early
stopping and checkpoint decisions agree everywhere. Orbax checkpoints are written and read
by all processes together; run-dir files (metrics, tables, predictions) by process 0 only.

With one process (the default) none of this runs: `initialize` returns at once and the
engine keeps its single-process code path.
"""
from __future__ import annotations

import logging
from typing import Mapping

import jax
import numpy as np

from tfnet_jax.errors import ConfigError

log = logging.getLogger(__name__)


def requested(dist: Mapping | None) -> bool:
    """Whether the `distributed` config asks for more than a single process."""
    return bool(dist) and (bool(dist.get("auto")) or dist.get("coordinator") is not None)


def initialize(dist: Mapping | None) -> None:
    """Join the process group described by the `distributed` config (no-op for one process).

    Must run before any JAX computation: jax fixes its device list on first use.
    Idempotent, so both the command line and the Python API may call it.
    """
    if not requested(dist) or jax.distributed.is_initialized():
        return
    # CPU processes exchange collectives through gloo (the default CPU client has none);
    # the setting only affects the CPU backend, so it is harmless on GPU hosts.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    kwargs = {"coordinator_address": dist.get("coordinator"),
              "num_processes": dist.get("num_processes"), "process_id": dist.get("process_id"),
              "initialization_timeout": int(dist.get("timeout", 300))}
    try:
        jax.distributed.initialize(**{k: v for k, v in kwargs.items() if v is not None})
    except (RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"config: distributed: jax.distributed.initialize failed ({first}); "
                          f"initialise before any JAX computation, and with auto=true run under "
                          f"a cluster launcher (srun) or set coordinator/num_processes/process_id"
                          ) from None
    if not is_primary():  # one run.log (Hydra's file handler), process 0's; the rest: stderr
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
            root.removeHandler(handler)
    log.info("Process %d of %d: %d local of %d global devices", jax.process_index(),
             jax.process_count(), jax.local_device_count(), jax.device_count())


def is_multiprocess() -> bool:
    return jax.process_count() > 1


def is_primary() -> bool:
    """Process 0 writes the run dir's files; the others compute the same values silently."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Every process waits here until all arrive (no-op for one process)."""
    if is_multiprocess():
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)


def check_mesh(devices) -> None:
    """A data mesh must hold at least one device of every process: a process without one could
    not feed its rows or join the step's collectives."""
    if not is_multiprocess():
        return
    missing = sorted(set(range(jax.process_count())) - {d.process_index for d in devices})
    if missing:
        raise ConfigError(f"config: train.num_devices={len(devices)}: the mesh leaves out every "
                          f"device of process(es) {missing}; leave it unset (all "
                          f"{jax.device_count()} devices) in a multi-process run")


def global_rows(arrays: dict[str, np.ndarray], padded: np.ndarray, mask: np.ndarray,
                sharding) -> dict[str, jax.Array]:
    """A global batch sharded by `sharding`: row i is arrays[padded[i]]. Each process gathers
    only the rows of its own devices' shards (the others are built by their processes)."""
    size = len(padded)
    columns = {**{name: (value, padded) for name, value in arrays.items()},
               "mask": (mask, np.arange(size))}
    return {name: jax.make_array_from_callback(
                (size,) + value.shape[1:], sharding,
                lambda index, value=value, rows=rows: value[rows[index[0]]][(slice(None),) + index[1:]])
            for name, (value, rows) in columns.items()}


def to_host(array: jax.Array) -> np.ndarray:
    """The whole value of a (possibly process-spanning) array, on every process."""
    if array.is_fully_addressable or array.is_fully_replicated:
        return np.asarray(array)
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(array, tiled=True))
