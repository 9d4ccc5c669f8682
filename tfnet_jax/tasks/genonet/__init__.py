"""GenoNet: cis genotypes (+ variant annotations) -> a gene's expression (TWAS stage 1).

family.py: the Family hooks; prepare.py: per-fold arrays, model and loss; fit.py: the elastic
nets and the fold x block training loop; scores.py: per-gene tables; export.py: PredictDB files.
"""
from tfnet_jax.tasks.genonet.family import GenoNetFamily

__all__ = ["GenoNetFamily"]
