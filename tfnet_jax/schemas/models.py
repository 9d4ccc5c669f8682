"""Model config schemas: one typed config per built-in model (and its family's keys)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from tfnet_jax.schemas.run import MISSING


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
    # The annotated GenoNet starts from the elastic net with annotation penalty factors (the
    # unannotated one from the plain elastic net): where causal chance rises with an annotation,
    # most of that signal is additive, which the network's annotation gate never reaches.
    annotated_start: bool = True
    # Validation R^2 (on the early-stopping rows, which no start saw) that an addition to the
    # additive start must add to be kept, per gene and fold: the epistasis start, then the
    # network; the per-gene choice takes GenoNet over the additive start only by it too.
    keep_margin: float = 0.02  # chosen on the panel's validation seed (README, GenoNet panel)
    elastic_net: ElasticNetConfig = field(default_factory=ElasticNetConfig)
    # Outer folds are split.folds (split=genonet); early stopping uses the elastic net's inner fold 0.
