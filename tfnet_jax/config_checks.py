"""Range and choice checks of a composed config (called by `tfnet_jax.config.validate`).

Each check raises a one-line ConfigError: `config: <field>=<value>: <what it must be>`.
The allowed choices come from the modules that consume them (imported here, lazily, so that
`tfnet_jax.config` stays cheap to import); where the consumer only tests a literal, the tuple
below is the config's list of it.
"""
from __future__ import annotations

import re

from tfnet_jax.errors import ConfigError
from tfnet_jax.schemas import COLLAPSE_MODES, FAMILY_NAMES, MONITOR_MODES

NODE_INPUTS = ("auto", "features", "embedding", "both")
FUSIONS = ("attention", "mean")
SKIP_INITS = ("zeros", "ridge")
LINEAR_INITS = ("zeros", "elastic_net")
SPLIT_BY = ("sample", "group")
SIM_MODES = ("additive", "nonadditive")
MISSING_TF_POLICIES = ("error", "drop")
GENOTYPE_SOURCES = ("genosim", "genotypes")  # tasks/genonet.py load_data's two branches
ABLATION = re.compile(r"all|only_\d+|drop_\d+")


def _fail(path: str, value, why: str):
    raise ConfigError(f"config: {path}={value!r}: {why}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(node: dict, group: str, *keys: str, minimum: int = 1) -> None:
    for key in keys:
        value = node.get(key)
        if not _is_int(value) or value < minimum:
            _fail(f"{group}.{key}", value, "must be a positive integer" if minimum == 1
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
        _fail(f"{group}.{key}", value, f"must lie in {left}{low:g}, {high:g}{right}")


def positive_number(node: dict, group: str, *keys: str, allow_zero: bool = False) -> None:
    for key in keys:
        value = node.get(key)
        if (not isinstance(value, (int, float)) or isinstance(value, bool)
                or value < 0 or (value == 0 and not allow_zero)):
            _fail(f"{group}.{key}", value,
                  "must be a number >= 0" if allow_zero else "must be a positive number")


def one_of(node: dict, group: str, key: str, choices) -> None:
    value = node.get(key)
    if value not in choices:
        _fail(f"{group}.{key}", value, f"expected one of {', '.join(map(str, choices))}")


# ---------------------------------------------------------------- per group
def check_train(train: dict, family: str | None) -> None:
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
    names = family_metrics(family)
    if names is None:  # a plug-in family: its metrics are its own
        return
    # TranscriptionNet also reports valid/<TYPE>/<metric>, every metric per perturbation type.
    per_type = family == "transcriptionnet"
    parts = str(train.get("monitor")).split("/")
    if per_type and len(parts) == 3 and parts[1]:
        from tfnet_jax.eval.metrics import METRIC_NAMES
        ok = parts[0] == "valid" and parts[2] in METRIC_NAMES
    else:
        ok = len(parts) == 2 and parts[0] == "valid" and parts[1] in names
    if not ok:
        shown = ", ".join(f"valid/{name}" for name in names)
        _fail("train.monitor", train.get("monitor"), f"model.family={family} reports one of {shown}"
              + (" or valid/<TYPE>/<metric>" if per_type else ""))


def family_metrics(family: str | None) -> list[str] | None:
    """The validation metric names each built-in family reports (None: not a built-in family)."""
    if family == "transcriptionnet":
        from tfnet_jax.tasks.perturbation import MEAN_VALID_METRICS
        return list(MEAN_VALID_METRICS)
    if family == "tfnet":
        import numpy as np
        from tfnet_jax.eval.regression import GENES_SCORED_KEY, expression_metrics
        # The summary's keys are the metric names (read off a tiny call); counts are not scores.
        true = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
        return [k for k in expression_metrics(true + 0.1, true) if k not in ("n", GENES_SCORED_KEY)]
    if family == "genonet":
        return ["r2_mean"]  # per-gene early stopping's summary (tasks/genonet.py)
    return None


def check_split(split: dict) -> None:
    folds = split.get("folds")
    if folds is not None:
        positive_int(split, "split", "folds", minimum=2)
    number_in(split, "split", "valid_frac", 0.0, 1.0, low_open=True, high_open=True)
    number_in(split, "split", "test_frac", 0.0, 1.0, low_open=True, high_open=True)
    if folds is None and split["valid_frac"] + split["test_frac"] >= 1:
        _fail("split.valid_frac", split["valid_frac"],
              f"split.valid_frac + split.test_frac ({split['test_frac']!r}) must be below 1")
    positive_int(split, "split", "min_train")
    one_of(split, "split", "by", SPLIT_BY)


def check_data(data: dict) -> None:
    name = data.get("name")
    if name == "synthetic":
        from tfnet_jax.data.synthetic import PERT_TYPES
        positive_int(data, "data", "num_genes", "num_communities", "latent_dim", "hidden_dim",
                     "num_readouts", "perts_per_type")
        for value in data.get("pert_types") or []:
            if value not in PERT_TYPES:
                _fail("data.pert_types", data["pert_types"], f"expected a list of {', '.join(PERT_TYPES)}")
        lengths = {key: len(data[key]) for key in ("layer_names", "layer_degree", "layer_within",
                                                     "layer_coverage", "layer_relevance")}
        if len(set(lengths.values())) != 1:
            _fail("data.layer_degree", data["layer_degree"],
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


def check_model(model: dict) -> None:
    family = model.get("family")
    if family in FAMILY_NAMES:
        number_in(model, "model", "dropout", 0.0, 1.0, high_open=True)
    if family == "transcriptionnet":
        positive_int(model, "model", "hidden", "heads", "fusion_dim", "head_hidden", "head_blocks")
        positive_int(model, "model", "gat_layers", minimum=0)
        number_in(model, "model", "beta", 0.0, 1.0)
        one_of(model, "model", "node_input", NODE_INPUTS)
        one_of(model, "model", "fusion", FUSIONS)
        one_of(model, "model", "skip_init", SKIP_INITS)
        refine = model.get("refine") or {}
        positive_int(refine, "model.refine", "dim", "heads", "blocks", "inducing", "recycles")
    elif family == "tfnet":
        from tfnet_jax.models.tfnet import ACTIVATIONS
        hidden = model.get("hidden")
        if not isinstance(hidden, list) or not all(_is_int(h) and h > 0 for h in hidden):
            _fail("model.hidden", hidden, "must be a list of positive integers, e.g. [250,250]")
        one_of(model, "model", "activation", sorted(ACTIVATIONS))
        number_in(model, "model", "input_dropout", 0.0, 1.0, high_open=True)
        one_of(model, "model", "skip_init", SKIP_INITS)
    elif family == "genonet":
        positive_int(model, "model", "genes_per_block", "channels", "kernel", "hidden", "gate_hidden")
        positive_number(model, "model", "init_scale")
        positive_number(model, "model", "l1", allow_zero=True)
        one_of(model, "model", "linear_init", LINEAR_INITS)
        net = model.get("elastic_net") or {}
        number_in(net, "model.elastic_net", "alpha", 0.0, 1.0)
        positive_int(net, "model.elastic_net", "inner_folds", minimum=2)
        positive_int(net, "model.elastic_net", "n_lambdas", "max_iter", "block")
        positive_number(net, "model.elastic_net", "tol")


def family_data_sources(family: str | None) -> tuple[str, ...] | None:
    """The `data=` sources each built-in family reads (None: not a built-in family)."""
    if family == "transcriptionnet":
        from tfnet_jax.data.load import DATA_SOURCES
        return DATA_SOURCES
    if family == "tfnet":
        from tfnet_jax.tasks.tfnet import EXPRESSION_SOURCES
        return EXPRESSION_SOURCES
    if family == "genonet":
        return GENOTYPE_SOURCES
    return None


def check_values(groups: dict, family: str | None) -> None:
    """Every range / choice check of the typed, resolved groups (plain dicts)."""
    model = groups.get("model")
    if model is not None:
        if family not in FAMILY_NAMES and not re.search(r"[.:]", str(family)):
            _fail("model.family", family, f"expected one of {', '.join(FAMILY_NAMES)} "
                                          "or an import path module:Class")
        check_model(model)
    if "data" in groups:
        sources = family_data_sources(family)
        name = groups["data"].get("name")
        if sources is not None and name not in sources:
            _fail("data.name", name, f"model.family={family} reads data={' | data='.join(sources)}")
        check_data(groups["data"])
    if "split" in groups:
        check_split(groups["split"])
    if "train" in groups:
        check_train(groups["train"], family)
    network = groups.get("network")
    if network is not None and not ABLATION.fullmatch(str(network.get("ablation"))):
        _fail("network.ablation", network.get("ablation"), "expected all, only_<i> or drop_<i>")
