"""Parallel hyperparameter search on optuna's Python API: `tfnet-sweep`.

    tfnet-sweep experiment=sweep_optuna [sweep.KEY=VALUE ...] [KEY=VALUE ...]

The composed config's `sweep:` block (configs/experiment/sweep_optuna.yaml) holds the search
space and the study settings; every other override passes through to each trial's config.
A trial composes the config with its sampled values as overrides and trains with
`run.train_and_evaluate` into SWEEP_DIR/<trial number>_<sampled values>, laid out like a Hydra
multirun (`.hydra/config.yaml`, `.hydra/overrides.yaml`, `metrics.json`) so `tfnet-collect
SWEEP_DIR` reads it. The objective is the run's best VALIDATION monitor value (metrics.json
`train.best_score`), never a test score; every evaluation's value is reported to the trial so
the pruner can stop a poor run early.

Workers (processes or cluster jobs) share one study through its storage: `journal:PATH` (an
append-only journal file with a link-based lock, safe on NFS) or an RDB URL (`sqlite:///PATH`,
`postgresql://...`). Each worker runs up to `sweep.n_trials` trials and stops early once the
study holds `sweep.total_trials` finished or running ones. A trial left RUNNING by a dead
worker (its pid gone on this host, or no heartbeat for `sweep.grace_period` s) is failed and
re-queued with the same values; the retry reuses the dead trial's run dir and so resumes from
its checkpoints. A finished trial is never changed. When a worker ends (and after every trial)
the best trial's value, overrides and full config are written to SWEEP_DIR/best.yaml and its
overrides to best_overrides.yaml.
"""
from __future__ import annotations

import contextlib
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from tfnet_jax.atomic import atomic_write_text
from tfnet_jax.cli import Command, plain_command
from tfnet_jax.config import compose
from tfnet_jax.errors import ConfigError, TrainingError
from tfnet_jax.experiments.optuna_storage import (finished_or_running, heartbeat, open_storage,
                                                  recover_stale)

log = logging.getLogger(__name__)

SETTINGS = ("dir", "storage", "study_name", "direction", "n_trials", "total_trials", "worker",
            "sampler", "pruner", "params", "heartbeat_interval", "grace_period", "max_retry")
PARAM_KEYS = {"categorical": {"choices"}, "float": {"low", "high", "log", "step"},
              "int": {"low", "high", "log", "step"}}
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "percentile", "successive_halving", "hyperband")
SAFE_VALUE = re.compile(r"^[\w.+-]+$")


# ---------------------------------------------------------------- settings and search space
@dataclass(frozen=True)
class Settings:
    dir: Path
    storage: str
    study_name: str
    direction: str
    n_trials: int
    total_trials: int | None
    worker: int
    sampler: dict
    pruner: dict | None
    heartbeat_interval: float
    grace_period: float
    max_retry: int | None


def _int(name: str, value, low: int = 0, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"config: sweep.{name}={value!r}: expected an integer >= {low}")
    return value


def read_settings(cfg: DictConfig) -> Settings:
    """The validated `sweep:` block; the direction follows `train.monitor_mode`."""
    node = cfg.get("sweep")
    if not isinstance(node, DictConfig):
        raise ConfigError("config: no `sweep:` block; use experiment=sweep_optuna or a config "
                          "that defines one")
    raw = OmegaConf.to_container(node, resolve=True)
    unknown = sorted(set(raw) - set(SETTINGS))
    if unknown:
        raise ConfigError(f"config: sweep.{unknown[0]}: unknown key; valid keys of sweep: "
                          f"{', '.join(SETTINGS)}")
    wanted = "maximize" if cfg.train.monitor_mode == "max" else "minimize"
    direction = raw.get("direction") or wanted
    if direction != wanted:
        raise ConfigError(f"config: sweep.direction={direction!r}: the objective is "
                          f"{cfg.train.monitor} with train.monitor_mode={cfg.train.monitor_mode}, "
                          f"so it must be {wanted!r}")
    sweep_dir = Path(raw.get("dir") or "outputs/experiments/sweep_optuna")
    interval = raw.get("heartbeat_interval", 60)
    grace = raw.get("grace_period", 180)
    if not (isinstance(interval, (int, float)) and interval > 0 and isinstance(grace, (int, float))
            and grace > interval):
        raise ConfigError(f"config: sweep.heartbeat_interval={interval!r}, sweep.grace_period="
                          f"{grace!r}: expected numbers with 0 < heartbeat_interval < grace_period")
    sampler = dict(raw.get("sampler") or {})
    pruner = raw.get("pruner")
    for name, spec, known in (("sampler", sampler, SAMPLERS), ("pruner", pruner, PRUNERS)):
        kind = (spec or {}).get("type", "tpe" if name == "sampler" else None)
        if spec and kind not in known:
            raise ConfigError(f"config: sweep.{name}.type={kind!r}: expected one of "
                              f"{', '.join(known)}")
    return Settings(dir=sweep_dir, storage=raw.get("storage") or f"journal:{sweep_dir / 'study.journal'}",
                    study_name=str(raw.get("study_name") or "tfnet_sweep"), direction=direction,
                    n_trials=_int("n_trials", raw.get("n_trials", 1), 1),
                    total_trials=_int("total_trials", raw.get("total_trials"), 1, allow_none=True),
                    worker=_int("worker", raw.get("worker", 0)), sampler=sampler,
                    pruner=dict(pruner) if pruner else None, heartbeat_interval=float(interval),
                    grace_period=float(grace),
                    max_retry=_int("max_retry", raw.get("max_retry", 3), 0, allow_none=True))


def read_space(params) -> dict[str, dict]:
    """{dotted config key: spec}; keys may be written flat (`model.hidden:`) or nested."""
    space: dict[str, dict] = {}

    def walk(node, prefix):
        if not isinstance(node, dict) or not node:
            where = f"sweep.params.{prefix}" if prefix else "sweep.params"
            raise ConfigError(f"config: {where}={node!r}: expected a mapping (a parameter: "
                              f"`type` and its settings)")
        if "type" in node:
            space[prefix] = _check_param(prefix, node)
            return
        for key, value in node.items():
            walk(value, f"{prefix}.{key}" if prefix else str(key))

    walk(params, "")
    return space


def _check_param(key: str, spec: dict) -> dict:
    kind = spec["type"]
    where = f"config: sweep.params.{key}"
    if kind not in PARAM_KEYS:
        raise ConfigError(f"{where}.type={kind!r}: expected one of {', '.join(PARAM_KEYS)}")
    unknown = sorted(set(spec) - PARAM_KEYS[kind] - {"type"})
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key; valid keys for type {kind}: "
                          f"type, {', '.join(sorted(PARAM_KEYS[kind]))}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices or any(
                not isinstance(c, (bool, int, float, str)) for c in choices):
            raise ConfigError(f"{where}.choices={choices!r}: expected a non-empty list of scalars")
        return spec
    number = float if kind == "float" else int
    low, high = spec.get("low"), spec.get("high")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) \
            or low >= high or (spec.get("log") and low <= 0):
        raise ConfigError(f"{where}: low={low!r}, high={high!r}: expected numbers low < high "
                          f"(low > 0 with log: true)")
    return {**spec, "low": number(low), "high": number(high)}


def suggest(trial, key: str, spec: dict):
    if spec["type"] == "categorical":
        return trial.suggest_categorical(key, spec["choices"])
    method = trial.suggest_float if spec["type"] == "float" else trial.suggest_int
    return method(key, spec["low"], spec["high"], log=bool(spec.get("log", False)),
                  step=spec.get("step"))


def label(values: dict) -> str:
    """A readable run dir suffix (`hidden=32,learning_rate=0.0009`); the trial number in
    front keeps dirs unique, so floats are shortened here (not in the overrides)."""
    from tfnet_jax.run import run_name

    short = {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in values.items()}
    return run_name(",".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in sorted(short.items())))


def override(key: str, value) -> str:
    """`key=value` in Hydra's override grammar (strings quoted unless plain)."""
    if isinstance(value, bool) or value is None:
        text = "null" if value is None else str(value).lower()
    elif isinstance(value, (int, float)):
        text = repr(value)
    else:
        text = value if SAFE_VALUE.match(value) else "'" + value.replace("'", "\\'") + "'"
    return f"{key}={text}"


def trial_overrides(argv: list[str]) -> list[str]:
    """The overrides that reach every trial: all but `sweep.*` (Hydra's own are refused)."""
    trial_args = []
    for arg in argv:
        key = arg.lstrip("+~").partition("=")[0]
        if "=" not in arg and not arg.startswith("~"):
            raise ConfigError(f"argument {arg!r}: expected a KEY=VALUE override")
        if key == "hydra" or key.startswith("hydra."):
            raise ConfigError(f"argument {arg!r}: tfnet-sweep does not run Hydra; set the sweep "
                              f"dir with sweep.dir=DIR")
        if key != "sweep" and not key.startswith("sweep."):
            trial_args.append(arg)
    return trial_args


def trial_config(overrides: list[str]) -> DictConfig:
    """The composed, validated config of one trial, without the sweep block (it changes no
    result, so the run's identity and config.yaml leave it out)."""
    cfg = compose(overrides)
    with open_dict(cfg):
        cfg.pop("sweep", None)
    return cfg


def check_space(trial_args: list[str], space: dict[str, dict]) -> None:
    """Compose once with every parameter at a sample value: a key typo fails before any trial."""
    sample = {k: s["choices"][0] if s["type"] == "categorical" else s["low"] for k, s in space.items()}
    try:
        trial_config([*trial_args, *(override(k, v) for k, v in sample.items())])
    except ConfigError as err:
        raise ConfigError(f"config: sweep.params: {str(err).removeprefix('config: ')}") from None


# ---------------------------------------------------------------- study
def make_sampler(settings: Settings):
    import optuna

    options = {k: v for k, v in settings.sampler.items() if k != "type"}
    if options.get("seed") is not None:  # workers of one study must not draw the same values
        options["seed"] = int(options["seed"]) + settings.worker
    cls = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}[
        settings.sampler.get("type", "tpe")]
    return _build(cls, options, "sampler")


def make_pruner(settings: Settings):
    import optuna

    if settings.pruner is None:
        return optuna.pruners.NopPruner()
    options = {k: v for k, v in settings.pruner.items() if k != "type"}
    cls = {"median": optuna.pruners.MedianPruner, "percentile": optuna.pruners.PercentilePruner,
           "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
           "hyperband": optuna.pruners.HyperbandPruner}[settings.pruner["type"]]
    return _build(cls, options, "pruner")


def _build(cls, options: dict, name: str):
    try:
        return cls(**options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"config: sweep.{name}: {' '.join(str(err).split())}") from None


# ---------------------------------------------------------------- trials
def make_objective(settings: Settings, space: dict[str, dict], trial_args: list[str],
                   monitor: str, journal: bool):
    import optuna
    from tfnet_jax.run import train_and_evaluate

    def on_eval_for(trial):
        def on_eval(step: int, metrics: dict) -> None:
            trial.report(float(metrics[monitor]), step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"{monitor} at step {step}")
        return on_eval

    def objective(trial) -> float:
        values = {key: suggest(trial, key, spec) for key, spec in space.items()}
        overrides = [*trial_args, *(override(k, v) for k, v in values.items())]
        # A retry resumes the dead trial's run dir (same values, so the same run identity).
        number = retried_from(trial)
        run_dir = settings.dir / f"{trial.number if number is None else number}_{label(values)}"
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("overrides", overrides)
        cfg = trial_config(overrides)
        on_eval = on_eval_for(trial) if settings.pruner else None
        with heartbeat(trial, settings.heartbeat_interval) if journal else contextlib.nullcontext():
            metrics = train_and_evaluate(cfg, run_dir, overrides=overrides, on_eval=on_eval)
        best = metrics["train"]["best_score"]  # the best VALIDATION monitor value, not a test score
        if best is None or not math.isfinite(best):
            raise TrainingError(f"trial {trial.number}: no finite {monitor} in {run_dir}")
        return float(best)

    return objective


def retried_from(trial) -> int | None:
    """The number of the dead trial that `trial` retries (RetryFailedTrialCallback's record)."""
    frozen = trial.study.trials[trial.number]  # trials are listed by number
    return frozen.system_attrs.get("failed_trial")


def write_best(study, settings: Settings, monitor: str) -> Path | None:
    """SWEEP_DIR/best.yaml (value, trial, overrides, full config) and best_overrides.yaml."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    best = study.best_trial
    overrides = list(best.user_attrs.get("overrides", []))
    run_dir = Path(best.user_attrs.get("run_dir", ""))
    saved = run_dir / ".hydra" / "config.yaml"
    config = OmegaConf.load(saved) if saved.is_file() else trial_config(overrides)
    record = OmegaConf.create({
        "study_name": study.study_name, "direction": settings.direction, "metric": monitor,
        "value": float(best.value), "trial": best.number, "run_dir": str(run_dir),
        "params": dict(best.params), "overrides": overrides,
        "finished_trials": len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))),
        "config": config})
    path = settings.dir / "best.yaml"
    atomic_write_text(path, OmegaConf.to_yaml(record))
    atomic_write_text(settings.dir / "best_overrides.yaml",
                      OmegaConf.to_yaml(OmegaConf.create(overrides)))
    return path


def sweep(argv: list[str]):
    """One worker: compose, check the search space, then run trials on the shared study."""
    import optuna

    trial_args = trial_overrides(argv)
    cfg = compose(argv)  # validates every override, the sweep block's included
    settings = read_settings(cfg)
    params = cfg.sweep.get("params")
    space = read_space(None if params is None else OmegaConf.to_container(params, resolve=True))
    check_space(trial_args, space)
    storage = open_storage(settings.storage, settings.heartbeat_interval, settings.grace_period,
                           settings.max_retry)
    study = optuna.create_study(storage=storage, study_name=settings.study_name,
                                direction=settings.direction, sampler=make_sampler(settings),
                                pruner=make_pruner(settings), load_if_exists=True)
    journal = isinstance(storage, optuna.storages.JournalStorage)
    monitor = str(cfg.train.monitor)
    objective = make_objective(settings, space, trial_args, monitor, journal)
    log.info("Study %s (%s, %s %s): up to %d trial(s) in this worker into %s",
             settings.study_name, settings.storage, settings.direction, monitor,
             settings.n_trials, settings.dir)
    for _ in range(settings.n_trials):
        recover_stale(study, storage, settings.grace_period, settings.max_retry)
        if settings.total_trials is not None and finished_or_running(study) >= settings.total_trials:
            log.info("The study holds %d finished or running trial(s): done", settings.total_trials)
            break
        # A diverged trial (non-finite loss) is a FAILED trial, not the end of the sweep.
        study.optimize(objective, n_trials=1, catch=(TrainingError,))
        write_best(study, settings, monitor)
    path = write_best(study, settings, monitor)
    if path is not None:
        log.info("Best trial %d: %s = %.4f; %s", study.best_trial.number, monitor,
                 study.best_value, path)
    return study


SWEEP = Command(
    name="tfnet-sweep",
    usage="experiment=sweep_optuna [sweep.KEY=VALUE ...] [KEY=VALUE ...]",
    summary=("One worker of an Optuna hyperparameter search over the config's `sweep.params`: "
             "each trial trains a run (run.train_and_evaluate) into sweep.dir/<trial>_<values> and "
             "scores its best validation monitor; pruning follows the validation curve. Start "
             "several workers with the same sweep.storage (journal:PATH or an RDB URL) to share "
             "one study; give each a distinct sweep.worker=I (sampler seed offset). Re-running "
             "retries the trials of dead workers. Writes best.yaml and best_overrides.yaml."),
    example="tfnet-sweep experiment=sweep_optuna sweep.n_trials=30",
)


@plain_command(SWEEP)
def main(argv: list[str]) -> None:
    sweep(argv)


if __name__ == "__main__":
    main()
