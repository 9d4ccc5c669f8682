"""Options of the analysis commands, one definition of each default: `tfnet-predict`,
`tfnet-lightup`, `tfnet-core-tfs`, `tfnet-disease` (configs/<command>.yaml start from these) and
the library functions the commands wrap (`Run.write_predictions`, `analysis.lightup.run_lightup`,
`analysis.tf_selection.run_core_tfs`, `analysis.disease.run_disease`).

`check()` is each one's range / choice / path checks, run before a run dir is loaded; every
failure is one line `config: <field>=<value>: <what it must be>`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

from tfnet_jax.errors import ConfigError
from tfnet_jax.schemas.checks import did_you_mean, fail, number_in, one_of, positive_int, positive_number
from tfnet_jax.schemas.run import MISSING

CHECKPOINTS = ("best", "latest")
PREDICT_FORMATS = ("parquet", "csv", "gctx", "h5ad")
LIGHTUP_MODES = ("double", "sd")
IMPORTANCE = ("lightup", "gradient")


def output_folder(path: str, key: str) -> None:
    """An output's folder exists and is a folder (checked before anything is loaded)."""
    folder = Path(path).parent
    if not folder.is_dir():
        fail(key, path, f"folder {folder} does not exist (or is a file); create it or "
                        f"choose another")


def input_file(node: dict, *keys: str) -> None:
    for key in keys:
        if node.get(key) and not Path(str(node[key])).is_file():
            fail(key, node[key], "file not found")


def make_options(cls, values: dict):
    """`cls(**values)`, an unknown key named in one line (the Python API's typo check)."""
    known = {f for f in cls.__dataclass_fields__}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"config: {unknown[0]}: unknown option; "
                          f"{did_you_mean(unknown[0], sorted(known))}expected one of {', '.join(sorted(known))}")
    return cls(**values)


@dataclass
class PredictOptions:
    inputs: Optional[str] = None  # TranscriptionNet: a gene list file (None: every gene); TFNet: a
    #                               matrix of new samples (None: the test samples); GenoNet: a PLINK prefix
    genes: Optional[str] = None   # TranscriptionNet's name for inputs (a file, one gene ID per line)
    pert_types: Optional[List[str]] = None  # TranscriptionNet: None = every type the run was trained on
    format: Any = "parquet"       # parquet | csv | gctx | h5ad, or several: format=[parquet,gctx,h5ad]
    output: Optional[str] = None  # path stem; default RUN_DIR/predictions (.parquet / .csv / ... added)
    gene_table: Optional[str] = None  # Entrez ID <-> symbol table; default DATA_ROOT/gene_meta*.csv[.gz]
    chunk_size: int = 1024        # rows per prediction chunk (bounds memory)
    method: Optional[str] = None  # GenoNet: genonet (default) | genonet_noannot | elastic_net | elastic_net_annot

    def check(self) -> None:
        node = vars(self)
        formats = [self.format] if isinstance(self.format, str) else list(self.format or [])
        bad = [f for f in formats if f not in PREDICT_FORMATS]
        if bad or not formats:
            fail("format", self.format, f"{did_you_mean(bad[0] if bad else '', PREDICT_FORMATS)}"
                                        f"expected one or several of {', '.join(PREDICT_FORMATS)}")
        if self.inputs is not None and self.genes is not None:
            fail("genes", self.genes, "give inputs= or genes= (TranscriptionNet's name for it), not both")
        positive_int(node, "", "chunk_size")
        if self.output:
            output_folder(str(self.output), "output")

    @property
    def formats(self) -> list[str]:
        return [self.format] if isinstance(self.format, str) else list(self.format)


@dataclass
class LightupOptions:
    mode: str = "double"          # double: raise a TF two-fold (log_base(2) data units) | sd: raise by k sd
    k: float = 1.0                # sd steps for mode=sd
    log_base: float = math.e      # base of the data's log scale (e for log1p / natural log, 2 for log2)
    chunk: int = 256              # TFs per vmapped forward pass (bounds memory)
    jacobian: bool = True         # also the Jacobian-at-background variant (column `jacobian`)
    known: Optional[str] = None   # TRRUST-format known TF-target pairs; synthetic runs use their planted edges
    gene_table: Optional[str] = None  # maps known pairs to the run's gene IDs; None = data.gene_table

    def check(self) -> None:
        node = vars(self)
        one_of(node, "", "mode", LIGHTUP_MODES)
        positive_number(node, "", "k")
        positive_int(node, "", "chunk")
        number_in(node, "", "log_base", 1.0, float("inf"), low_open=True, high_open=True)
        input_file(node, "known", "gene_table")


@dataclass
class CoreTFsOptions:
    importance: str = "lightup"   # lightup (mean |light-up| at +1 sd) | gradient (mean |d target / d TF|)
    drop_fraction: float = 0.2    # each candidate set drops this share of the previous one's TFs
    min_tfs: int = 5
    retrain_steps: int = 600      # steps of the one nested fine-tune (all sets), warm-started from the model
    keep: List[float] = field(default_factory=lambda: [0.8, 0.95])  # report the smallest sets keeping
    #                                                                 these shares of the full model's fit

    def check(self) -> None:
        node = vars(self)
        one_of(node, "", "importance", IMPORTANCE)
        number_in(node, "", "drop_fraction", 0.0, 1.0, low_open=True, high_open=True)
        positive_int(node, "", "min_tfs", "retrain_steps")
        keep = self.keep
        if not keep or not all(isinstance(v, (int, float)) and 0 < v <= 1 for v in keep):
            fail("keep", keep, "expected a list of shares in (0, 1], e.g. [0.8,0.95]")


@dataclass
class DiseaseOptions:
    # Tables: columns gene, log_fc (case vs control, in log_base units). A synthetic run
    # without tables uses its planted case-vs-control contrast.
    tf_fold_changes: Optional[str] = None
    observed: Optional[str] = None
    log_base: float = math.e      # 2 for log2 fold-changes on log2 data; e for natural log / log1p

    def check(self) -> None:
        node = vars(self)
        if bool(self.tf_fold_changes) != bool(self.observed):
            missing = "observed" if self.tf_fold_changes else "tf_fold_changes"
            fail(missing, None, "give both tables, tf_fold_changes= and observed= (columns gene, "
                                "log_fc), or neither for a synthetic run's planted contrast")
        input_file(node, "tf_fold_changes", "observed")
        number_in(node, "", "log_base", 1.0, float("inf"), low_open=True, high_open=True)


# The commands' configs: the options and the run dir they act on.
@dataclass
class PredictCommand(PredictOptions):
    run_dir: str = MISSING


@dataclass
class LightupCommand(LightupOptions):
    run_dir: str = MISSING
    which: str = "best"           # best | latest checkpoint

    def check(self) -> None:
        super().check()
        one_of(vars(self), "", "which", CHECKPOINTS)


@dataclass
class CoreTFsCommand(CoreTFsOptions):
    run_dir: str = MISSING


@dataclass
class DiseaseCommand(DiseaseOptions):
    run_dir: str = MISSING


COMMAND_SCHEMAS = {"predict": PredictCommand, "lightup": LightupCommand, "core_tfs": CoreTFsCommand,
                   "disease": DiseaseCommand}
