"""Build PerturbationData from the `data` config group (synthetic | dir | cmap | anndata)."""
from __future__ import annotations

from dataclasses import fields

from tfnet_jax.data.dataset import DataError, PerturbationData
from tfnet_jax.data.synthetic import SyntheticConfig, make_synthetic

DATA_SOURCES = ("synthetic", "dir", "cmap", "anndata")
# Keys every data config may carry that are not generator/loader arguments.
_COMMON_KEYS = {"name", "pert_types"}


def _dataclass_args(cfg: dict, cls: type, source: str) -> dict:
    """The fields of `cls` from `cfg`; any other key (bar the common ones) is an error."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(cfg) - known - _COMMON_KEYS)
    if unknown:
        raise DataError(f"data ({source}): unknown field(s) {unknown}")
    return {k: v for k, v in cfg.items() if k in known}


def load_perturbation_data(cfg: dict) -> PerturbationData:
    """`cfg` is the plain-dict `data` config (OmegaConf.to_container(cfg.data))."""
    name = cfg.get("name")
    types = cfg.get("pert_types")
    if name == "synthetic":
        data = make_synthetic(SyntheticConfig(**_dataclass_args(cfg, SyntheticConfig, name)))
    elif name == "dir":
        from tfnet_jax.data.datadir import load_data_dir
        if not cfg.get("root") or cfg["root"] == "???":
            raise DataError("data.root: set it to a data directory, e.g. data.root=../shared/data/l1000_genetic")
        data = load_data_dir(cfg["root"])
        if not cfg.get("node_features", True):
            data.node_features = data.has_features = None
    elif name == "cmap":
        from tfnet_jax.data.cmap import CMapConfig, load_cmap
        data = load_cmap(CMapConfig(**_dataclass_args(cfg, CMapConfig, name)), pert_types=types)
    elif name == "anndata":
        from tfnet_jax.data.perturbseq import AnnDataConfig, load_anndata
        data = load_anndata(AnnDataConfig(**_dataclass_args(cfg, AnnDataConfig, name)))
    else:
        raise DataError(f"data.name: unknown data source {name!r}; choose one of {DATA_SOURCES}")
    return data.select_types(list(types) if types is not None else None)
