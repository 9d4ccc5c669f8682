"""The config dataclasses: the one definition of every config default.

Each Hydra group file (configs/<group>/<option>.yaml) starts from one of these schemas
(registered by `tfnet_jax.config`) and lists only the values that differ. The generator
configs (SyntheticConfig, GRNConfig, GenoSimConfig, CMapConfig, AnnDataConfig) and TrainConfig are also
used directly from Python; their `*Data` subclasses add the keys a `data` config carries
besides the generator's arguments (`name`, `pert_types`, `cache`).

Data-seed policy: a synthetic generator's `data.seed` is its own field, 0 by default for
every family, so the data set stays fixed while the top-level `seed` varies the model
initialisation, batch order and split: seeds are training replicates on one data set.

Pure dataclasses (no jax, numpy or omegaconf): importing this module is cheap.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional, Tuple

from tfnet_jax.errors import DataError

MISSING = "???"  # OmegaConf's marker of a value the user must set

FAMILY_NAMES = ("transcriptionnet", "tfnet", "genonet")
MONITOR_MODES = ("max", "min")
COLLAPSE_MODES = ("mean", "weighted")
CMAP_REQUIRED = ("gctx", "siginfo", "geneinfo", "networks")


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

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"train: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**values)


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


# ---------------------------------------------------------------- data sources
@dataclass
class SyntheticConfig:
    seed: int = 0
    num_genes: int = 3000
    num_communities: int = 24
    latent_dim: int = 16
    hidden_dim: int = 24
    num_readouts: int = 978
    perts_per_type: int = 420
    # One entry per layer: mean degree, fraction of edges inside communities,
    # fraction of genes present in the layer, relevance to the planted function.
    layer_names: List[str] = field(default_factory=lambda: ["ppi", "pathway", "coexpression"])
    layer_degree: List[float] = field(default_factory=lambda: [8.0, 12.0, 6.0])
    layer_within: List[float] = field(default_factory=lambda: [0.9, 0.8, 0.1])
    layer_coverage: List[float] = field(default_factory=lambda: [0.8, 0.6, 0.9])
    layer_relevance: List[float] = field(default_factory=lambda: [1.0, 0.6, 0.0])
    within_community_sd: float = 0.8
    effect_scale: float = 1.0
    type_difference: float = 0.5
    noise_sd: float = 1.0
    feature_dim_noise: int = 16
    feature_noise_sd: float = 0.7
    node_features: bool = True


@dataclass
class GRNConfig:
    num_samples: int = 4000
    num_tfs: int = 300
    num_masters: int = 15          # the planted core
    num_targets: int = 3000
    num_states: int = 10           # cell states that set the masters' levels
    state_spread: float = 1.0      # sd of a master's level across states
    master_noise: float = 0.5      # within-state sd of a master
    tf_noise: float = 1.0          # independent sd of every non-master TF
    hill: float = 2.0              # Hill coefficient n of x^n / (K^n + x^n)
    master_targets: Tuple[int, int] = (1, 2)  # masters regulating each target (min, max)
    other_targets: Tuple[int, int] = (0, 3)   # other TFs regulating each target (min, max)
    master_weight: Tuple[float, float] = (0.8, 1.6)
    other_weight: Tuple[float, float] = (0.6, 1.2)
    activation_share: float = 0.65
    signal_share: Tuple[float, float] = (0.7, 0.98)  # per-target share of variance that is not noise
    disease_masters: int = 3       # masters shifted in the case-vs-control contrast
    disease_shift: float = 1.0     # log-space shift of each
    disease_samples: int = 300     # per arm
    seed: int = 0

    @classmethod
    def from_dict(cls, values: dict) -> "GRNConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DataError(f"data: unknown field(s) {unknown} for the synthetic GRN; known: "
                            f"{sorted(known)}")
        values = {k: tuple(v) if isinstance(getattr(cls, k, None), tuple) else v
                  for k, v in values.items()}
        config = cls(**values)
        if not 0 < config.num_masters < config.num_tfs:
            raise DataError(f"data.num_masters={config.num_masters} must be between 1 and "
                            f"num_tfs - 1 ({config.num_tfs - 1})")
        if not 0 <= config.disease_masters <= config.num_masters:
            raise DataError(f"data.disease_masters={config.disease_masters} must be between 0 and "
                            f"data.num_masters ({config.num_masters})")
        return config


@dataclass
class GenoSimConfig:
    num_genes: int = 200
    num_individuals: int = 400
    region_length: int = 200_000        # bp simulated per gene
    mutation_rate: float = 2e-8
    recombination_rate: float = 1e-8
    population_size: int = 10_000
    maf: float = 0.05
    max_variants: int = 300             # common variants kept per gene (evenly thinned)
    num_annotations: int = 4
    annotation_effect: float = 2.0      # scale of the annotation logits for P(causal)
    num_causal: int = 5
    heritability: float = 0.4
    mode: str = "nonadditive"           # "additive" | "nonadditive"
    dominance_share: float = 0.3        # shares of genetic variance in nonadditive mode
    interaction_share: float = 0.3
    null_fraction: float = 0.2          # genes with heritability 0
    gene_length: int = 20_000           # gene body, centred in its region
    region_spacing: int = 5_000_000     # bp between region starts on one chromosome
    trait_genes: int = 3                # genes whose genetic expression drives trait.csv
    trait_heritability: float = 0.5
    seed: int = 0


@dataclass
class CMapConfig:
    """The `data=cmap` config (configs/data/cmap.yaml) less the common keys."""

    gctx: Optional[str] = None
    siginfo: Optional[str] = None
    geneinfo: Optional[str] = None
    networks: Optional[str] = None
    node_features: Optional[str] = None
    cell: Optional[str] = None          # None = collapse across all cells
    collapse: str = "mean"              # mean | weighted (by replicate count)
    type_map: Dict[str, str] = field(default_factory=dict)  # siginfo pert_type -> type; {} = DEFAULT_TYPE_MAP

    def validate(self) -> None:
        for name in CMAP_REQUIRED:
            if getattr(self, name) in (None, "", "???"):
                raise DataError(f"data.{name}: set it to a file or directory of the CMap data set")
        if self.collapse not in COLLAPSE_MODES:
            raise DataError(f"data.collapse: {self.collapse!r} is not one of "
                            f"{list(COLLAPSE_MODES)}")


@dataclass
class AnnDataConfig:
    """The `data=anndata` config (configs/data/anndata.yaml) less the common keys: a Perturb-seq
    `.h5ad` of cells (or pseudobulk profiles) -> signatures (tfnet_jax/data/perturbseq.py)."""

    path: str = MISSING
    networks: str = MISSING               # directory of edge lists, as ROOT/networks of data=dir
    node_features: Optional[str] = None
    gene_column: str = "gene"             # obs: the perturbed gene (or a control label)
    type_column: Optional[str] = None     # obs: perturbation type label; None = default_type
    default_type: str = "CRISPR"
    # label -> type (case-insensitive); empty = DEFAULT_TYPE_MAP. Set with a leading + (a new
    # key): +data.type_map='{KD: RNAi}'. Not Optional: OmegaConf cannot merge a dict into None.
    type_map: Dict[str, str] = field(default_factory=dict)
    control_column: Optional[str] = None  # obs: boolean; None = control_labels in gene_column
    control_labels: List[str] = field(default_factory=lambda: [
        "non-targeting", "non_targeting", "nontargeting", "control", "ctrl"])
    batch_column: Optional[str] = None    # obs, e.g. gem_group: controls matched within a batch
    log1p: bool = False                   # X holds raw counts: per cell target_sum-normalise, log1p
    target_sum: float = 1e4
    var_column: Optional[str] = None      # var: gene IDs to use instead of var_names
    readout_column: Optional[str] = None  # var: boolean readout subset, e.g. highly_variable
    readout_list: Optional[str] = None    # file, one readout gene per line
    gene_table: Optional[str] = None      # map symbols / Ensembl IDs -> Entrez (networks keyed by Entrez)
    min_cells: int = 1                    # perturbations with fewer cells are skipped


@dataclass
class SyntheticData(SyntheticConfig):
    name: str = "synthetic"
    pert_types: Optional[List[str]] = None  # None = every type: RNAi, CRISPR, OE


@dataclass
class GRNData(GRNConfig):
    name: str = "grn"


@dataclass
class GenoSimData(GenoSimConfig):
    name: str = "genosim"
    # Directory for the simulated files; None: $TMPDIR/tfnet_jax_genosim/<config digest>.
    cache: Optional[str] = None


@dataclass
class CMapData(CMapConfig):
    name: str = "cmap"
    pert_types: Optional[List[str]] = None  # None = every type found


@dataclass
class AnnDataData(AnnDataConfig):
    name: str = "anndata"
    pert_types: Optional[List[str]] = None  # None = every type found


@dataclass
class DirData:
    """ROOT/networks/*.tsv[.gz], ROOT/signatures/<TYPE>.csv[.gz], optional node features, splits."""
    name: str = "dir"
    root: str = MISSING
    pert_types: Optional[List[str]] = None
    node_features: bool = True  # false ignores a node-feature file


@dataclass
class ExpressionSource:
    """An expression matrix for TFNet (tfnet_jax/data/expression.py)."""
    name: str = "expression"
    path: str = MISSING            # MATRIX.h5ad | .csv | .tsv | .parquet
    tf_list: str = MISSING         # one TF per line: the model's inputs
    targets: Optional[str] = None  # one gene per line; None = every gene that is not a TF
    transform: str = "none"        # none | log1p | cpm_log1p (per sample: no train/test leakage)
    group_column: Optional[str] = None  # study or tissue label (split.by=group)
    orientation: str = "auto"      # auto (= samples_x_genes) | samples_x_genes | genes_x_samples
    missing_tfs: str = "error"     # error | drop: listed TFs (or targets) absent from the matrix
    min_targets: int = 1
    gene_table: Optional[str] = None  # maps TF/target lists and light-up's known pairs to the matrix's IDs


@dataclass
class GenotypeSource:
    """Real genotypes for GenoNet (tfnet_jax/data/genotypes.py)."""
    name: str = "genotypes"
    bed: str = MISSING             # PLINK prefix (PREFIX.bed/.bim/.fam)
    expression: str = MISSING      # individuals x genes (first column IID)
    genes: str = MISSING           # gene, chrom, start, end
    covariates: Optional[str] = None   # regressed out on training rows per fold
    annotations: Optional[str] = None  # variant x features (first column = .bim variant id)
    window: int = 1_000_000        # cis window, bp either side of the gene body
    maf: float = 0.01
    max_variants: int = 2000       # nearest variants to the gene body kept per gene
    genes_subset: Optional[List[str]] = None
    chrom: Optional[str] = None    # only this chromosome's genes (one job per chromosome)
    allow_missing_individuals: bool = False  # expression rows without genotypes: dropped, not an error


# ---------------------------------------------------------------- models
@dataclass
class ModelBase:
    """Keys of every model: the method label, its family, and an optional plug-in network."""
    name: str = MISSING
    family: str = MISSING   # transcriptionnet | tfnet | genonet
    _target_: Optional[str] = None  # import path of a user network class; None = the built-in one
    options: Dict[str, Any] = field(default_factory=dict)  # the plug-in network's kwargs


@dataclass
class RefineConfig:
    """GenSAN cross-type refinement, trained jointly."""
    enabled: bool = False
    dim: int = 16
    heads: int = 2
    blocks: int = 1
    inducing: int = 16   # readout axis factorised through this many tokens
    recycles: int = 1


@dataclass
class GuardConfig:
    """Out-of-distribution guard (tfnet_jax/models/ood_guard.py): held-out genes whose features
    score above a training quantile are shrunk towards the training mean; the quantile and the
    shrinkage are chosen per type on the validation MSE, for the model and ridge / linear."""
    enabled: bool = True
    quantiles: List[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 0.9, 1.0])
    shrinks: List[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 0.9, 0.95])
    folds: int = 5           # cross-fitting folds of the training genes' reference scores


@dataclass
class TranscriptionNetConfig(ModelBase):
    name: str = "transcriptionnet"
    family: str = "transcriptionnet"
    node_input: str = "auto"   # auto | features | embedding | both
    hidden: int = 64
    gat_layers: int = 3
    heads: int = 4
    fusion: str = "attention"  # attention | mean
    fusion_dim: int = 32
    head_hidden: int = 256
    head_blocks: int = 2
    dropout: float = 0.2
    beta: float = 0.5          # loss = (1 - beta) * MSE + beta * (1 - Pearson r)
    on_target: bool = False    # learned per-type shift of the perturbed gene's own readout column
    linear_skip: bool = False  # per-type linear path from the perturbed gene's own features
    skip_init: str = "zeros"   # zeros | ridge (closed-form ridge on training genes)
    refine: RefineConfig = field(default_factory=RefineConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    encoder: str = "gat"       # gat | sign (SIGN/SGC: node features propagated once, per hop a Linear)
    hops: int = 2              # encoder=sign: X, ÂX, ..., Â^hops X per network layer


@dataclass
class TFNetConfig(ModelBase):
    name: str = "tfnet"
    family: str = "tfnet"
    hidden: List[int] = field(default_factory=lambda: [250, 250])  # the paper: 2 x 250
    activation: str = "elu"    # elu | relu | gelu | tanh | silu
    dropout: float = 0.3       # on hidden units: the MLP overfits the noise without it
    input_dropout: float = 0.0
    linear_skip: bool = True   # a linear TF -> target path beside the MLP (false: the paper's MLP)
    skip_init: str = "ridge"   # zeros | ridge (validation-chosen ridge fit; the MLP learns the rest)
    skip_trainable: bool = False  # false: the linear path stays at its initial fit


@dataclass
class ElasticNetConfig:
    """PredictDB: alpha 0.5, lambda by inner CV (tfnet_jax/models/elastic_net.py)."""
    alpha: float = 0.5
    inner_folds: int = 5
    n_lambdas: int = 30
    max_iter: int = 15  # FISTA iterations per lambda (warm-started): 30 cost 2x for +0.0003 R^2
    tol: float = 1e-3
    block: int = 16


@dataclass
class GenoNetConfig(ModelBase):
    name: str = "genonet"
    family: str = "genonet"
    annotations: bool = True   # also fit the annotation-sharing GenoNet (when the data have them)
    genes_per_block: int = 128  # genes trained in one program (padded to one shape: one compile)
    channels: int = 4          # conv channels
    kernel: int = 7            # conv width, in variants
    hidden: int = 16           # MLP width after max + mean pooling
    gate_hidden: int = 8       # width of the shared annotation network g
    dropout: float = 0.1
    init_scale: float = 0.05   # initial per-variant scale r
    l1: float = 0.01           # L1 penalty on the per-variant scales r (sparsity)
    linear_skip: bool = True   # linear_init=zeros only: a lasso path beside the network
    # elastic_net: the linear path is this outer fold's elastic net (training rows only) and the
    # network starts at output 0, fitting the non-additive remainder | zeros: learned lasso path
    linear_init: str = "elastic_net"
    linear_trainable: bool = False  # elastic_net start: keep its weights frozen
    # Per gene and fold, the network sees this many variants, screened on training rows (the
    # elastic net's picks, then |correlation|); null: every variant. The elastic net reads all.
    screen_variants: int | None = 128  # the narrowest bucket: the network costs alike in every bucket
    # elastic_net start: also a frozen path over the dominance codings and pairwise products of
    # this many of the start's strongest variants, its penalty chosen by inner CV (0: additive only)
    epistasis_variants: int = 8
    elastic_net: ElasticNetConfig = field(default_factory=ElasticNetConfig)
    # Outer folds are split.folds (split=genonet); early stopping uses the elastic net's inner fold 0.
