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
import re
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Sequence

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from tfnet_jax import schemas
from tfnet_jax.config_checks import check_values
from tfnet_jax.schemas.checks import did_you_mean
from tfnet_jax.errors import ConfigError
from tfnet_jax.schemas.commands import COMMAND_SCHEMAS

DATA_SCHEMAS = {"synthetic": schemas.SyntheticData, "grn": schemas.GRNData,
                "genosim": schemas.GenoSimData, "cmap": schemas.CMapData, "dir": schemas.DirData,
                "anndata": schemas.AnnDataData,
                "expression": schemas.ExpressionSource, "genotypes": schemas.GenotypeSource}
MODEL_SCHEMAS = {"transcriptionnet": schemas.TranscriptionNetConfig, "tfnet": schemas.TFNetConfig,
                 "genonet": schemas.GenoNetConfig}
GROUP_SCHEMAS = {"train": schemas.TrainConfig, "split": schemas.SplitConfig,
                 "predictions": schemas.PredictionsConfig, "network": schemas.NetworkConfig,
                 "distributed": schemas.DistributedConfig}


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


def unknown_key(key: str, known: list[str] | None) -> str:
    """`config: model.hiden: unknown key; did you mean model.hidden? valid keys of model: ...`"""
    if not known:
        return f"config: {key}: unknown key"
    group, _, name = key.rpartition(".")
    return (f"config: {key}: unknown key; "
            f"{did_you_mean(name, known, f'{group}.' if group else '')}valid keys of "
            f"{group or 'config'}: {', '.join(known)}")


TYPE_WORDS = {"Float": "a number", "Integer": "an integer", "Boolean": "true or false",
              "String": "a string"}


def type_error(key: str, message: str) -> str:
    """`config: train.learning_rate='abc': expected a number` from OmegaConf's conversion error."""
    found = re.match(r"Value '(.*)' of type '\w+' could not be converted to (\w+)", message)
    if found:
        value, kind = found.groups()
        return f"config: {key}={value!r}: expected {TYPE_WORDS.get(kind, kind)}"
    return f"config: {key}: {message}"


# ---------------------------------------------------------------- validation
def _schema_for(group: str, node: DictConfig):
    if group in GROUP_SCHEMAS:
        return GROUP_SCHEMAS[group]
    if group == "data":
        return DATA_SCHEMAS.get(str(node.get("name")))
    if group == "model":
        return MODEL_SCHEMAS.get(str(node.get("family") or node.get("name")))
    return None


def _typed(group: str, node) -> dict:
    """`node` merged into its schema (types and key names checked), as a plain resolved dict."""
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(node, DictConfig):
        raise ConfigError(f"config: {group}={node!r}: expected a mapping (a config group)")
    schema = _schema_for(group, node)
    try:
        # Resolved first: interpolations such as ${seed} point outside this node.
        plain = OmegaConf.to_container(node, resolve=True)
        if schema is None:
            return plain
        known = {f.name for f in fields(schema)}
        unknown = sorted(set(plain) - known)
        if unknown:
            raise ConfigError(unknown_key(f"{group}.{unknown[0]}", sorted(known)))
        return OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(schema), plain))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", "") or ""
        key = key if key.startswith(f"{group}.") else f"{group}.{key}".rstrip(".")
        raise ConfigError(type_error(key, str(getattr(err, "msg", None) or err).splitlines()[0])) from None


def validate(cfg: DictConfig, experiment: str | None = None) -> None:
    """Raise a one-line ConfigError at the first bad field of a composed config.

    `experiment` names the chosen experiment in messages; None: Hydra's choice when run under
    `hydra.main`.
    """
    if experiment is None:
        experiment = _hydra_choice("experiment")
    seed = cfg.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"config: seed={seed!r}: must be an integer")
    model = cfg.get("model") or {}
    family = model.get("family") or model.get("name")
    declared = cfg.get("experiment_family")
    if declared and family and declared != family:  # first: the clearest message for this mistake
        raise family_mismatch(experiment or "?", declared, family, model.get("name", family))
    groups = {group: _typed(group, cfg[group]) for group in ("model", "data", "train", "split",
                                                             "predictions", "network", "distributed")
              if group in cfg}
    check_values(groups, family)


def _hydra_choice(group: str) -> str | None:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().runtime.choices.get(group)


def schema_defaults(schema) -> dict:
    """A schema's defaults as plain values (tuples as lists), for comparing with yaml files."""
    return OmegaConf.to_container(OmegaConf.structured(schema), resolve=False)
