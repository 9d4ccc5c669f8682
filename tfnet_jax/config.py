"""Typed Hydra configs: schema registration, `compose` and `validate`.

Importing this module registers every schema of `tfnet_jax.schemas` with Hydra's ConfigStore
(group files start from `base_<option>`), so it must run before Hydra composes; it imports no
jax. `validate(cfg)` checks a composed config and raises a one-line `ConfigError` naming the
field and the allowed values; `compose(overrides)` composes the packaged configs and validates.

Experiments are scoped to a family by a top-level `experiment_family` key that every
experiment file sets: one flat `experiment=` group keeps the command line short
(`model=tfnet experiment=smoke_tfnet`), and the key lets a wrong pairing fail with a clear
message before the experiment's model keys fail as unknown keys of the other family's schema.
"""
from __future__ import annotations

import functools
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Sequence

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from tfnet_jax.config_checks import check_values
from tfnet_jax.errors import ConfigError
from tfnet_jax.schemas.commands import COMMAND_SCHEMAS
from tfnet_jax.schemas.typed import (DATA_SCHEMAS, GROUP_SCHEMAS, MODEL_SCHEMAS, RUN_GROUPS, RunConfig,
                                     type_error, typed_config, unknown_key)

def register() -> None:
    """Store each schema as `<group>/base_<option>` (idempotent: the store is keyed by name)."""
    store = ConfigStore.instance()
    for group, node in GROUP_SCHEMAS.items():
        store.store(group=group, name=f"base_{group}", node=node)
    for name, node in DATA_SCHEMAS.items():
        store.store(group="data", name=f"base_{name}", node=node)
    for name, node in MODEL_SCHEMAS.items():
        store.store(group="model", name=f"base_{name}", node=node)
    for name, node in COMMAND_SCHEMAS.items():  # the analysis commands' primary configs
        store.store(name=f"base_{name}", node=node)


register()


# ---------------------------------------------------------------- composition
@functools.cache
def config_dir() -> str:
    """The Hydra config directory: `configs/` at the repository root is the only copy.

    A wheel or `pip install .` carries it inside the package (setup.py maps
    tfnet_jax.configs -> configs); a source checkout or editable install has it beside
    the package.
    """
    package = Path(__file__).resolve().parent
    for candidate in (package / "configs", package.parent / "configs"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise ConfigError(f"no Hydra configs (config.yaml) in {package / 'configs'} or "
                      f"{package.parent / 'configs'}: reinstall tfnet_jax")


def compose(overrides: Sequence[str] = (), config_name: str = "config") -> DictConfig:
    """The packaged config `config_name` with Hydra `overrides`, validated (Python API, tests)."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = list(overrides)
    directory = config_dir()
    if config_name == "config":
        check_experiment_family(overrides, directory)
    with initialize_config_dir(config_dir=directory, version_base="1.3"):
        try:
            cfg = hydra_compose(config_name=config_name, overrides=overrides)
        except (HydraException, OmegaConfBaseException) as err:
            raise ConfigError(describe_error(err)) from None
    if config_name == "config":
        validate(cfg, experiment=_choice(overrides, "experiment"))
    return cfg


def _choice(overrides: Sequence[str], group: str) -> str | None:
    """The option of `group` chosen on the command line (`group=x`, `+group=x`, `++group=x`)."""
    for item in overrides:
        key, sep, value = item.lstrip("+").partition("=")
        if sep and key == group:
            return value
    return None


def _yaml(path: Path) -> DictConfig | None:
    return OmegaConf.load(path) if path.is_file() else None


def model_family(model: str, directory: str | None = None) -> str | None:
    """The family of model option `model`: its yaml's `family`, else its schema's."""
    text = _yaml(Path(directory or config_dir()) / "model" / f"{model}.yaml")
    if text is None:
        return None
    if text.get("family"):
        return str(text.family)
    for entry in text.get("defaults", []):
        if isinstance(entry, str) and entry.startswith("base_") and entry[5:] in MODEL_SCHEMAS:
            return MODEL_SCHEMAS[entry[5:]].family
    return None


def experiment_family(experiment: str, directory: str | None = None) -> str | None:
    text = _yaml(Path(directory or config_dir()) / "experiment" / f"{experiment}.yaml")
    return None if text is None else text.get("experiment_family")


def family_mismatch(experiment: str, declared: str, family: str, model: str) -> ConfigError:
    kind = "" if model == family else f" (a {family} model)"
    return ConfigError(f"config: experiment={experiment} is a {declared} experiment; it cannot be "
                       f"used with model={model}{kind}")


def check_experiment_family(overrides: Sequence[str], directory: str | None = None) -> None:
    """Before composing: an experiment written for another family fails with one clear line.

    (Composed, the experiment's model keys would first fail as unknown keys of the other schema.)
    """
    experiment = _choice(overrides, "experiment")
    if not experiment or experiment == "null":
        return
    model = _choice(overrides, "model") or "transcriptionnet"  # config.yaml's default
    declared = experiment_family(experiment, directory)
    family = model_family(model, directory)
    if declared and family and declared != family:
        raise family_mismatch(experiment, declared, family, model)


# Launcher configs that Hydra plugins provide (configs/hydra/launcher/*.yaml extend them).
LAUNCHER_PLUGINS = {"submitit_slurm": "hydra-submitit-launcher",
                    "submitit_local": "hydra-submitit-launcher", "joblib": "hydra-joblib-launcher"}


def describe_error(err: Exception) -> str:
    """One line for a Hydra / OmegaConf composition error: the field and what it accepts."""
    options = getattr(err, "options", None)
    missing = getattr(err, "missing_cfg_file", None)
    group, _, option = str(missing).rpartition("/")
    if missing and group == "hydra/launcher" and option in LAUNCHER_PLUGINS:
        return (f"config: hydra/launcher: {option} needs the {LAUNCHER_PLUGINS[option]} plugin; "
                f'pip install "tfnet_jax[cluster]"')
    if missing and options is not None:  # e.g. data=synthtic
        valid = ", ".join(o for o in sorted(options) if not o.startswith("base_"))
        return f"config: {group}={option}: no such option; expected one of {valid}"
    if type(err).__name__ == "OverrideParseException":  # Hydra's grammar: a path with spaces, ...
        return (f"config: {getattr(err, 'override', '?')}: cannot parse this override; quote a "
                f"value that holds spaces, brackets, commas or quotes: key='my value' (in the "
                f"shell: \"key='my value'\")")
    cause = err.__cause__ or err
    key = getattr(cause, "full_key", None)
    if key:
        schema = getattr(cause, "object_type", None)
        message = str(getattr(cause, "msg", None) or cause).splitlines()[0]
        if "not in" in message or "is not in struct" in message:
            parent = getattr(cause, "parent_node", None)
            known = (sorted(f.name for f in fields(schema)) if schema is not None
                     and is_dataclass(schema) else sorted(map(str, parent.keys()))
                     if hasattr(parent, "keys") else None)
            return unknown_key(str(key), known)
        return type_error(str(key), message)
    return "config: " + " ".join(str(err).split("Config search path:")[0].split())


# ---------------------------------------------------------------- validation
def validate(cfg: DictConfig, experiment: str | None = None) -> RunConfig:
    """The run's typed config (`RunConfig`, what the families' hooks receive), or a one-line
    ConfigError at the first bad field of a composed config.

    `experiment` names the chosen experiment in messages; None: Hydra's choice when run under
    `hydra.main`.
    """
    if experiment is None:
        experiment = _hydra_choice("experiment")
    model = cfg.get("model") or {}
    family = model.get("family") or model.get("name")
    declared = cfg.get("experiment_family")
    if declared and family and declared != family:  # first: the clearest message for this mistake
        raise family_mismatch(experiment or "?", declared, family, model.get("name", family))
    typed = typed_config(cfg)
    check_values({group: _plain(getattr(typed, group)) for group in RUN_GROUPS if group in cfg}, family)
    return typed


def _plain(group) -> dict:
    """A typed group as the plain dict the range checks read."""
    import dataclasses
    return dataclasses.asdict(group) if dataclasses.is_dataclass(group) else group


def _hydra_choice(group: str) -> str | None:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().runtime.choices.get(group)


def schema_defaults(schema) -> dict:
    """A schema's defaults as plain values (tuples as lists), for comparing with yaml files."""
    return OmegaConf.to_container(OmegaConf.structured(schema), resolve=False)
