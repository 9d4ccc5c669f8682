"""The one dispatch from a `data` config to a container, for every family:

    perturbation (TranscriptionNet): synthetic | dir | cmap | anndata -> PerturbationData
    expression (TFNet):              grn | expression                  -> ExpressionData
    genotype (GenoNet):              genosim | genotypes               -> GenotypeData

A config is its typed schema (`tfnet_jax.schemas.typed.DATA_SCHEMAS[name]`, what the families
pass) or a plain dict, typed here by the same schema: an unknown key or a wrong type is one line
naming the field.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from pathlib import Path

from tfnet_jax.errors import DataError
from tfnet_jax.schemas.checks import fail, number_in, one_of, positive_int
from tfnet_jax.schemas.data import COLLAPSE_MODES
from tfnet_jax.schemas.typed import typed_group

DATA_SOURCES = ("synthetic", "dir", "cmap", "anndata")
SIM_MODES = ("additive", "nonadditive")
MISSING_TF_POLICIES = ("error", "drop")
EXPRESSION_SOURCES = ("grn", "expression")
GENOTYPE_SOURCES = ("genosim", "genotypes")


def _typed(cfg):
    """The data config as its schema's instance (a dict of an unknown source stays a dict)."""
    return cfg if dataclasses.is_dataclass(cfg) else typed_group("data", cfg)


def _base(cfg, cls: type):
    """The generator's / loader's own config (`cls`) from a data config (a subclass of it, or
    one holding its fields)."""
    return cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cls)})


def _require(cfg, keys: tuple[str, ...], source: str, usage: str) -> None:
    for key in keys:
        if getattr(cfg, key) in (None, "???"):
            raise DataError(f"data.{key}: required for data={source} ({usage})")


def _name(cfg) -> str | None:
    return cfg.get("name") if isinstance(cfg, dict) else cfg.name


def load_perturbation_data(cfg):
    """PerturbationData (TranscriptionNet) from data=synthetic | dir | cmap | anndata."""
    cfg = _typed(cfg)
    name = _name(cfg)
    if name == "synthetic":
        from tfnet_jax.data.perturbation.synthetic import SyntheticConfig, make_synthetic
        data = make_synthetic(_base(cfg, SyntheticConfig))
    elif name == "dir":
        from tfnet_jax.data.perturbation.datadir import load_data_dir
        if not cfg.root or cfg.root == "???":
            raise DataError("data.root: set it to a data directory, e.g. data.root=../shared/data/l1000_genetic")
        data = load_data_dir(cfg.root, node_feature_files=cfg.node_feature_files,
                             extra_networks=cfg.extra_networks, go_features=cfg.go_features)
        if not cfg.node_features:
            data = data.without_node_features()
    elif name == "cmap":
        from tfnet_jax.data.perturbation.cmap import CMapConfig, load_cmap
        data = load_cmap(_base(cfg, CMapConfig), pert_types=cfg.pert_types)
    elif name == "anndata":
        from tfnet_jax.data.perturbation.perturbseq import AnnDataConfig, load_anndata
        data = load_anndata(_base(cfg, AnnDataConfig))
    else:
        raise DataError(f"data.name: unknown data source {name!r}; choose one of {DATA_SOURCES}")
    return data.select_types(list(cfg.pert_types) if cfg.pert_types is not None else None)


def load_expression_data(cfg):
    """ExpressionData (TFNet) from data=grn (simulated) | expression (a matrix file)."""
    cfg = _typed(cfg)
    name = _name(cfg)
    if name == "grn":
        from tfnet_jax.data.expression.synthetic import GRNConfig, make_grn
        grn = _base(cfg, GRNConfig)
        grn.check()
        return make_grn(grn)
    if name == "expression":
        from tfnet_jax.data.expression.readers import read_expression_data
        _require(cfg, ("path", "tf_list"), name, "data.path=MATRIX data.tf_list=TF_FILE")
        return read_expression_data(cfg)
    raise DataError(f"data.name={name!r}: model=tfnet reads data=grn (synthetic) or "
                    f"data=expression; choose one of {EXPRESSION_SOURCES}")


def load_genotype_data(cfg, cache_dir: Path | None = None):
    """GenotypeData (GenoNet) from data=genosim (simulated into data.cache, else `cache_dir`,
    else a temp dir named by the simulation's config, so runs of one config share it) or
    data=genotypes (PLINK, VCF or PredictDB dosage text)."""
    cfg = _typed(cfg)
    name = _name(cfg)
    if name == "genosim":
        from tfnet_jax.data.genotype.synthetic import GenoSimConfig, load_simulated
        sim_cfg = _base(cfg, GenoSimConfig)
        if not cfg.cache and cache_dir is None:
            digest = hashlib.sha256(json.dumps(dataclasses.asdict(sim_cfg),
                                               sort_keys=True).encode()).hexdigest()[:16]
            cache_dir = Path(tempfile.gettempdir()) / "tfnet_jax_genosim" / digest
        return load_simulated(sim_cfg, Path(cfg.cache or cache_dir))
    if name == "genotypes":
        from tfnet_jax.data.genotype.readers import read_genotype_data
        _require(cfg, ("expression", "genes"), name,
                 "data.bed=PREFIX | data.vcf=FILE | data.dosage=PATTERN, data.expression=FILE "
                 "data.genes=FILE [data.annotations=FILE]")
        cfg.check()
        return read_genotype_data(cfg)
    raise DataError(f"data.name={name!r}: model=genonet reads data=genosim or data=genotypes")


def load_data(cfg: dict, cache_dir: Path | None = None):
    """Any family's container from its `data` config, by `data.name`."""
    name = _name(cfg)
    if name in EXPRESSION_SOURCES:
        return load_expression_data(cfg)
    if name in GENOTYPE_SOURCES:
        return load_genotype_data(cfg, cache_dir)
    return load_perturbation_data(cfg)


# ---------------------------------------------------------------- checks before loading
def check_data_config(data: dict) -> None:
    """The ranges and choices of a `data` config (a plain dict of its typed fields), per source."""
    name = data.get("name")
    if name == "synthetic":
        from tfnet_jax.data.perturbation.synthetic import PERT_TYPES
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
        from tfnet_jax.data.expression.readers import ORIENTATIONS, TRANSFORMS
        one_of(data, "data", "transform", TRANSFORMS)
        one_of(data, "data", "orientation", ORIENTATIONS)
        one_of(data, "data", "missing_tfs", MISSING_TF_POLICIES)
        positive_int(data, "data", "min_targets")
    elif name == "genotypes":
        from tfnet_jax.schemas.data import GenotypeSource
        GenotypeSource(**data).check(complete=False)  # none given: an error when loading
        positive_int(data, "data", "window", "max_variants")
        number_in(data, "data", "maf", 0.0, 0.5, high_open=True)
    elif name == "cmap":
        one_of(data, "data", "collapse", COLLAPSE_MODES)
    elif name == "anndata":
        from tfnet_jax.data.perturbation.perturbseq import AnnDataConfig, check_config
        check_config(AnnDataConfig(**{k: v for k, v in data.items() if k not in ("name", "pert_types")}),
                     paths=False)


def pert_types_of(cfg: dict) -> list[str] | None:
    """The perturbation types a TranscriptionNet `data` config yields, as far as known before
    loading: data.pert_types, else the standard three (the generator's, and what CMap and
    AnnData codes map to); None for a data dir, whose types are its signature files' names."""
    if cfg.get("pert_types"):
        return list(cfg["pert_types"])
    if cfg.get("name") == "dir":
        return None
    from tfnet_jax.data.perturbation.synthetic import PERT_TYPES
    return list(PERT_TYPES)
