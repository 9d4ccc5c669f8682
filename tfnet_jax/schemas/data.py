"""Data config schemas: each generator's and loader's arguments, and the `data` group's
`*Data` / `*Source` records (the generator's arguments plus `name`, `pert_types`, `cache`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from tfnet_jax.errors import ConfigError, DataError
from tfnet_jax.schemas.checks import one_of
from tfnet_jax.schemas.run import MISSING

COLLAPSE_MODES = ("mean", "weighted")
CMAP_REQUIRED = ("gctx", "siginfo", "geneinfo", "networks")


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

    def check(self) -> None:
        """The ranges that tie fields together (each field's type: its schema)."""
        if not 0 < self.num_masters < self.num_tfs:
            raise DataError(f"data.num_masters={self.num_masters} must be between 1 and "
                            f"num_tfs - 1 ({self.num_tfs - 1})")
        if not 0 <= self.disease_masters <= self.num_masters:
            raise DataError(f"data.disease_masters={self.disease_masters} must be between 0 and "
                            f"data.num_masters ({self.num_masters})")


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
    # Architecture panel (benchmarks/genonet_panel.py). None = off; None, not 0/False, so run dirs
    # and simulation caches made before these keys existed still match (tasks/identity.py).
    recessive_share: Optional[float] = None   # homozygous-minor indicator effects (nonadditive mode)
    carrier_share: Optional[float] = None     # carrier x carrier (threshold) pair effects (nonadditive mode)
    heritability_draw: Optional[str] = None   # None: every non-null gene at `heritability` | "beta"
    causal_annotation: Optional[int] = None   # P(causal) rises with this one annotation (else a mix)
    untyped_causal: Optional[bool] = None     # true: causal variants left out of the written genotypes
    # Effects (heritability, causal variants, effect sizes, noise, trait) from their own random
    # stream: every effect_seed on one `seed` shares the same genotypes and annotations. None:
    # one stream for both (the original simulations, which the published figures used).
    effect_seed: Optional[int] = None


@dataclass
class CMapConfig:
    """The `data=cmap` config (configs/data/cmap.yaml) less the common keys."""

    gctx: Optional[str] = None
    siginfo: Optional[str] = None
    geneinfo: Optional[str] = None
    networks: Optional[str] = None
    node_features: Optional[str] = None
    node_feature_files: Optional[List[str]] = None  # several tables, concatenated (instead of node_features)
    cell: Optional[str] = None          # None = collapse across all cells
    collapse: str = "mean"              # mean | weighted (by replicate count)
    type_map: Dict[str, str] = field(default_factory=dict)  # siginfo pert_type -> type; {} = DEFAULT_TYPE_MAP

    def validate(self) -> None:
        for name in CMAP_REQUIRED:
            if getattr(self, name) in (None, "", "???"):
                raise DataError(f"data.{name}: set it to a file or directory of the CMap data set")
        if self.node_features and self.node_feature_files is not None:
            raise DataError("data.node_features, data.node_feature_files: give one of them")
        if self.collapse not in COLLAPSE_MODES:
            raise DataError(f"data.collapse: {self.collapse!r} is not one of "
                            f"{list(COLLAPSE_MODES)}")


@dataclass
class AnnDataConfig:
    """The `data=anndata` config (configs/data/anndata.yaml) less the common keys: a Perturb-seq
    `.h5ad` of cells (or pseudobulk profiles) -> signatures (tfnet_jax/data/perturbation/perturbseq.py)."""

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
    node_features: bool = True  # false ignores the node-feature file(s)
    # Paths below (relative to) root, absolute allowed.
    node_feature_files: Optional[List[str]] = None  # None: the root's one node_features*.csv[.gz]
    extra_networks: List[str] = field(default_factory=list)  # layer files or directories of them
    go_features: Optional[str] = None  # None: root/node_features_go.csv.gz when present, else off


@dataclass
class ExpressionSource:
    """An expression matrix for TFNet (tfnet_jax/data/expression/readers.py)."""
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


GENOTYPE_FORMATS = ("bed", "vcf", "dosage")  # data.<key>: exactly one names the genotypes
VCF_FIELDS = ("DS", "GT")
GENOME_BUILDS = ("b37", "b38")


@dataclass
class GenotypeSource:
    """Real genotypes for GenoNet (tfnet_jax/data/genotype/readers.py), in one of three formats."""
    name: str = "genotypes"
    bed: Optional[str] = None      # PLINK prefix (PREFIX.bed/.bim/.fam)
    vcf: Optional[str] = None      # bgzipped VCF/BCF with a .tbi or .csi index
    dosage: Optional[str] = None   # PredictDB dosage text files, a pattern with {chrom}
    dosage_samples: Optional[str] = None  # one IID per line: the dosage files' columns
    vcf_field: str = "DS"          # DS (GT where a record has none) | GT (hard calls only)
    genome_build: Optional[str] = None  # b37 | b38: the suffix of PredictDB/GTEx variant IDs
    expression: str = MISSING      # individuals x genes (first column IID)
    genes: str = MISSING           # gene, chrom, start, end
    covariates: Optional[str] = None   # regressed out on training rows per fold
    annotations: Optional[str] = None  # variant x features (first column = the variant id)
    window: int = 1_000_000        # cis window, bp either side of the gene body
    maf: float = 0.01
    max_variants: int = 2000       # nearest variants to the gene body kept per gene
    genes_subset: Optional[List[str]] = None
    chrom: Optional[str] = None    # only this chromosome's genes (one job per chromosome)
    allow_missing_individuals: bool = False  # expression rows without genotypes: dropped, not an error

    def _given(self) -> list[str]:
        return [key for key in GENOTYPE_FORMATS if getattr(self, key) not in (None, "", MISSING)]

    def genotype_format(self) -> tuple[str, str]:
        """(key, value) of the one genotype input given: data.bed, data.vcf or data.dosage."""
        given = self._given()
        if len(given) != 1:
            got = " and ".join(f"data.{key}" for key in given) or "none"
            raise ConfigError(f"config: data.bed, data.vcf, data.dosage: give exactly one (got {got})")
        return given[0], str(getattr(self, given[0]))

    def check(self, complete: bool = True) -> None:
        """The ties between fields (each field's type: its schema). complete=False (a composed
        config, before its paths are set, as '???' fields are): no genotype input yet is fine."""
        one_of(vars(self), "data", "vcf_field", VCF_FIELDS)
        one_of(vars(self), "data", "genome_build", (None, *GENOME_BUILDS))
        if not complete and not self._given():
            return
        key, value = self.genotype_format()
        if key == "dosage":
            if "{chrom}" not in value:
                raise ConfigError(f"config: data.dosage={value!r}: the pattern needs {{chrom}} "
                                  f"(one file per chromosome), e.g. 'dosages/chr{{chrom}}.txt.gz'")
            if self.dosage_samples in (None, "", MISSING):
                raise ConfigError("config: data.dosage_samples: required with data.dosage "
                                  "(a file with one IID per line, in the dosage columns' order)")
