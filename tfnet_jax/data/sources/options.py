"""The keys of tfnet-networks / `build_networks`: names, defaults, and checking and converting
their values, given as Python values or as command-line text (lists Hydra-style `[a,b]`)."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tfnet_jax.data.sources.gene_sets import gmt_layer_name
from tfnet_jax.data.sources.string import CHANNELS
from tfnet_jax.errors import ConfigError
from tfnet_jax.schemas.checks import did_you_mean

NAMESPACES = ("entrez", "symbol", "ensembl")
GO_ASPECTS = ("BP", "MF", "CC")
SOURCES = ("string", "biogrid", "corum", "gmt", "reactome", "pathways", "coexpression", "go")
FILES = ("gene_info", "string", "string_info", "string_aliases", "biogrid", "corum", "reactome",
         "pathways", "coexpression", "go", "obo")


@dataclass
class Options:
    out: Path
    ids: str = "entrez"
    taxon: int = 9606
    gene_info: Path | None = None
    string: Path | None = None
    string_info: Path | None = None
    string_aliases: Path | None = None
    string_min_score: int = 700
    string_channels: list = field(default_factory=lambda: ["combined"])
    biogrid: Path | None = None
    corum: Path | None = None
    gmt: list = field(default_factory=list)
    gmt_max_size: int = 300
    reactome: Path | None = None
    pathways: Path | None = None
    coexpression: Path | None = None
    coexpression_top_k: int = 20
    go: Path | None = None
    obo: Path | None = None
    go_evidence_exclude: list = field(default_factory=lambda: ["ND"])
    go_aspects: list = field(default_factory=lambda: list(GO_ASPECTS))
    go_top_k: int = 20
    go_features: bool = False

    def sources(self) -> list[str]:
        return [s for s in SOURCES if getattr(self, s)]


KEYS = tuple(Options.__dataclass_fields__)


def _as_list(key: str, value) -> list[str]:
    if isinstance(value, (list, tuple)):
        items = [str(v).strip() for v in value]
    else:
        text = str(value).strip()
        if text.startswith("[") != text.endswith("]"):
            raise ConfigError(f"{key}={value}: unbalanced brackets; write a list as {key}=[a,b]")
        text = text[1:-1] if text.startswith("[") else text
        items = [v.strip().strip("'\"") for v in text.split(",")]
    return [v for v in items if v]


def _as_int(key: str, value, low: int, high: int | None = None) -> int:
    try:
        number = int(str(value).strip()) if not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        bounds = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ConfigError(f"{key}={value}: expected a whole number {bounds}")
    return number


def _as_bool(key: str, value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"{key}={value}: expected true or false")
    return text in ("true", "1", "yes")


def _choices(key: str, values: list[str], allowed: tuple[str, ...]) -> list[str]:
    for value in values:
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {list(allowed)}; "
                              f"{did_you_mean(value, allowed)}".rstrip("; "))
    if not values:
        raise ConfigError(f"{key}: the list is empty; give at least one of {list(allowed)}")
    return values


def _existing_file(key: str, value) -> Path:
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise ConfigError(f"{key}={value}: file not found")
    return path


def check_writable(out: Path) -> None:
    """`out`/networks can be created and written (before hours of reading are spent)."""
    folder = out / "networks"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ConfigError(f"out={out}: not writable ({err.strerror or err}); "
                          "choose another output folder") from None


def parse_options(raw: dict) -> Options:
    """Checked, converted options from `raw` key -> value (text or Python values)."""
    unknown = [k for k in raw if k not in KEYS]
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown key; {did_you_mean(unknown[0], KEYS)}"
                          f"valid keys: {', '.join(KEYS)}")
    if raw.get("out") in (None, ""):
        raise ConfigError("out: missing; give the output data directory as out=DIR")
    values = {k: v for k, v in raw.items() if v is not None and v != ""}
    options = Options(out=Path(str(values.pop("out"))).expanduser())
    for key, value in values.items():
        if key in FILES:
            value = _existing_file(key, value)
        elif key == "gmt":
            value = [_existing_file(key, v) for v in _as_list(key, value)]
        elif key == "ids":
            value = _choices(key, [str(value)], NAMESPACES)[0]
        elif key == "string_channels":
            value = _choices(key, _as_list(key, value), CHANNELS)
        elif key == "go_aspects":
            value = _choices(key, [v.upper() for v in _as_list(key, value)], GO_ASPECTS)
        elif key == "go_evidence_exclude":
            value = _as_list(key, value)
        elif key == "go_features":
            value = _as_bool(key, value)
        elif key == "string_min_score":
            value = _as_int(key, value, 0, 1000)
        elif key in ("taxon", "gmt_max_size", "coexpression_top_k", "go_top_k"):
            value = _as_int(key, value, 2 if key == "gmt_max_size" else 1)
        setattr(options, key, value)
    _check_together(options)
    return options


def _check_together(options: Options) -> None:
    if not options.sources():
        raise ConfigError(f"no source given; give at least one of "
                          f"{', '.join(s + '=' for s in SOURCES)}")
    if options.ids != "entrez" and options.gene_info is None:
        raise ConfigError(f"ids={options.ids} needs gene_info=FILE (NCBI gene_info) to map "
                          "Entrez IDs to that namespace")
    if options.string and (options.string_info is None or options.gene_info is None):
        raise ConfigError("string= needs string_info=FILE (STRING's protein.info) and "
                          "gene_info=FILE to map proteins to genes")
    if not options.string and (options.string_info or options.string_aliases):
        raise ConfigError("string_info / string_aliases are given without string=FILE (the links)")
    if options.go and options.obo is None:
        raise ConfigError("go= needs obo=FILE (the Gene Ontology, e.g. go-basic.obo)")
    stems: dict[str, Path] = {}
    for path in options.gmt:
        name = gmt_layer_name(path)
        if name in stems:
            raise ConfigError(f"gmt: {stems[name]} and {path} would both be layer {name}; rename one")
        stems[name] = path
