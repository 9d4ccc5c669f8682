"""Run-level config schemas: training, split, outputs, devices and processes, networks."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

MISSING = "???"  # OmegaConf's marker of a value the user must set

FAMILY_NAMES = ("transcriptionnet", "tfnet", "genonet")
MONITOR_MODES = ("max", "min")


# ---------------------------------------------------------------- train / split / outputs
@dataclass
class TrainConfig:
    seed: int = 0
    max_steps: int = 1500
    batch_size: int = 64
    full_batch: bool = False  # every training row in one step (one graph pass); batch_size unused
    eval_batch_size: int = 256
    learning_rate: float = 1e-3
    optimizer: str = "adamw"        # adam | adamw | sgd
    weight_decay: float = 1e-2
    schedule: str = "warmup_cosine"  # constant | cosine | warmup_cosine
    warmup_steps: int = 100
    grad_clip: Optional[float] = 1.0
    eval_every: int = 100
    log_every: int = 25
    patience: int = 5  # evaluations without improvement before stopping
    monitor: str = "valid/pearson_delta"
    monitor_mode: str = "max"
    keep_checkpoints: int = 2
    num_devices: Optional[int] = None  # None: every visible device
    progress: bool = True


@dataclass
class SplitConfig:
    """The held-out design of every family."""
    seed: int = 0            # configs/split/default.yaml: ${seed}
    valid_frac: float = 0.1  # holdout splits (GenoNet stops early on its elastic net's inner fold 0)
    test_frac: float = 0.2   # ignored when `folds` is set (each fold is the test set once)
    min_train: int = 5
    by: str = "sample"       # sample | group (TFNet: hold out whole groups of data.group_column)
    folds: Optional[int] = None  # outer cross-validation folds; None = one train/valid/test holdout
    # TranscriptionNet: unseen_genes (a test gene is held out in every type) | other_type (each
    # type split apart, so a test gene may keep its training signatures in other types)
    scenario: str = "unseen_genes"
    mode: str = "random"     # TranscriptionNet: random | farthest (least typical features held out)


@dataclass
class PredictionsConfig:
    write: bool = True  # predicted test values -> RUN_DIR/predictions_test.parquet


@dataclass
class DistributedConfig:
    """Multi-process training (tfnet_jax/train/distributed.py); the default runs one process.

    `auto`: jax.distributed.initialize() reads the cluster (SLURM, Open MPI, ...); the explicit
    form sets all three of coordinator, num_processes and process_id. Not part of a run's identity.
    """
    auto: bool = False
    coordinator: Optional[str] = None   # HOST:PORT of process 0's coordination service
    num_processes: Optional[int] = None
    process_id: Optional[int] = None
    timeout: int = 300                  # seconds to wait for every process to join


@dataclass
class NetworkConfig:
    layers: Optional[List[str]] = None  # None = every layer of the data
    # Index-based layer ablation, resolved at run time against the data's layer order
    # (after `layers`): all | only_<i> (layer i alone) | drop_<i> (every layer but i).
    ablation: str = "all"
