"""GenoNet's fit cache and elastic nets: the PredictDB baseline and GenoNet's additive start.

Finished work lives in one place, `FitCache` (RUN/fits/<unit>.npz, written atomically):
each elastic net (block by block) and each fold x block GenoNet fit (`fit.py`) is a unit, so
a killed run redoes only its missing units. The run identity check (tasks/identity.py) ties
the dir to one config.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tfnet_jax.atomic import atomic_write_with
from tfnet_jax.data.genotype.blocks import fold_targets, real_genes
from tfnet_jax.models.elastic_net import fit_nested_cv, fold_masks
from tfnet_jax.schemas.models import ElasticNetConfig
from tfnet_jax.tasks.genonet import prepare as task


class FitCache:
    """Finished fits by unit name: in memory, and under `root` (RUN/fits) when given."""

    def __init__(self, root: Path | None):
        self.root = None if root is None else Path(root)
        self.units: dict[str, dict[str, np.ndarray]] = {}

    def path(self, name: str) -> Path:
        return self.root / f"{name}.npz"

    def get(self, name: str) -> dict[str, np.ndarray] | None:
        if name not in self.units and self.root is not None and self.path(name).exists():
            with np.load(self.path(name), allow_pickle=False) as f:
                self.units[name] = {k: f[k] for k in f.files}
        return self.units.get(name)

    def put(self, name: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        if self.root is not None:
            self.path(name).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_with(self.path(name), lambda tmp: np.savez(tmp, **arrays))
        self.units[name] = arrays
        return arrays

    def cached(self, name: str, compute) -> dict[str, np.ndarray]:
        found = self.get(name)
        return found if found is not None else self.put(name, compute())

    def discard(self, folder: str) -> None:
        """Drop the units under `folder` (parts already merged into a finished unit)."""
        self.units = {k: v for k, v in self.units.items() if not k.startswith(folder + "/")}
        if self.root is not None and (self.root / folder).is_dir():
            for part in (self.root / folder).glob("*.npz"):
                part.unlink()
            (self.root / folder).rmdir()


# ---------------------------------------------------------------- elastic net
def annotation_penalty(blocks, coef: np.ndarray, genes_half: np.ndarray) -> np.ndarray | None:
    """Penalty factors [G, P] from annotations, learned on the OTHER half of the genes.

    A logistic model of 'variant has a non-zero elastic-net weight' on the annotations is
    fitted on one half of the genes and applied to the other (and vice versa), so no gene's
    own expression shapes its penalties. Factor = 1 / predicted probability (glmnet then
    rescales the factors to mean 1 per gene).
    """
    if blocks[0].annotations is None:
        return None
    from sklearn.linear_model import LogisticRegression

    annot = real_genes(blocks, "annotations")  # [G, P, k]
    vmask = real_genes(blocks, "vmask")
    pf = np.ones(vmask.shape, np.float64)
    for half in (0, 1):
        fit_genes, apply_genes = genes_half != half, genes_half == half
        a = annot[fit_genes][vmask[fit_genes]]
        label = (coef[fit_genes][vmask[fit_genes]] != 0).astype(int)
        if label.min() == label.max():
            continue  # nothing to learn from: flat penalties
        prob = LogisticRegression(C=1.0).fit(a, label).predict_proba(
            annot[apply_genes].reshape(-1, annot.shape[-1]))[:, 1]
        pf[apply_genes] = 1.0 / np.maximum(prob.reshape(-1, annot.shape[1]), 1e-3)
    return np.where(vmask, pf, 1.0)


def fit_elastic_net(data, blocks, folds: np.ndarray, en_cfg: ElasticNetConfig, seed: int, penalty=None,
                    cache: FitCache | None = None, name: str = "elastic_net") -> dict:
    """Held-out predictions [G, n], final weights [G, P], and per outer fold c (fitted without
    its rows) the fold's own model `coef_folds` [K, G, P] / `intercept_folds` [K, G] and
    `coef_start` [K, G, P] / `intercept_start` [K, G]: the same nested CV's inner fit that also
    left out the rows of inner fold 0 (GenoNet's early-stopping rows, `early_stopping_rows`),
    at fold c's lambda.min: GenoNet's frozen linear start, which never saw them.

    One gene block at a time (memory bounded by the block, not the cohort); with `cache`, each
    block is a unit `<name>/block<b>`, so a killed run refits only its missing blocks. Without
    missing dosages or covariates one nested-CV call serves every fold; otherwise one call per
    outer fold (imputation / covariates fitted on that fold's training rows) plus one on all
    rows for the final weights.
    """
    widest = max(b.vmask.shape[1] for b in blocks)
    starts = np.cumsum([0] + [len(b.genes) for b in blocks])
    out: dict[str, np.ndarray] = {}
    for b, block in enumerate(blocks):
        genes = np.arange(starts[b], starts[b + 1])
        width = block.vmask.shape[1]

        def compute(block=block, genes=genes, width=width):
            return _fit_elastic_net_group(data, [block], folds, en_cfg, seed,
                                          None if penalty is None else penalty[genes, :width])
        fit = compute() if cache is None else cache.cached(f"{name}/block{b}", compute)
        for key, value in fit.items():
            gene_axis = 1 if key.endswith(("_folds", "_start")) else 0
            if key not in out:
                shape = list(value.shape)
                shape[gene_axis] = starts[-1]
                if key.startswith("coef"):
                    shape[-1] = widest
                out[key] = np.zeros(shape, value.dtype)
            index = [slice(None)] * value.ndim
            index[gene_axis] = genes
            if key.startswith("coef"):
                index[-1] = slice(0, width)
            out[key][tuple(index)] = value
    return out


def cached_elastic_net(cache: FitCache, name: str, data, blocks, folds, en_cfg, seed, penalty=None) -> dict:
    """`name`'s finished fit from `cache`, else fitted block by block (parts `<name>/block<b>`,
    so a kill loses one block) and merged into one unit; the parts then go."""
    found = cache.get(name)
    if found is None:
        found = cache.put(name, fit_elastic_net(data, blocks, folds, en_cfg, seed, penalty, cache, name))
        cache.discard(name)
    return found


def _fit_elastic_net_group(data, blocks, folds: np.ndarray, en_cfg: ElasticNetConfig, seed: int,
                           penalty=None) -> dict:
    """The real genes of `blocks` (of one width); see fit_elastic_net."""
    x = real_genes(blocks, "dosage")  # [n, G, P]
    vmask = real_genes(blocks, "vmask")
    opts = dict(task.nested_cv_options(en_cfg, seed), penalty_factor=penalty)
    fold_dependent = bool(np.isnan(x).any()) or data.covariates is not None
    everyone = np.ones(len(folds), bool)
    columns = [data.expression.columns.get_loc(g) for b in blocks for g in b.genes]

    def call(train):  # padding is 0, never NaN: imputing leaves it 0
        xi = task.impute_train_mean(x, train).transpose(1, 0, 2)  # a view: fit_nested_cv copies per gene
        return fit_nested_cv(xi, vmask, fold_targets(data, train)[:, columns].T, folds, **opts)

    final = call(everyone)
    k = folds.max() + 1
    per_fold = [call(folds != c) for c in range(k)] if fold_dependent else [final] * k
    pred = final["pred"]
    if fold_dependent:
        pred = np.empty_like(pred)
        for c, fit in enumerate(per_fold):
            pred[:, folds == c] = fit["pred"][:, folds == c]

    def stacked(key):  # [K, G, ...]: each outer fold's entry from the call that fitted it
        return np.stack([fit[key][:, c] for c, fit in enumerate(per_fold)])
    return {"pred": pred, "coef": final["coef"], "intercept": final["intercept"],
            "coef_folds": stacked("coef_outer"), "intercept_folds": stacked("intercept_outer"),
            "coef_start": stacked("coef_start"), "intercept_start": stacked("intercept_start")}


def early_stopping_rows(folds: np.ndarray, inner_folds: int, seed: int) -> list[np.ndarray]:
    """Per outer fold c, GenoNet's early-stopping rows: the elastic net's inner fold 0 of
    problem c (`fit_nested_cv` draws the same inner folds from the same seed)."""
    inner = fold_masks(folds, inner_folds, seed)["inner"]
    return [np.flatnonzero(inner[c] == 0) for c in range(folds.max() + 1)]
