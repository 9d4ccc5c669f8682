"""A composed config -> typed objects: each group merged into its schema (key names and types
checked, one line naming the field on a mistake), and the whole run as one `RunConfig`.

The families' hooks receive a `RunConfig` (attribute access, every default from its schema);
the run's DictConfig stays with the orchestration, for the run's identity and `.hydra/`.
"""
from __future__ import annotations

import re
import typing
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from tfnet_jax.errors import ConfigError
from tfnet_jax.schemas import data as data_schemas
from tfnet_jax.schemas import models as model_schemas
from tfnet_jax.schemas.checks import did_you_mean
from tfnet_jax.schemas.run import (DistributedConfig, NetworkConfig, PredictionsConfig, SplitConfig,
                                   TrainConfig)

DATA_SCHEMAS = {"synthetic": data_schemas.SyntheticData, "grn": data_schemas.GRNData,
                "genosim": data_schemas.GenoSimData, "cmap": data_schemas.CMapData,
                "dir": data_schemas.DirData, "anndata": data_schemas.AnnDataData,
                "expression": data_schemas.ExpressionSource, "genotypes": data_schemas.GenotypeSource}
MODEL_SCHEMAS = {"transcriptionnet": model_schemas.TranscriptionNetConfig,
                 "tfnet": model_schemas.TFNetConfig, "genonet": model_schemas.GenoNetConfig}
GROUP_SCHEMAS = {"train": TrainConfig, "split": SplitConfig, "predictions": PredictionsConfig,
                 "network": NetworkConfig, "distributed": DistributedConfig}
RUN_GROUPS = ("model", "data", "train", "split", "predictions", "network", "distributed")


@dataclass
class RunConfig:
    """One run's typed config: what every family hook receives."""
    seed: int
    model: Any  # the family's model schema (TranscriptionNetConfig, TFNetConfig, GenoNetConfig)
    data: Any   # the data source's schema (SyntheticData, DirData, GenoSimData, ...)
    train: TrainConfig
    split: SplitConfig
    predictions: PredictionsConfig
    network: NetworkConfig
    distributed: DistributedConfig
    data_fingerprint: str | None = None  # data passed in memory (the Python API)


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


def schema_for(group: str, node) -> type | None:
    if group in GROUP_SCHEMAS:
        return GROUP_SCHEMAS[group]
    if group == "data":
        return DATA_SCHEMAS.get(str(node.get("name")))
    if group == "model":
        return MODEL_SCHEMAS.get(str(node.get("family") or node.get("name")))
    return None


def typed_group(group: str, node, schema: type | None = None) -> Any:
    """`node` (a DictConfig or a plain dict) merged into its schema: the schema's dataclass
    instance (a plain dict where the group has no schema, e.g. a plug-in family's model)."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(node, (DictConfig, dict)):
        raise ConfigError(f"config: {group}={node!r}: expected a mapping (a config group)")
    schema = schema or schema_for(group, node)
    try:
        # Resolved first: interpolations such as ${seed} point outside this node.
        plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
        if schema is None:
            return plain
        known = {f.name for f in fields(schema)}
        unknown = sorted(set(plain) - known)
        if unknown:
            raise ConfigError(unknown_key(f"{group}.{unknown[0]}", sorted(known)))
        merged = OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(schema), plain))
        return _instance(schema, merged)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", "") or ""
        key = key if key.startswith(f"{group}.") else f"{group}.{key}".rstrip(".")
        raise ConfigError(type_error(key, str(getattr(err, "msg", None) or err).splitlines()[0])) from None


def _instance(schema: type, values: dict):
    """`schema(**values)`, nested schema fields built too and tuple fields as tuples (OmegaConf
    gives lists). A value the user must still set
    stays the string '???' (the loader that needs it names it), as in the composed config."""
    hints = typing.get_type_hints(schema)

    def value(name):
        hint, given = hints[name], values[name]
        if is_dataclass(hint) and isinstance(given, dict):
            return _instance(hint, given)
        return tuple(given) if typing.get_origin(hint) is tuple and isinstance(given, list) else given
    return schema(**{f.name: value(f.name) for f in fields(schema) if f.name in values})


def typed_config(cfg) -> RunConfig:
    """The run's typed config from a composed DictConfig (every run group must be there)."""
    seed = cfg.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"config: seed={seed!r}: must be an integer")
    groups = {group: typed_group(group, cfg[group] if group in cfg else {}) for group in RUN_GROUPS}
    return RunConfig(seed=seed, data_fingerprint=cfg.get("data_fingerprint"), **groups)
