"""Honest reference predictors: every statistic is fitted on training rows only.

Query rows contribute nothing but their gene index / features, so a model has to beat
these with the same information before its numbers mean anything. The whole set, per type:
`baseline_suite.fit_predict_baselines`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import RidgeCV

from tfnet_jax.data.scaling import Standardiser
from tfnet_jax.maths import row_pearson
from tfnet_jax.models.linear import ridge_fit

if TYPE_CHECKING:  # only for annotations; keeps this module free of data-package imports
    from tfnet_jax.data.networks import NetworkLayer

DEFAULT_ALPHAS = np.logspace(-2, 4, 13)


def _train_mean(train_values) -> np.ndarray:
    values = np.asarray(train_values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"train_values must be a non-empty 2-D array [n, R], got shape {values.shape}")
    return values.mean(axis=0)


def mean_baseline(train_values, n_query: int) -> np.ndarray:
    """The training-mean signature repeated for each of `n_query` rows: [n_query, R]."""
    mean = _train_mean(train_values)
    return np.tile(mean.astype(np.float32), (int(n_query), 1))


def _standardise(train_x: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale every matrix by the training rows' mean / sd (constant features: centred only)."""
    scaler = Standardiser.fit(train_x, name="train_features")
    return [scaler.transform(x) for x in (train_x, *others)]


def _as_features(x, name: str, n_cols: int | None = None) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or (n_cols is not None and arr.shape[1] != n_cols):
        want = "[n, F]" if n_cols is None else f"[n, {n_cols}]"
        raise ValueError(f"{name} must be a 2-D array {want}, got shape {arr.shape}")
    return arr


def ridge_baseline(train_features, train_values, valid_features, valid_values, query_features,
                   alphas: Sequence[float] = DEFAULT_ALPHAS, standardise: bool = True) -> np.ndarray:
    """Ridge regression from gene features to signatures: [n_query, R].

    Features are standardised with training statistics (standardise=False: only centred, for
    features that already share one scale, such as an orthonormal embedding, where scaling a
    column the training rows barely touch would blow up the query rows that it does). alpha maximises the mean
    pearson_delta on the validation rows (centred on the training mean, as at test
    time); with no validation rows, RidgeCV's leave-one-out choice on the training rows
    is used instead. The final model is fitted on the training rows alone.
    """
    x_tr = _as_features(train_features, "train_features")
    n_feat = x_tr.shape[1]
    x_va = _as_features(valid_features, "valid_features", n_feat)
    x_q = _as_features(query_features, "query_features", n_feat)
    y_tr = np.asarray(train_values, dtype=np.float64)
    y_va = np.asarray(valid_values, dtype=np.float64)
    mean = _train_mean(y_tr)
    if y_tr.shape[0] != x_tr.shape[0]:
        raise ValueError(f"train_features has {x_tr.shape[0]} rows but train_values {y_tr.shape[0]}")
    if x_va.shape[0] and y_va.shape != (x_va.shape[0], y_tr.shape[1]):
        raise ValueError(f"valid_values must have shape {(x_va.shape[0], y_tr.shape[1])}, "
                         f"got {y_va.shape}")
    if standardise:
        x_tr, x_va, x_q = _standardise(x_tr, x_va, x_q)
    alphas = np.asarray(alphas, dtype=np.float64)

    if x_va.shape[0] == 0:
        alphas = np.asarray([RidgeCV(alphas=alphas).fit(x_tr, y_tr).alpha_])

    def mean_pearson_delta(pred, true):
        return float(np.mean(row_pearson(pred - mean, true - mean)))

    coef, intercept, _ = ridge_fit(x_tr, y_tr, x_va, y_va, alphas, score=mean_pearson_delta)
    return (x_q @ coef + intercept).astype(np.float32)


def network_adjacency(layers: Sequence["NetworkLayer"], num_genes: int) -> sp.csr_matrix:
    """Symmetric [N, N] adjacency summed over layers, each layer scaled by its max weight.

    Scaling by the max keeps one layer with large raw weights (e.g. counts) from
    drowning out layers scored in [0, 1]. Self-loops are dropped so a gene never
    averages its own signature.
    """
    rows, cols, vals = [], [], []
    for layer in layers:
        w = np.asarray(layer.weights, dtype=np.float64)
        if w.size == 0:
            continue
        s = np.asarray(layer.senders, dtype=np.int64)
        r = np.asarray(layer.receivers, dtype=np.int64)
        if s.min() < 0 or r.min() < 0 or max(s.max(), r.max()) >= num_genes:
            raise ValueError(f"layer {layer.name!r}: edge endpoint outside [0, {num_genes})")
        keep = s != r  # the data contract forbids self-loops; drop any anyway
        s, r, w = s[keep], r[keep], w[keep] / w.max()
        rows += [s, r]
        cols += [r, s]
        vals += [w, w]
    if not vals:
        return sp.csr_matrix((num_genes, num_genes))
    adj = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(num_genes, num_genes)).tocsr()  # duplicates are summed
    return adj


def _check_index(index, num_genes: int, name: str) -> np.ndarray:
    idx = np.asarray(index, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= num_genes):
        raise ValueError(f"{name} has gene indices outside [0, {num_genes})")
    return idx


def neighbor_baseline(layers: Sequence["NetworkLayer"], num_genes: int, train_index, train_values,
                      query_index) -> np.ndarray:
    """Weighted mean of the training signatures of each query gene's neighbours: [n_q, R].

    Edge weights come from `network_adjacency` (per-layer max-scaled, summed over layers).
    A query gene's own training row is never used; genes with no trained neighbour get
    the training mean. A gene with several training rows contributes their average.
    """
    values = np.asarray(train_values, dtype=np.float64)
    mean = _train_mean(values)
    tr = _check_index(train_index, num_genes, "train_index")
    q = _check_index(query_index, num_genes, "query_index")
    if tr.shape[0] != values.shape[0]:
        raise ValueError(f"train_index has {tr.shape[0]} entries but train_values {values.shape[0]} rows")

    # gene -> training-row averaging operator [N, n_tr]; trained genes have rows summing to 1.
    counts = np.bincount(tr, minlength=num_genes).astype(np.float64)
    to_rows = sp.csr_matrix((1.0 / counts[tr], (tr, np.arange(tr.size))),
                            shape=(num_genes, tr.size))
    trained = (counts > 0).astype(np.float64)

    adj_q = network_adjacency(layers, num_genes)[q]  # [n_q, N]
    weight = adj_q @ trained  # total weight on trained neighbours
    pred = np.asarray((adj_q @ to_rows) @ values)
    has = weight > 0
    pred[has] /= weight[has, None]
    pred[~has] = mean
    return pred.astype(np.float32)


def linear_baseline(train_features, train_values, valid_features, valid_values, query_features,
                    ranks: Sequence[int] = (4, 8, 16, 32), alphas: Sequence[float] = DEFAULT_ALPHAS,
                    feature_components: int = 64) -> np.ndarray:
    """Low-rank linear model (Ahlmann-Eltze, Huber & Anders 2025): Y ~ mean + P W G^T.

    G [R, K]: readout embedding, the top-K right singular vectors of the centred training
    signatures. P [n, C]: perturbation embedding, the gene features projected on their
    top-C training principal components. W [C, K] by ridge. K and alpha maximise the
    mean validation pearson_delta (without validation rows: the largest K, alpha 1).
    """
    x_tr = _as_features(train_features, "train_features")
    y_tr = np.asarray(train_values, dtype=np.float64)
    mean = _train_mean(y_tr)
    x_tr, x_va, x_q = _standardise(x_tr, _as_features(valid_features, "valid_features", x_tr.shape[1]),
                                   _as_features(query_features, "query_features", x_tr.shape[1]))
    _, _, y_axes = np.linalg.svd(y_tr - mean, full_matrices=False)
    _, _, x_axes = np.linalg.svd(x_tr, full_matrices=False)
    proj = x_axes[:feature_components].T
    p_tr = x_tr @ proj
    y_va = np.asarray(valid_values, dtype=np.float64)

    def fit(rank, alpha):
        g = y_axes[:rank].T
        # W = (P^T P + alpha I)^-1 P^T Y G, with G orthonormal.
        w = np.linalg.solve(p_tr.T @ p_tr + alpha * np.eye(p_tr.shape[1]), p_tr.T @ (y_tr - mean) @ g)
        return lambda x: mean + (x @ proj) @ w @ g.T

    ranks = [k for k in ranks if k <= y_axes.shape[0]] or [y_axes.shape[0]]
    if len(y_va) == 0:
        return fit(ranks[-1], 1.0)(x_q).astype(np.float32)
    scored = [(float(np.mean(row_pearson(fit(k, a)(x_va) - mean, y_va - mean))), k, a)
              for k in ranks for a in alphas]
    _, rank, alpha = max(scored, key=lambda item: item[0])
    return fit(rank, alpha)(x_q).astype(np.float32)


def cross_type_baseline(target_train: np.ndarray, source_train: dict[str, tuple[np.ndarray, np.ndarray]],
                        target_train_index: np.ndarray, query_index: np.ndarray) -> np.ndarray:
    """Transfer from other perturbation types of the same gene: mean_t + beta * delta_s.

    `source_train[s] = (gene_index, values)` holds the TRAINING signatures of type s.
    For each source type a scalar beta is fitted by least squares on genes that are
    training genes of both types; a query gene's prediction averages the transfers of
    the source types that observed it, else it is the training mean.
    """
    mean = _train_mean(target_train)
    target_rows = {int(g): i for i, g in enumerate(target_train_index)}
    pred = np.zeros((len(query_index), mean.shape[0]))
    count = np.zeros(len(query_index))
    for source_index, source_values in source_train.values():
        source_mean = source_values.mean(axis=0)
        rows = {int(g): i for i, g in enumerate(source_index)}
        shared = [g for g in rows if g in target_rows]
        if len(shared) < 3:
            continue
        x = np.concatenate([source_values[rows[g]] - source_mean for g in shared])
        y = np.concatenate([target_train[target_rows[g]] - mean for g in shared])
        beta = float(x @ y / max(x @ x, 1e-12))
        for q, g in enumerate(query_index):
            if int(g) in rows:
                pred[q] += beta * (source_values[rows[int(g)]] - source_mean)
                count[q] += 1
    pred = mean + pred / np.maximum(count, 1)[:, None]
    return pred.astype(np.float32)
