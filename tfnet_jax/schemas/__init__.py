"""The config dataclasses: the one definition of every config default.

Each Hydra group file (configs/<group>/<option>.yaml) starts from one of these schemas
(registered by `tfnet_jax.config`) and lists only the values that differ. The generator
configs (SyntheticConfig, GRNConfig, GenoSimConfig, CMapConfig, AnnDataConfig) and TrainConfig are also
used directly from Python; their `*Data` subclasses add the keys a `data` config carries
besides the generator's arguments (`name`, `pert_types`, `cache`).

Data-seed policy: a synthetic generator's `data.seed` is its own field, 0 by default for
every family, so the data set stays fixed while the top-level `seed` varies the model
initialisation, batch order and split: seeds are training replicates on one data set.

Pure dataclasses (no jax, numpy or omegaconf): importing them is cheap. run.py, data.py and
models.py hold them by concern; `checks.py` the field checks every config validation shares.
"""
# ruff: noqa: F401  (the schemas, re-exported: `from tfnet_jax.schemas import TrainConfig`)
from tfnet_jax.schemas.run import (FAMILY_NAMES, MISSING, MONITOR_MODES, DistributedConfig,
                                   NetworkConfig, PredictionsConfig, SplitConfig,
                                   TrainConfig)
from tfnet_jax.schemas.data import (CMAP_REQUIRED, COLLAPSE_MODES, AnnDataConfig, AnnDataData,
                                    CMapConfig, CMapData, DirData, ExpressionSource, GRNConfig,
                                    GRNData, GenoSimConfig, GenoSimData, GenotypeSource,
                                    SyntheticConfig, SyntheticData)
from tfnet_jax.schemas.models import (ElasticNetConfig, GenoNetConfig, GuardConfig, ModelBase,
                                      RefineConfig, TFNetConfig,
                                      TranscriptionNetConfig)
