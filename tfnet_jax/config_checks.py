"""Range and choice checks of a composed config (called by `tfnet_jax.config.validate`).

Each check raises a one-line ConfigError: `config: <field>=<value>: <what it must be>`.
The allowed choices come from the modules that consume them (imported here, lazily, so that
`tfnet_jax.config` stays cheap to import); where the consumer only tests a literal, the tuple
below is the config's list of it.
"""
from __future__ import annotations

import difflib
import re

from tfnet_jax.errors import ConfigError
from tfnet_jax.schemas import COLLAPSE_MODES, FAMILY_NAMES, MONITOR_MODES

SPLIT_BY = ("sample", "group")
SIM_MODES = ("additive", "nonadditive")
MISSING_TF_POLICIES = ("error", "drop")
ABLATION = re.compile(r"all|only_\d+|drop_\d+")


def fail(path: str, value, why: str):
    raise ConfigError(f"config: {path}={value!r}: {why}")


def _path(group: str, key: str) -> str:
    """`group.key`; a command's top-level key (group "") is named alone, as it is typed."""
    return f"{group}.{key}" if group else key


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(node: dict, group: str, *keys: str, minimum: int = 1) -> None:
    for key in keys:
        value = node.get(key)
        if not _is_int(value) or value < minimum:
            fail(_path(group, key), value, "must be a positive integer" if minimum == 1
                  else f"must be an integer >= {minimum}")


def optional_positive_int(node: dict, group: str, *keys: str, minimum: int = 1) -> None:
    for key in keys:
        if node.get(key) is not None:
            positive_int(node, group, key, minimum=minimum)


def number_in(node: dict, group: str, key: str, low: float, high: float, *,
              low_open: bool = False, high_open: bool = False) -> None:
    value = node.get(key)
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and (low < value if low_open else low <= value)
          and (value < high if high_open else value <= high))
    if not ok:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        fail(_path(group, key), value, f"must lie in {left}{low:g}, {high:g}{right}")


def positive_number(node: dict, group: str, *keys: str, allow_zero: bool = False) -> None:
    for key in keys:
        value = node.get(key)
        if (not isinstance(value, (int, float)) or isinstance(value, bool)
                or value < 0 or (value == 0 and not allow_zero)):
            fail(_path(group, key), value,
                  "must be a number >= 0" if allow_zero else "must be a positive number")


def did_you_mean(value, choices, prefix: str = "") -> str:
    """`did you mean X? ` for the choice closest to a mistyped `value` ('' when none is close)."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    return f"did you mean {prefix}{close[0]}? " if close else ""


def one_of(node: dict, group: str, key: str, choices) -> None:
    value = node.get(key)
    if value not in choices:
        fail(_path(group, key), value,
             f"{did_you_mean(value, choices)}expected one of {', '.join(map(str, choices))}")


# ---------------------------------------------------------------- per group
def check_train(train: dict) -> None:
    from tfnet_jax.train.optim import OPTIMIZERS, SCHEDULES

    positive_int(train, "train", "max_steps", "batch_size", "eval_batch_size", "eval_every",
                 "log_every", "patience", "keep_checkpoints")
    positive_int(train, "train", "warmup_steps", minimum=0)
    positive_number(train, "train", "learning_rate")
    positive_number(train, "train", "weight_decay", allow_zero=True)
    if train.get("grad_clip") is not None:
        positive_number(train, "train", "grad_clip")
    optional_positive_int(train, "train", "num_devices")
    one_of(train, "train", "optimizer", OPTIMIZERS)
    one_of(train, "train", "schedule", SCHEDULES)
    one_of(train, "train", "monitor_mode", MONITOR_MODES)


def check_distributed(dist: dict) -> None:
    """Explicit multi-process settings come as a set: coordinator HOST:PORT, num_processes and
    process_id (distributed=auto may leave any of them to the cluster)."""
    coordinator, count, rank = dist.get("coordinator"), dist.get("num_processes"), dist.get("process_id")
    positive_int(dist, "distributed", "timeout")
    optional_positive_int(dist, "distributed", "num_processes")
    optional_positive_int(dist, "distributed", "process_id", minimum=0)
    if coordinator is not None:
        host, sep, port = str(coordinator).rpartition(":")
        if not (sep and host and port.isdigit() and 0 < int(port) < 65536):
            fail("distributed.coordinator", coordinator, "expected HOST:PORT, e.g. 10.0.0.1:12345")
    if not dist.get("auto"):
        given = {"coordinator": coordinator, "num_processes": count, "process_id": rank}
        if any(v is not None for v in given.values()):
            for key, value in given.items():
                if value is None:
                    fail(f"distributed.{key}", value, "set it too (distributed.coordinator, "
                         "num_processes and process_id go together), or use distributed=auto")
    if count is not None and rank is not None and rank >= count:
        fail("distributed.process_id", rank, f"must be below distributed.num_processes ({count})")


def check_monitor(train: dict, accepted: list[str], family: str, pattern: str | None = None,
                  matches=None) -> None:
    """`train.monitor` must be one of the family's validation metrics (`accepted`), or match
    its `pattern` (shown in the message) as judged by `matches(monitor)`."""
    monitor = train.get("monitor")
    if monitor in accepted or (matches is not None and matches(str(monitor))):
        return
    fail("train.monitor", monitor, f"model.family={family} reports one of {', '.join(accepted)}"
          + (f" or {pattern}" if pattern else ""))


def check_split(split: dict, used: tuple[str, ...] | None = None, family: str = "") -> None:
    """Ranges, and (with `used`, the fields the family reads) no field set that it would ignore."""
    if used is not None:
        from tfnet_jax.schemas import SplitConfig
        defaults = SplitConfig()
        for key, value in split.items():
            if key not in used and value != getattr(defaults, key, value):
                fail(f"split.{key}", value, f"model.family={family} does not use it (it reads "
                      f"split.{', split.'.join(used)})")
    folds = split.get("folds")
    if folds is not None:
        positive_int(split, "split", "folds", minimum=2)
    number_in(split, "split", "valid_frac", 0.0, 1.0, low_open=True, high_open=True)
    number_in(split, "split", "test_frac", 0.0, 1.0, low_open=True, high_open=True)
    if folds is None and split["valid_frac"] + split["test_frac"] >= 1:
        fail("split.valid_frac", split["valid_frac"],
              f"split.valid_frac + split.test_frac ({split['test_frac']!r}) must be below 1")
    positive_int(split, "split", "min_train")
    one_of(split, "split", "by", SPLIT_BY)
    from tfnet_jax.data.splits import SPLIT_MODES, SPLIT_SCENARIOS
    if "scenario" in split:  # a run dir written before these keys has neither
        one_of(split, "split", "scenario", SPLIT_SCENARIOS)
    if "mode" in split:
        one_of(split, "split", "mode", SPLIT_MODES)


def check_data(data: dict) -> None:
    name = data.get("name")
    if name == "synthetic":
        from tfnet_jax.data.synthetic import PERT_TYPES
        positive_int(data, "data", "num_genes", "num_communities", "latent_dim", "hidden_dim",
                     "num_readouts", "perts_per_type")
        for value in data.get("pert_types") or []:
            if value not in PERT_TYPES:
                fail("data.pert_types", data["pert_types"], f"expected a list of {', '.join(PERT_TYPES)}")
        lengths = {key: len(data[key]) for key in ("layer_names", "layer_degree", "layer_within",
                                                     "layer_coverage", "layer_relevance")}
        if len(set(lengths.values())) != 1:
            fail("data.layer_degree", data["layer_degree"],
                  f"every data.layer_* list needs one entry per layer ({lengths})")
    elif name == "grn":
        positive_int(data, "data", "num_samples", "num_tfs", "num_masters", "num_targets",
                     "num_states")
        positive_int(data, "data", "disease_masters", "disease_samples", minimum=0)
    elif name == "genosim":
        positive_int(data, "data", "num_genes", "num_individuals", "region_length", "max_variants",
                     "num_causal", "gene_length", "region_spacing")
        one_of(data, "data", "mode", SIM_MODES)
        for key in ("heritability", "null_fraction", "trait_heritability"):
            number_in(data, "data", key, 0.0, 1.0)
        number_in(data, "data", "maf", 0.0, 0.5, high_open=True)
    elif name == "expression":
        from tfnet_jax.data.expression import ORIENTATIONS, TRANSFORMS
        one_of(data, "data", "transform", TRANSFORMS)
        one_of(data, "data", "orientation", ORIENTATIONS)
        one_of(data, "data", "missing_tfs", MISSING_TF_POLICIES)
        positive_int(data, "data", "min_targets")
    elif name == "genotypes":
        positive_int(data, "data", "window", "max_variants")
        number_in(data, "data", "maf", 0.0, 0.5, high_open=True)
    elif name == "cmap":
        one_of(data, "data", "collapse", COLLAPSE_MODES)
    elif name == "anndata":
        from tfnet_jax.data.perturbseq import check_config
        from tfnet_jax.schemas import AnnDataConfig
        check_config(AnnDataConfig(**{k: v for k, v in data.items()
                                      if k not in ("name", "pert_types")}), paths=False)


def check_values(groups: dict, family: str | None) -> None:
    """Every range / choice check of the typed, resolved groups (plain dicts). The checks that
    belong to one family (its model's fields, data sources, split fields, validation metrics)
    are that family's `check_config` hook; nothing here branches on a family's name."""
    from tfnet_jax.tasks.base import get_family

    if not family:
        fail("model.family", family, f"expected one of {', '.join(FAMILY_NAMES)} "
                                      "or an import path module:Class")
    fam = get_family(str(family))
    model = groups.get("model")
    if model is not None and "dropout" in model:
        number_in(model, "model", "dropout", 0.0, 1.0, high_open=True)
    if "data" in groups:
        sources = getattr(fam, "data_sources", None)
        name = groups["data"].get("name")
        if sources and name not in sources:
            fail("data.name", name, f"model.family={family} reads data={' | data='.join(sources)}")
        check_data(groups["data"])
    if "split" in groups:
        check_split(groups["split"], getattr(fam, "split_fields", None), str(family))
    if "train" in groups:
        check_train(groups["train"])
    if "distributed" in groups:
        check_distributed(groups["distributed"])
    network = groups.get("network")
    if network is not None and not ABLATION.fullmatch(str(network.get("ablation"))):
        fail("network.ablation", network.get("ablation"), "expected all, only_<i> or drop_<i>")
    check_family = getattr(fam, "check_config", None)
    if check_family is not None:
        check_family(groups)


# ---------------------------------------------------------------- analysis commands
CHECKPOINTS = ("best", "latest")
PREDICT_FORMATS = ("parquet", "csv", "gctx", "h5ad")


def output_folder(path: str, key: str) -> None:
    """An output's folder exists and is a folder (checked before anything is loaded)."""
    from pathlib import Path
    folder = Path(path).parent
    if not folder.is_dir():
        fail(key, path, f"folder {folder} does not exist (or is a file); create it or "
                        f"choose another")


def input_file(node: dict, *keys: str) -> None:
    from pathlib import Path
    for key in keys:
        if node.get(key) and not Path(str(node[key])).is_file():
            fail(key, node[key], "file not found")


def check_predict(cfg: dict) -> None:
    formats = [cfg["format"]] if isinstance(cfg["format"], str) else list(cfg["format"] or [])
    bad = [f for f in formats if f not in PREDICT_FORMATS]
    if bad or not formats:
        fail("format", cfg["format"], f"{did_you_mean(bad[0] if bad else '', PREDICT_FORMATS)}"
                                      f"expected one or several of {', '.join(PREDICT_FORMATS)}")
    if cfg.get("inputs") is not None and cfg.get("genes") is not None:
        fail("genes", cfg["genes"], "give inputs= or genes= (TranscriptionNet's name for it), "
                                    "not both")
    positive_int(cfg, "", "chunk_size")
    if cfg.get("output"):
        output_folder(str(cfg["output"]), "output")


def check_lightup(cfg: dict) -> None:
    from tfnet_jax.analysis.lightup import MODES
    one_of(cfg, "", "mode", MODES)
    one_of(cfg, "", "which", CHECKPOINTS)
    positive_number(cfg, "", "k")
    positive_int(cfg, "", "chunk")
    number_in(cfg, "", "log_base", 1.0, float("inf"), low_open=True, high_open=True)
    input_file(cfg, "known", "gene_table")


def check_core_tfs(cfg: dict) -> None:
    from tfnet_jax.analysis.tf_selection import IMPORTANCE
    one_of(cfg, "", "importance", IMPORTANCE)
    number_in(cfg, "", "drop_fraction", 0.0, 1.0, low_open=True, high_open=True)
    positive_int(cfg, "", "min_tfs", "retrain_steps")
    keep = cfg.get("keep")
    if not keep or not all(isinstance(v, (int, float)) and 0 < v <= 1 for v in keep):
        fail("keep", keep, "expected a list of shares in (0, 1], e.g. [0.8,0.95]")


def check_disease(cfg: dict) -> None:
    if bool(cfg.get("tf_fold_changes")) != bool(cfg.get("observed")):
        missing = "observed" if cfg.get("tf_fold_changes") else "tf_fold_changes"
        fail(missing, None, "give both tables, tf_fold_changes= and observed= (columns gene, "
                            "log_fc), or neither for a synthetic run's planted contrast")
    input_file(cfg, "tf_fold_changes", "observed")
    number_in(cfg, "", "log_base", 1.0, float("inf"), low_open=True, high_open=True)


COMMAND_CHECKS = {"predict": check_predict, "lightup": check_lightup, "core_tfs": check_core_tfs,
                  "disease": check_disease}


def check_command(config_name: str, cfg) -> None:
    """The range / choice / path checks of an analysis command's config (`configs/<name>.yaml`),
    run before its run dir is loaded."""
    from omegaconf import OmegaConf
    check = COMMAND_CHECKS.get(config_name)
    if check is not None:
        check(OmegaConf.to_container(cfg, resolve=True))
