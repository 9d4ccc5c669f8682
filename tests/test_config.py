"""Typed configs: every experiment x family composes or fails clearly, bad values name their
field, no group yaml repeats a schema default, one data-seed policy. No training here."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose as hydra_compose, initialize_config_dir
from omegaconf import OmegaConf

from tfnet_jax.config import (DATA_SCHEMAS, GROUP_SCHEMAS, MODEL_SCHEMAS, compose, config_dir,
                              schema_defaults, validate)
from tfnet_jax.errors import ConfigError
from tfnet_jax.schemas import FAMILY_NAMES

CONFIGS = Path(config_dir())
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONFIGS / "model").glob("*.yaml"))
SCHEMA_GROUPS = ("data", "model", "train", "split", "predictions", "network")


def raw_compose(overrides):
    """Hydra's compose without our checks (what the entry point receives before validate)."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


def declared_family(experiment):
    return OmegaConf.load(CONFIGS / "experiment" / f"{experiment}.yaml").get("experiment_family")


# ---------------------------------------------------------------- experiments x families
def test_every_experiment_declares_a_family_and_smoke_runs_exist_for_each():
    families = {e: declared_family(e) for e in EXPERIMENTS}
    assert all(f in FAMILY_NAMES for f in families.values()), families
    assert {"smoke", "smoke_tfnet", "smoke_genonet"} <= set(EXPERIMENTS)
    assert families["smoke_tfnet"] == "tfnet" and families["smoke_genonet"] == "genonet"


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_with_family(experiment, model):
    family = MODEL_SCHEMAS[model].family
    overrides = [f"model={model}", f"experiment={experiment}"]
    if declared_family(experiment) == family:
        cfg = compose(overrides)
        assert cfg.model.family == family and cfg.experiment_family == family
    else:
        with pytest.raises(ConfigError) as err:
            compose(overrides)
        assert (f"experiment={experiment} is a {declared_family(experiment)} experiment; "
                f"it cannot be used with model={model}") in str(err.value)
        assert "\n" not in str(err.value)


def test_validate_rejects_an_experiment_of_another_family_after_composition():
    cfg = raw_compose(["experiment=smoke"])
    validate(cfg)
    cfg.experiment_family = "genonet"
    with pytest.raises(ConfigError, match="is a genonet experiment; it cannot be used with "
                                          "model=transcriptionnet"):
        validate(cfg, experiment="smoke")


# ---------------------------------------------------------------- bad values
@pytest.mark.parametrize("overrides, message", [
    (["train.learning_rate=abc"], "config: train.learning_rate='abc': expected a number"),
    (["model.hidden=-5"], "config: model.hidden=-5: must be a positive integer"),
    (["model.hiden=3"], "config: model.hiden: unknown key; valid keys of model: "),
    (["+model.hiden=3"], "config: model.hiden: unknown key; valid keys of model: "),
    (["train.monitor=valid/nope"], "config: train.monitor='valid/nope': model.family="
                                   "transcriptionnet reports one of valid/pearson_delta"),
    (["model=tfnet", "train.monitor=valid/pearson_delta"], "train.monitor='valid/pearson_delta'"),
    (["model=genonet", "train.monitor=valid/variance_explained"], "reports one of valid/r2_mean"),
    (["train.monitor_mode=maximum"], "config: train.monitor_mode='maximum': expected one of max, min"),
    (["data=synthtic"], "config: data=synthtic: no such option; expected one of "),
    (["train.batch_size=0"], "config: train.batch_size=0: must be a positive integer"),
    (["train.eval_every=0"], "config: train.eval_every=0: must be a positive integer"),
    (["train.log_every=-1"], "config: train.log_every=-1: must be a positive integer"),
    (["train.max_steps=0"], "config: train.max_steps=0: must be a positive integer"),
    (["train.learning_rate=-0.1"], "config: train.learning_rate=-0.1: must be a positive number"),
    (["train.optimizer=adamx"], "config: train.optimizer='adamx': expected one of adam, adamw, sgd"),
    (["train.schedule=linear"], "config: train.schedule='linear': expected one of constant"),
    (["model.dropout=1.0"], "config: model.dropout=1.0: must lie in [0, 1)"),
    (["model.fusion=sum"], "config: model.fusion='sum': expected one of attention, mean"),
    (["model.node_input=nodes"], "config: model.node_input='nodes': expected one of auto"),
    (["model.skip_init=ones"], "config: model.skip_init='ones': expected one of zeros, ridge"),
    (["model=tfnet", "model.activation=swish"], "config: model.activation='swish': expected one of elu"),
    (["model=tfnet", "model.hidden=[64,0]"], "config: model.hidden=[64, 0]: must be a list of positive"),
    (["model=genonet", "model.linear_init=ridge"], "config: model.linear_init='ridge': expected one of"),
    (["model=tfnet", "data=expression", "data.transform=log2"], "config: data.transform='log2': "
                                                                "expected one of none, log1p"),
    (["split.valid_frac=0"], "config: split.valid_frac=0.0: must lie in (0, 1)"),
    (["split.test_frac=1.5"], "config: split.test_frac=1.5: must lie in (0, 1)"),
    (["split.valid_frac=0.5", "split.test_frac=0.5"], "split.valid_frac + split.test_frac (0.5) "
                                                      "must be below 1"),
    (["model=genonet", "split.folds=1"], "config: split.folds=1: must be an integer >= 2"),
    (["network.ablation=only_x"], "config: network.ablation='only_x': expected all, only_<i>"),
    (["data.pert_types=[RNAi,XX]"], "config: data.pert_types=['RNAi', 'XX']: expected a list of"),
    (["model=tfnet", "data.num_tfs=many"], "config: data.num_tfs='many': expected an integer"),
    (["seed=abc"], "config: seed='abc': must be an integer"),
    (["model=tfnet", "data=synthetic"], "config: data.name='synthetic': model.family=tfnet reads "
                                        "data=grn | data=expression"),
    (["experiment=nope"], "config: experiment=nope: no such option; expected one of ablate_"),
])
def test_bad_value_is_one_line_naming_the_field(overrides, message):
    with pytest.raises(ConfigError) as err:
        compose(overrides)
    # The closest valid value, when one is close, comes first: "did you mean X? expected ..."
    assert message in re.sub(r"did you mean \S+\? ", "", str(err.value))
    assert "\n" not in str(err.value)


def test_unknown_key_message_lists_the_valid_keys():
    with pytest.raises(ConfigError) as err:
        compose(["model=tfnet", "model.hiden=3"])
    valid = str(err.value).split("valid keys of model: ")[1].split(", ")
    assert "hidden" in valid and "activation" in valid and "gat_layers" not in valid


def test_validate_checks_a_plain_config_too():
    """A config read back from a run dir has no schema: validate still checks keys and types."""
    plain = OmegaConf.create(OmegaConf.to_container(raw_compose(["model=tfnet"]), resolve=True))
    validate(plain)
    plain.train.learning_rate = "fast"
    with pytest.raises(ConfigError, match=r"train.learning_rate='fast': expected a number"):
        validate(plain)
    plain.train.learning_rate = 1e-3
    plain.model.hidden_units = 3
    with pytest.raises(ConfigError, match=r"model.hidden_units: unknown key; did you mean "
                                          r"model.hidden\? valid keys of model"):
        validate(plain)


# ---------------------------------------------------------------- one definition of each default
def group_schema(group: str, option: str):
    """The schema a group file starts from, following its defaults list (`base_X` or a sibling)."""
    text = OmegaConf.load(CONFIGS / group / f"{option}.yaml")
    for entry in text.get("defaults", []):
        if not isinstance(entry, str) or entry == "_self_":
            continue
        if entry.startswith("base_"):
            return {**GROUP_SCHEMAS, **{f"data/{k}": v for k, v in DATA_SCHEMAS.items()},
                    **{f"model/{k}": v for k, v in MODEL_SCHEMAS.items()}}[
                group if group in GROUP_SCHEMAS else f"{group}/{entry[5:]}"]
        return group_schema(group, entry)
    raise AssertionError(f"{group}/{option}.yaml does not start from a schema")


def repeated_defaults(values: dict, defaults: dict, prefix: str = "") -> list[str]:
    """Keys of `values` that equal their default (nested dicts compared key by key)."""
    repeated = []
    for key, value in values.items():
        if key == "defaults" or key not in defaults:
            continue
        if isinstance(value, dict) and isinstance(defaults[key], dict):
            repeated += repeated_defaults(value, defaults[key], f"{prefix}{key}.")
        elif value == defaults[key]:
            repeated.append(f"{prefix}{key}")
    return repeated


def test_repeated_defaults_detects_a_copied_default():
    defaults = schema_defaults(MODEL_SCHEMAS["genonet"])
    assert repeated_defaults({"hidden": 16, "channels": 8}, defaults) == ["hidden"]
    assert repeated_defaults({"elastic_net": {"alpha": 0.5}}, defaults) == ["elastic_net.alpha"]
    assert repeated_defaults(schema_defaults(DATA_SCHEMAS["grn"]) | {"defaults": []},
                             schema_defaults(DATA_SCHEMAS["grn"]))  # tuples compare as lists


GROUP_FILES = [(g, p.stem) for g in SCHEMA_GROUPS for p in sorted((CONFIGS / g).glob("*.yaml"))]


@pytest.mark.parametrize("group, option", GROUP_FILES)
def test_group_file_lists_only_values_that_differ_from_its_schema(group, option):
    schema = group_schema(group, option)
    values = OmegaConf.to_container(OmegaConf.load(CONFIGS / group / f"{option}.yaml"))
    assert not repeated_defaults(values, schema_defaults(schema)), \
        f"{group}/{option}.yaml repeats defaults of {schema.__name__}"
    unknown = set(values) - set(schema_defaults(schema)) - {"defaults"}
    assert not unknown, f"{group}/{option}.yaml: keys not in {schema.__name__}: {unknown}"


def test_every_schema_has_a_group_file():
    for name in DATA_SCHEMAS:
        assert (CONFIGS / "data" / f"{name}.yaml").is_file()
    for name, schema in MODEL_SCHEMAS.items():
        assert (CONFIGS / "model" / f"{name}.yaml").is_file()
        assert {"name", "family", "_target_", "options"} <= set(schema_defaults(schema))


# ---------------------------------------------------------------- split and seeds
@pytest.mark.parametrize("model, folds", [("transcriptionnet", None), ("tfnet", None), ("genonet", 5)])
def test_one_split_group_for_every_family(model, folds):
    cfg = compose([f"model={model}", "seed=3"])
    assert cfg.split.folds == folds and cfg.split.seed == cfg.train.seed == 3
    assert "outer_folds" not in cfg.model and "valid_frac" not in cfg.model


@pytest.mark.parametrize("model", ["transcriptionnet", "tfnet", "genonet"])
def test_data_seed_stays_fixed_while_seed_varies(model):
    """Seeds are training replicates on one data set: data.seed does not follow `seed`."""
    seeds = {compose([f"model={model}", f"seed={s}"]).data.seed for s in (0, 1, 7)}
    assert seeds == {0}
    assert compose([f"model={model}", "data.seed=4"]).data.seed == 4


@pytest.mark.parametrize("overrides", [["data=dir"], ["data=cmap"], ["data=synthetic_small"],
                                       ["model=tfnet", "data=expression"],
                                       ["model=genonet", "data=genotypes"]])
def test_every_data_source_composes(overrides):
    cfg = compose(overrides)
    assert cfg.data.name == overrides[-1].split("=")[1].replace("synthetic_small", "synthetic")


def test_importing_the_config_module_is_cheap():
    code = "import sys, tfnet_jax.config; sys.exit('jax' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
