"""The one dispatch from a `data` config (a plain dict) to a container, for every family:

    perturbation (TranscriptionNet): synthetic | dir | cmap | anndata -> PerturbationData
    expression (TFNet):              grn | expression                  -> ExpressionData
    genotype (GenoNet):              genosim | genotypes               -> GenotypeData
"""
from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import asdict, fields
from pathlib import Path

from tfnet_jax.errors import DataError

DATA_SOURCES = ("synthetic", "dir", "cmap", "anndata")
EXPRESSION_SOURCES = ("grn", "expression")
GENOTYPE_SOURCES = ("genosim", "genotypes")
# Keys every data config may carry that are not generator/loader arguments.
_COMMON_KEYS = {"name", "pert_types"}


def _dataclass_args(cfg: dict, cls: type, source: str) -> dict:
    """The fields of `cls` from `cfg`; any other key (bar the common ones) is an error."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(cfg) - known - _COMMON_KEYS)
    if unknown:
        raise DataError(f"data ({source}): unknown field(s) {unknown}")
    return {k: v for k, v in cfg.items() if k in known}


def _require(cfg: dict, keys: tuple[str, ...], source: str, usage: str) -> None:
    for key in keys:
        if cfg.get(key) in (None, "???"):
            raise DataError(f"data.{key}: required for data={source} ({usage})")


def load_perturbation_data(cfg: dict):
    """PerturbationData (TranscriptionNet) from data=synthetic | dir | cmap | anndata."""
    name = cfg.get("name")
    types = cfg.get("pert_types")
    if name == "synthetic":
        from tfnet_jax.data.perturbation.synthetic import (
            SyntheticConfig,
            make_synthetic,
        )
        data = make_synthetic(SyntheticConfig(**_dataclass_args(cfg, SyntheticConfig, name)))
    elif name == "dir":
        from tfnet_jax.data.perturbation.datadir import load_data_dir
        if not cfg.get("root") or cfg["root"] == "???":
            raise DataError("data.root: set it to a data directory, e.g. data.root=../shared/data/l1000_genetic")
        data = load_data_dir(cfg["root"])
        if not cfg.get("node_features", True):
            data.node_features = data.has_features = None
    elif name == "cmap":
        from tfnet_jax.data.perturbation.cmap import CMapConfig, load_cmap
        data = load_cmap(CMapConfig(**_dataclass_args(cfg, CMapConfig, name)), pert_types=types)
    elif name == "anndata":
        from tfnet_jax.data.perturbation.perturbseq import AnnDataConfig, load_anndata
        data = load_anndata(AnnDataConfig(**_dataclass_args(cfg, AnnDataConfig, name)))
    else:
        raise DataError(f"data.name: unknown data source {name!r}; choose one of {DATA_SOURCES}")
    return data.select_types(list(types) if types is not None else None)


def load_expression_data(cfg: dict):
    """ExpressionData (TFNet) from data=grn (simulated) | expression (a matrix file)."""
    name = cfg.get("name")
    rest = {k: v for k, v in cfg.items() if k != "name"}
    if name == "grn":
        from tfnet_jax.data.expression.synthetic import GRNConfig, make_grn
        return make_grn(GRNConfig.from_dict(rest))
    if name == "expression":
        from tfnet_jax.data.expression.readers import read_expression_data
        _require(rest, ("path", "tf_list"), name, "data.path=MATRIX data.tf_list=TF_FILE")
        return read_expression_data(rest)
    raise DataError(f"data.name={name!r}: model=tfnet reads data=grn (synthetic) or "
                    f"data=expression; choose one of {EXPRESSION_SOURCES}")


def load_genotype_data(cfg: dict, cache_dir: Path | None = None):
    """GenotypeData (GenoNet) from data=genosim (simulated into data.cache, else `cache_dir`,
    else a temp dir named by the simulation's config, so runs of one config share it) or
    data=genotypes (PLINK)."""
    name = cfg.get("name")
    rest = {k: v for k, v in cfg.items() if k != "name"}
    if name == "genosim":
        from tfnet_jax.data.genotype.synthetic import GenoSimConfig, load_simulated
        cache = rest.pop("cache", None)
        try:
            sim_cfg = GenoSimConfig(**rest)
        except TypeError as err:
            raise DataError(f"data (genosim): {err}") from None
        if not cache and cache_dir is None:
            digest = hashlib.sha256(json.dumps(json.loads(json.dumps(asdict(sim_cfg))),
                                               sort_keys=True).encode()).hexdigest()[:16]
            cache_dir = Path(tempfile.gettempdir()) / "tfnet_jax_genosim" / digest
        return load_simulated(sim_cfg, Path(cache or cache_dir))
    if name == "genotypes":
        from tfnet_jax.data.genotype.readers import read_genotype_data
        _require(rest, ("bed", "expression", "genes"), name,
                 "data.bed=PREFIX data.expression=FILE data.genes=FILE [data.annotations=FILE]")
        return read_genotype_data(rest)
    raise DataError(f"data.name={name!r}: model=genonet reads data=genosim or data=genotypes")


def load_data(cfg: dict, cache_dir: Path | None = None):
    """Any family's container from its `data` config, by `data.name`."""
    name = cfg.get("name")
    if name in EXPRESSION_SOURCES:
        return load_expression_data(cfg)
    if name in GENOTYPE_SOURCES:
        return load_genotype_data(cfg, cache_dir)
    return load_perturbation_data(cfg)
