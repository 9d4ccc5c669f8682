"""Genotype -> expression task (TWAS stage 1): connects GenotypeData, GenoNet and the engine.

Genes are bucketed by variant count (next power of two, at least 128, as the elastic net
does) and grouped in fixed-size blocks within a bucket (a bucket's last block padded with
empty genes), so a narrow gene does not pay for the widest and every block of one bucket, on
every fold, runs the same compiled program (one compile per bucket).
Per outer fold (split by individual): missing dosages get the training mean, covariates are
regressed out on training rows, codings and expression are standardised on training rows;
a validation slice of the training individuals drives per-gene early stopping (the loop in
`tasks/genonet/fit.py`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tfnet_jax.data.genotype.blocks import Block
from tfnet_jax.data.genotype.readers import impute_train_mean
from tfnet_jax.data.scaling import Standardiser
from tfnet_jax.models.elastic_net import fit_nested_cv
from tfnet_jax.schemas.models import ElasticNetConfig, GenoNetConfig
from tfnet_jax.models.genonet import (
    GenoNet,
    GenoNetContext,
    GenoNetModelConfig,
    elastic_net_path,
    epistasis_features,
    epistasis_path,
    forward,
    heterozygote,
    linear_part,
)


@dataclass
class FoldBlock:
    """One block on one fold: imputed dosages, training-row scalers, standardised targets."""
    block: Block
    dosage: np.ndarray   # float32 [n, G, P], imputed with training means
    y: np.ndarray        # float32 [n, G], standardised on training rows (0 for padded genes)
    y_mean: np.ndarray   # [G]
    y_sd: np.ndarray
    context: GenoNetContext
    dosage_mean: np.ndarray  # float32 [G, P]: training-row means, the fill for new missing dosages
    screened: tuple[np.ndarray, np.ndarray] | None = None  # `prescreen`: [n, G, K] dosages, offset [n, G]

    def rows(self, index) -> dict[str, np.ndarray]:
        if self.screened is None:
            return {"dosage": self.dosage[index], "y": self.y[index]}
        dosage, offset = self.screened
        return {"dosage": dosage[index], "offset": offset[index], "y": self.y[index]}

    def unscale(self, pred: np.ndarray) -> np.ndarray:
        return pred * self.y_sd + self.y_mean


def codings(dosage: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The additive (A1 count) and dominance (heterozygote) codings of raw dosages (`encode`'s)."""
    return dosage, heterozygote(dosage)


def coding_stats(dosage: np.ndarray, rows: np.ndarray,
                 genes_per_slice: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and sd [G, P, 2] of the additive and dominance codings of dosages [n, G, P] over
    the training `rows`, and the float32 mean dosage [G, P] there.

    A coding constant on the training rows is only centred (sd 1), never blown up. A slice of
    genes at a time: the training rows' copy and the float64 temporaries stay O(n x slice x P),
    not O(n x G x P).
    """
    g, p = dosage.shape[1:]
    mu, sd = np.empty((g, p, 2)), np.empty((g, p, 2))
    mean = np.empty((g, p), np.float32)
    for start in range(0, g, genes_per_slice):
        genes = slice(start, start + genes_per_slice)
        training = dosage[:, genes][rows]
        coding = Standardiser.fit(np.stack(codings(training), -1), name="dosage coding")
        mu[genes], sd[genes] = coding.mean, coding.sd
        mean[genes] = training.mean(0)
    return mu, sd, mean


def prepare_fold(block: Block, y: np.ndarray, train: np.ndarray, annotations: bool) -> FoldBlock:
    """y [n, G_real] in data units for the block's genes; train bool [n] (fit rows)."""
    dosage = np.asarray(impute_train_mean(block.dosage, train), np.float32)
    n, g, p = dosage.shape
    mu, sd, dosage_mean = coding_stats(dosage, np.flatnonzero(train))
    y_full = np.zeros((n, g), np.float64)
    y_full[:, :y.shape[1]] = y
    target = Standardiser.fit(y_full, train, name="expression")
    y_mean, y_sd = target.mean, target.sd
    active = np.zeros(g, np.float32)
    active[:len(block.genes)] = 1.0
    context = GenoNetContext(vmask=block.vmask, mu=mu.astype(np.float32), sd=sd.astype(np.float32),
                             active=active, annotations=block.annotations if annotations else None)
    # Imputed training rows average to the observed mean (fills equal it): impute_train_mean's fill.
    return FoldBlock(block, dosage, ((y_full - y_mean) / y_sd).astype(np.float32),
                     y_mean, y_sd, context, dosage_mean)


def screen_width(model_cfg: GenoNetConfig, block: Block) -> int | None:
    """The network's variant width for `block`: model.screen_variants when the block is wider
    (None: no screening, the network sees every variant)."""
    width = model_cfg.screen_variants
    return int(width) if width and width < block.vmask.shape[1] else None


def nested_cv_options(en: ElasticNetConfig, seed: int) -> dict:
    """`models.elastic_net.fit_nested_cv`'s options from model.elastic_net."""
    return dict(inner_k=en.inner_folds, alpha=en.alpha, n_lambdas=en.n_lambdas, max_iter=en.max_iter,
                tol=en.tol, block=en.block, seed=seed)


def screen_variants(fold: FoldBlock, train: np.ndarray, width: int, coef: np.ndarray | None = None,
                    genes_per_slice: int = 16) -> np.ndarray:
    """Per gene, the `width` variants the network sees [G, width] (ascending: genomic order).

    Ranked on the training rows only: variants with a non-zero elastic-net weight (`coef`
    [G_real, >= P], the fold's start) first, then by the larger |correlation| of the additive
    or dominance coding with the target. Padding positions fill genes with fewer variants
    (masked off). Memory: one slice of genes at a time.
    """
    g, p = fold.block.vmask.shape
    rows = np.flatnonzero(train)
    y = fold.y[rows]
    mu, sd = fold.context.mu, fold.context.sd
    score = np.zeros((g, p), np.float32)
    for start in range(0, g, genes_per_slice):
        genes = slice(start, start + genes_per_slice)
        for j, coding in enumerate(codings(fold.dosage[rows, genes])):
            x = (coding - mu[genes, :, j]) / sd[genes, :, j]
            corr = np.abs(np.matmul(x.transpose(1, 2, 0), y[:, genes].T[:, :, None])[..., 0]) / len(rows)
            score[genes] = np.maximum(score[genes], corr)
    if coef is not None:
        chosen = np.zeros((g, p), bool)
        chosen[:len(coef)] = coef[:, :p] != 0
        score = np.where(chosen, score + 2.0, score)  # |corr| <= 1: elastic-net picks rank first
    score = np.where(fold.block.vmask, score, -1.0)
    top = np.argsort(-score, axis=1, kind="stable")[:, :width]
    return np.sort(top, axis=1).astype(np.int32)


def prescreen(fold: FoldBlock) -> None:
    """Training inputs cut to the screened variants (context `screen`): dosages [n, G, K] and
    the frozen elastic-net path over every variant as an offset [n, G] (0 without one)."""
    ctx = fold.context
    dosage = np.take_along_axis(fold.dosage, ctx.screen[None], axis=2)
    if ctx.lin is not None:  # what forward() adds from full dosages
        offset = np.asarray(elastic_net_path(fold.dosage, ctx.lin, ctx.mu, ctx.sd, ctx.vmask))
        if ctx.epi_w is not None:
            offset = offset + np.asarray(epistasis_path(fold.dosage, linear_part(ctx)))
    else:
        offset = np.zeros(fold.y.shape)
    fold.screened = (dosage, offset.astype(np.float32))


def additive_start(fold: FoldBlock, dosage: np.ndarray) -> np.ndarray:
    """The context's frozen additive (elastic-net) start on raw dosages [B, G, P] -> [B, G], in
    standardised y units (the intercept included)."""
    ctx = fold.context
    return np.asarray(elastic_net_path(dosage, ctx.lin, ctx.mu, ctx.sd, ctx.vmask)) + ctx.lin_b


def fit_epistasis(fold: FoldBlock, train: np.ndarray, coef: np.ndarray, width: int,
                  en_cfg: ElasticNetConfig, seed: int) -> dict[str, np.ndarray]:
    """The epistasis start (models/genonet.py) of one fold x block: per gene, the `width`
    variants with the largest |start weight| (`coef` [G_real, >= P], non-zero ones only), and
    an elastic net (inner CV, `en_cfg`) of the start's residuals on the training rows `train`
    over their dominance codings and pairwise products. Needs the context's lin / lin_b."""
    g, p = fold.block.vmask.shape
    strength = np.zeros((g, p))
    strength[:len(coef)] = np.abs(np.where(fold.block.vmask[:len(coef)], coef[:, :p], 0.0))
    idx = np.argsort(-strength, axis=1, kind="stable")[:, :width].astype(np.int32)
    chosen = np.take_along_axis(strength, idx, axis=1) > 0
    first, second = np.triu_indices(width, 1)
    usable = np.concatenate([chosen, chosen[:, first] & chosen[:, second]], 1)
    center = np.take_along_axis(fold.dosage_mean, idx, axis=1)
    rows = np.flatnonzero(train)
    dosage = fold.dosage[rows]
    residual = fold.y[rows] - additive_start(fold, dosage)
    feats = np.where(usable[None], epistasis_features(dosage, idx, center), 0.0)
    fit = fit_nested_cv(feats.transpose(1, 0, 2), usable, residual.T, np.arange(len(rows)) % 2,
                        **nested_cv_options(en_cfg, seed))
    found = usable.any(1)
    return {"epi_idx": idx, "epi_center": center.astype(np.float32),
            "epi_w": np.where(usable, fit["coef"][:, :usable.shape[1]], 0.0).astype(np.float32),
            "epi_b": np.where(found, fit["intercept"], 0.0).astype(np.float32)}


def build_model(model_cfg: GenoNetConfig, block: Block, annotations: bool, seed: int,
                num_genes: int | None = None) -> GenoNet:
    """`num_genes`: the gene count of a compacted block (default the block's)."""
    m = model_cfg
    k = block.annotations.shape[-1] if annotations and block.annotations is not None else 0
    return GenoNet(GenoNetModelConfig(
        num_genes=num_genes or block.size, num_variants=block.vmask.shape[1], num_annotations=k,
        screen_width=screen_width(m, block), channels=m.channels, kernel=m.kernel, hidden=m.hidden,
        gate_hidden=m.gate_hidden, dropout=m.dropout, init_scale=m.init_scale,
        linear_skip=m.linear_skip, linear_init=m.linear_init, linear_trainable=m.linear_trainable),
        rngs=nnx.Rngs(seed))


def linear_from_enet(fold: FoldBlock, coef: np.ndarray, intercept: np.ndarray) -> dict[str, np.ndarray]:
    """Elastic-net weights (original dosage scale, [G_real, >= P] / [G_real]: fits are padded to
    the widest bucket) in GenoNet's units.

    GenoNet sees additive dosages standardised with the fold's training mu / sd and predicts
    standardised y, so beta * x + b0 = (beta * sd) * x_std + (beta . mu + b0), then (. - y_mean) / y_sd.
    Padded genes get zeros.
    """
    g, p = fold.block.vmask.shape
    beta = np.zeros((g, p))
    b0 = np.zeros(g)
    beta[:len(coef)], b0[:len(coef)] = np.where(fold.block.vmask[:len(coef)], coef[:, :p], 0.0), intercept
    mu, sd = fold.context.mu[..., 0], fold.context.sd[..., 0]
    lin = beta * sd / fold.y_sd[:, None]
    lin_b = ((beta * mu).sum(-1) + b0 - fold.y_mean) / fold.y_sd
    real = np.arange(g) < len(coef)
    return {"lin": lin.astype(np.float32), "lin_b": np.where(real, lin_b, 0.0).astype(np.float32)}


def make_loss_fn(l1: float, genes: int | None = None):
    """`genes`: the full block's gene count, the mean's denominator (None: the model's), so a
    block compacted to its active genes (tasks/genonet/compact.py) has the same loss."""
    def loss_fn(model, batch, context, key):
        """Mean over the block's genes of active * (MSE + l1 * |r|_1); stopped genes add nothing."""
        pred = model(batch["dosage"], context, offset=batch.get("offset"), deterministic=False, key=key)
        rows = batch["mask"][:, None]
        mse = jnp.sum((pred - batch["y"]) ** 2 * rows, 0) / jnp.maximum(rows.sum(), 1.0)  # [G]
        active = context.active
        per_gene = mse + l1 * model.l1(context.vmask, context.screen)
        loss = jnp.sum(per_gene * active) / (genes or active.shape[0])
        return loss, {"mse": jnp.sum(mse * active) / jnp.maximum(active.sum(), 1.0)}
    return loss_fn


def predict_fn(model, batch, context):
    return model(batch["dosage"], context, offset=batch.get("offset"), deterministic=True)


@partial(jax.jit, static_argnames="linear_skip")
def predict_snapshot(params, dosage, mu, sd, vmask, linear_skip: bool):
    return forward(params, dosage, mu, sd, vmask, linear_skip=linear_skip)


@nnx.jit
def effective_params(model, annotations, vmask, linear=None, screen=None):
    return model.effective_params(annotations, vmask, linear, screen)
