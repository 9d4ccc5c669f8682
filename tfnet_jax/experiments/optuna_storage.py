"""Shared optuna storage for `tfnet-sweep` workers, and recovery from dead workers.

`journal:PATH` is optuna's JournalStorage on a file (appends under a link-based lock, safe on
NFS); anything with `://` is an RDB URL (sqlite, postgresql, mysql), whose own heartbeat
fails and re-queues the trials of dead workers. For the journal, which has no heartbeat, each
running trial records its worker (`host:pid`) and a heartbeat time in its user attrs; a
trial whose pid is gone on this host, or which has not beaten for the grace period, is failed
and re-queued with the same values by optuna's retry callback, as RDBStorage would do.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import logging
import os
import socket
import threading
import time
import warnings
from pathlib import Path

from tfnet_jax.errors import ConfigError
from tfnet_jax.train.run_lock import pid_alive

log = logging.getLogger(__name__)

WORKER, HEARTBEAT = "worker", "heartbeat"  # trial user attrs: who runs it, when it last beat


def retry_callback(max_retry: int | None):
    """optuna's callback that re-queues a stale trial as WAITING with the same values and
    `system_attrs['failed_trial']` = the original number (renamed in optuna 4.9)."""
    import optuna

    cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) \
        or optuna.storages.RetryFailedTrialCallback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return cls(max_retry=max_retry)


def open_storage(spec: str, heartbeat_interval: float, grace_period: float,
                 max_retry: int | None):
    """Optuna storage for `journal:PATH` or an RDB URL (ConfigError for anything else)."""
    import optuna

    if spec.startswith("journal:"):
        path = Path(spec.removeprefix("journal:")).absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = optuna.storages.journal.JournalFileBackend(str(path))  # symlink lock: NFS-safe
        return optuna.storages.JournalStorage(backend)
    if "://" not in spec:
        raise ConfigError(f"config: sweep.storage={spec!r}: expected journal:PATH or an RDB URL "
                          f"(sqlite:///PATH, postgresql://...)")
    rdb = optuna.storages.RDBStorage
    # optuna 4.9 renamed the stale-trial callback argument; older 4.x has only the first name.
    callback_arg = ("heartbeat_stale_trial_callback"
                    if "heartbeat_stale_trial_callback" in inspect.signature(rdb).parameters
                    else "failed_trial_callback")
    from sqlalchemy.exc import SQLAlchemyError

    try:  # optuna's own heartbeat fails and re-queues the trials of dead workers
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return rdb(spec, heartbeat_interval=max(1, round(heartbeat_interval)),
                       grace_period=max(2, round(grace_period)),
                       **{callback_arg: retry_callback(max_retry)})
    except (ImportError, ValueError, SQLAlchemyError) as err:  # bad URL, missing driver
        raise ConfigError(f"config: sweep.storage={spec!r}: {' '.join(str(err).split())[:300]}") from None


def is_stale(trial, host: str, now: float, grace: float) -> bool:
    """A RUNNING trial whose worker is gone: its pid is dead on this host, or it has not beaten
    for `grace` seconds (a trial without a worker record counts from its start)."""
    worker = trial.user_attrs.get(WORKER)
    if worker:
        worker_host, _, pid = str(worker).rpartition(":")
        if worker_host == host and pid.isdigit() and not pid_alive(int(pid)):
            return True
        last = float(trial.user_attrs.get(HEARTBEAT, 0))
    else:
        last = trial.datetime_start.timestamp() if trial.datetime_start else now
    return now - last > grace


def recover_stale(study, storage, grace_period: float, max_retry: int | None) -> None:
    """Journal storage: fail each stale RUNNING trial and re-queue its values (optuna's
    RetryFailedTrialCallback), as RDBStorage's heartbeat does. Finished trials are untouched:
    the journal refuses to change a finished trial's state."""
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    if not isinstance(storage, optuna.storages.JournalStorage):
        return
    host, now = socket.gethostname(), time.time()
    retry = retry_callback(max_retry)
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_stale(trial, host, now, grace_period):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:  # another worker failed it first, or it just finished
            continue
        log.warning("Trial %d: its worker %s is gone; failed it and queued a retry",
                    trial.number, trial.user_attrs.get(WORKER, "(unknown)"))
        dead = copy.deepcopy(trial)
        dead.user_attrs = {k: v for k, v in dead.user_attrs.items() if k not in (WORKER, HEARTBEAT)}
        retry(study, dead)


@contextlib.contextmanager
def heartbeat(trial, interval: float):
    """Record this worker on the trial and refresh its heartbeat until the block ends."""
    trial.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")
    trial.set_user_attr(HEARTBEAT, time.time())
    stop = threading.Event()

    def beat():
        while not stop.wait(interval):
            trial.set_user_attr(HEARTBEAT, time.time())

    thread = threading.Thread(target=beat, name="tfnet-sweep-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()  # before optuna finishes the trial: a finished trial takes no attrs


def finished_or_running(study) -> int:
    from optuna.trial import TrialState
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                        TrialState.RUNNING)))
