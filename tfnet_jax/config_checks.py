"""Range and choice checks of a composed config (called by `tfnet_jax.config.validate`).

Each check raises a one-line ConfigError: `config: <field>=<value>: <what it must be>`.
The allowed choices come from the modules that consume them (imported here, lazily, so that
`tfnet_jax.config` stays cheap to import); where the consumer only tests a literal, the tuple
below is the config's list of it.
"""
from __future__ import annotations

import re

from tfnet_jax.schemas.checks import (fail, number_in, one_of, optional_positive_int,
                                      positive_int, positive_number)
from tfnet_jax.data.load import check_data_config
from tfnet_jax.schemas import FAMILY_NAMES, MONITOR_MODES

SPLIT_BY = ("sample", "group")
ABLATION = re.compile(r"all|only_\d+|drop_\d+")


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
        check_data_config(groups["data"])
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
