"""Build PerturbationData from the `data` config group (synthetic | dir)."""
from __future__ import annotations

from dataclasses import fields

from tfnet_jax.data.dataset import DataError, PerturbationData
from tfnet_jax.data.synthetic import SyntheticConfig, make_synthetic

DATA_SOURCES = ("synthetic", "dir")
# Keys every data config may carry that are not generator/loader arguments.
_COMMON_KEYS = {"name", "pert_types"}


def load_perturbation_data(cfg: dict) -> PerturbationData:
    """`cfg` is the plain-dict `data` config (OmegaConf.to_container(cfg.data))."""
    name = cfg.get("name")
    if name == "synthetic":
        known = {f.name for f in fields(SyntheticConfig)}
        unknown = sorted(set(cfg) - known - _COMMON_KEYS)
        if unknown:
            raise DataError(f"data (synthetic): unknown field(s) {unknown}")
        data = make_synthetic(SyntheticConfig(**{k: v for k, v in cfg.items() if k in known}))
    elif name == "dir":
        from tfnet_jax.data.datadir import load_data_dir
        if not cfg.get("root") or cfg["root"] == "???":
            raise DataError("data.root: set it to a data directory, e.g. data.root=../shared/data/l1000_genetic")
        data = load_data_dir(cfg["root"])
        if not cfg.get("node_features", True):
            data.node_features = data.has_features = None
    else:
        raise DataError(f"data.name: unknown data source {name!r}; choose one of {DATA_SOURCES}")
    types = cfg.get("pert_types")
    return data.select_types(list(types) if types is not None else None)
