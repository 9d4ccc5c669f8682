"""The prior baselines: go_ridge, go_forest (GO terms) and embedding_ridge (the multiplex's
spectral embedding), in fit_predict_baselines exactly when their inputs exist, never reading
a query row's signature."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tfnet_jax.data.networks import NetworkLayer
from tfnet_jax.data.perturbation.container import (
    FeatureBlock,
    GeneAnnotations,
    PerturbationData,
    SignatureTable,
)
from tfnet_jax.data.scaling import standardise_blocks
from tfnet_jax.maths import row_pearson
from tfnet_jax.models import prior_baselines
from tfnet_jax.models.baseline_suite import fit_predict_baselines, node_feature_matrix
from tfnet_jax.models.baselines import ridge_baseline

N_GENES, N_TERMS, N_READOUTS = 90, 12, 6


def planted(seed=0, go=True, edges=True, tables=1):
    """90 genes, two types over genes 0-79; signatures = GO terms x weights + noise."""
    rng = np.random.default_rng(seed)
    terms = (rng.random((N_GENES, N_TERMS)) < 0.3).astype(np.float32)
    annotated = np.ones(N_GENES, bool)
    annotated[::9] = False  # some genes without GO annotation: empty rows
    terms[~annotated] = 0
    weights = rng.normal(size=(N_TERMS, N_READOUTS))
    values = terms @ weights + 0.1 * rng.normal(size=(N_GENES, N_READOUTS))
    genes = np.array([f"g{i}" for i in range(N_GENES)])
    signatures = {t: SignatureTable(t, genes[rows], rows.astype(np.int32),
                                    (values[rows] + shift).astype(np.float32))
                  for t, rows, shift in (("ko", np.arange(80), 0.0), ("oe", np.arange(0, 80, 2), 1.0))}
    chain = np.arange(N_GENES - 1, dtype=np.int32)
    layers = [NetworkLayer("chain", chain, chain + 1, np.ones(N_GENES - 1, np.float32))] if edges else []
    features = rng.normal(size=(N_GENES, 4)).astype(np.float32)
    blocks = None
    if tables == 2:
        blocks = [FeatureBlock("a", slice(0, 2), np.arange(N_GENES) % 3 != 0),
                  FeatureBlock("b", slice(2, 4), np.arange(N_GENES) % 4 != 0)]
        for block in blocks:
            features[~block.present, block.columns] = 0
    return PerturbationData(
        genes=genes, layers=layers, readout_genes=np.array([f"r{j}" for j in range(N_READOUTS)]),
        signatures=signatures, node_features=features,
        has_features=np.ones(N_GENES, bool) if blocks is None else blocks[0].present | blocks[1].present,
        feature_blocks=blocks,
        go_features=GeneAnnotations(sp.csr_matrix(terms), annotated, np.array([f"GO:{i}" for i in range(N_TERMS)]))
        if go else None)


def splits_of(data):
    out = {}
    for t, table in data.signatures.items():
        label = np.array(["train"] * table.num_perts, dtype="<U5")
        label[np.arange(table.num_perts) % 5 == 3] = "valid"
        label[np.arange(table.num_perts) % 5 == 4] = "test"
        out[t] = label
    return out


def pearson_delta(pred, data, splits, t):
    table, label = data.signatures[t], splits[t]
    mean = table.values[label == "train"].mean(axis=0)
    return float(np.mean(row_pearson(pred - mean, table.values[label == "test"] - mean)))


@pytest.mark.parametrize("go, edges, expected", [
    (False, False, set()), (True, False, {"go_ridge", "go_forest"}),
    (False, True, {"embedding_ridge"}), (True, True, {"go_ridge", "go_forest", "embedding_ridge"})])
def test_present_exactly_when_inputs_exist(go, edges, expected):
    data = planted(go=go, edges=edges)
    out = fit_predict_baselines(data, splits_of(data))
    assert set(out) == {"mean", "neighbors", "cross_type", "ridge", "linear"} | expected
    for name in expected:
        assert {t: p.shape for t, p in out[name].items()} == {"ko": (16, N_READOUTS), "oe": (8, N_READOUTS)}


def test_names_limit_the_work_and_unknown_names_fail():
    data = planted()
    assert list(fit_predict_baselines(data, splits_of(data), names=["go_ridge", "mean"])) == ["mean", "go_ridge"]
    with pytest.raises(ValueError, match=r"unknown baseline\(s\) \['go_rigde'\]"):
        fit_predict_baselines(data, splits_of(data), names=["go_rigde"])


def test_test_signatures_are_never_read():
    data = planted(tables=2)
    splits = splits_of(data)
    clean = fit_predict_baselines(data, splits)
    poisoned = planted(tables=2)
    for t, table in poisoned.signatures.items():
        table.values[splits[t] == "test"] = 1e6 * np.random.default_rng(1).normal(
            size=table.values[splits[t] == "test"].shape)
    dirty = fit_predict_baselines(poisoned, splits)
    assert list(dirty) == list(clean)
    for name in clean:
        for t in clean[name]:
            np.testing.assert_array_equal(dirty[name][t], clean[name][t])


def test_planted_go_signal_is_recovered():
    data = planted()
    splits = splits_of(data)
    out = fit_predict_baselines(data, splits)
    for t in data.signatures:
        go_ridge = pearson_delta(out["go_ridge"][t], data, splits, t)
        assert go_ridge > 0.9 and go_ridge > pearson_delta(out["mean"][t], data, splits, t) + 0.5
        # the forest (top-32 components >= the 6 readouts: every direction) learns it too
        assert pearson_delta(out["go_forest"][t], data, splits, t) > 0.5


def test_go_ridge_is_ridge_on_the_informative_terms_plus_missing_column():
    data = planted()
    splits = splits_of(data)
    table, label = data.signatures["oe"], splits["oe"]
    x = np.column_stack([data.go_features.values.toarray()[table.pert_index],
                         ~data.go_features.present[table.pert_index]]).astype(np.float64)
    train = label == "train"
    keep = x[train].std(axis=0) > 0
    expected = ridge_baseline(x[train][:, keep], table.values[train], x[label == "valid"][:, keep],
                              table.values[label == "valid"], x[label == "test"][:, keep])
    np.testing.assert_allclose(fit_predict_baselines(data, splits)["go_ridge"]["oe"], expected, rtol=1e-6)


def test_go_forest_predicts_within_the_top_components_and_is_seeded():
    rng = np.random.default_rng(3)
    x = (rng.random((60, 8)) < 0.5).astype(float)
    y = x @ rng.normal(size=(8, 10)) + rng.normal(size=(60, 10))
    pred = prior_baselines.go_forest_baseline(x[:40], y[:40], x[40:], components=2)
    mean = y[:40].mean(axis=0)
    _, _, axes = np.linalg.svd(y[:40] - mean, full_matrices=False)
    # pred - mean lies in the span of the first two principal axes
    residual = (pred - mean) - (pred - mean) @ axes[:2].T @ axes[:2]
    assert np.abs(residual).max() < 1e-5 and np.linalg.matrix_rank(pred - mean, tol=1e-6) == 2
    np.testing.assert_array_equal(pred, prior_baselines.go_forest_baseline(x[:40], y[:40], x[40:], components=2))


def test_go_without_any_varying_term_gives_the_mean():
    data = planted()
    data.go_features = GeneAnnotations(sp.csr_matrix((N_GENES, 2), dtype=np.float32),
                                       np.ones(N_GENES, bool), np.array(["GO:a", "GO:b"]))
    splits = splits_of(data)
    out = fit_predict_baselines(data, splits, names=["go_ridge", "go_forest", "mean"])
    for t in data.signatures:
        np.testing.assert_allclose(out["go_ridge"][t], out["mean"][t])
        np.testing.assert_allclose(out["go_forest"][t], out["mean"][t])


def test_spectral_embedding_of_two_components_and_an_isolated_gene():
    # edges 0-1 (weight 2: every layer is scaled to max 1) and 2-3; gene 4 has none.
    layers = [NetworkLayer("a", np.array([0], np.int32), np.array([1], np.int32), np.array([2.0], np.float32)),
              NetworkLayer("b", np.array([2], np.int32), np.array([3], np.int32), np.array([5.0], np.float32))]
    embedding, isolated = prior_baselines.spectral_embedding(layers, 5, dim=2)
    assert isolated.tolist() == [False, False, False, False, True]
    # degrees 1, tau 1: A / 2 has eigenvalue 1/2 twice, eigenvectors spanning (1,1,0,0)/√2, (0,0,1,1)/√2
    span = np.array([[1, 1, 0, 0, 0], [0, 0, 1, 1, 0]]) / np.sqrt(2)
    np.testing.assert_allclose(embedding.T @ embedding, np.eye(2), atol=1e-10)
    np.testing.assert_allclose(span @ embedding @ embedding.T @ span.T, np.eye(2), atol=1e-10)
    assert not embedding[4].any()


def test_spectral_embedding_sparse_solver_matches_dense(monkeypatch):
    rng = np.random.default_rng(0)
    s, r = rng.integers(0, 80, 400), rng.integers(0, 80, 400)
    keep = s != r
    layers = [NetworkLayer("x", s[keep].astype(np.int32), r[keep].astype(np.int32),
                           rng.random(keep.sum()).astype(np.float32) + 0.1)]
    dense, _ = prior_baselines.spectral_embedding(layers, 80, dim=4)
    monkeypatch.setattr(prior_baselines, "DENSE_EIGEN_MAX_GENES", 10)
    sparse, _ = prior_baselines.spectral_embedding(layers, 80, dim=4)
    np.testing.assert_allclose(np.abs(dense.T @ sparse), np.eye(4), atol=1e-6)  # same up to sign


def test_embedding_width_chosen_on_validation():
    rng = np.random.default_rng(0)
    embedding = rng.normal(size=(120, 20))
    isolated = np.zeros(120, bool)
    # The signal sits in column 10: widths 8 cannot see it, 16 can.
    values = np.outer(embedding[:, 10], rng.normal(size=5)) + 0.05 * rng.normal(size=(120, 5))
    train, valid, query = np.arange(80), np.arange(80, 100), np.arange(100, 120)
    pred = prior_baselines.embedding_ridge_baseline(embedding, isolated, train, values[train], valid,
                                                    values[valid], query, dims=(8, 16))
    features = lambda rows: np.column_stack([np.sqrt(120) * embedding[rows, :16], isolated[rows]])  # noqa: E731
    low, high = features(train).min(axis=0), features(train).max(axis=0)
    expected = ridge_baseline(features(train), values[train], np.clip(features(valid), low, high),
                              values[valid], np.clip(features(query), low, high), standardise=False)
    np.testing.assert_allclose(pred, expected)


def test_embedding_column_localised_on_a_query_gene_does_not_blow_up():
    # Column 1 is ~0 on the training genes and large on query gene 100 (an eigenvector of a
    # small component): per-column scaling would multiply it by ~1e4.
    rng = np.random.default_rng(1)
    embedding = rng.normal(size=(120, 8)) / np.sqrt(120)
    embedding[:, 1] = 1e-5 * rng.normal(size=120)
    embedding[100, 1] = 0.5
    values = np.outer(embedding[:, 0], rng.normal(size=5)) * 10 + 0.1 * rng.normal(size=(120, 5))
    train, valid, query = np.arange(80), np.arange(80, 100), np.arange(100, 120)
    pred = prior_baselines.embedding_ridge_baseline(embedding, np.zeros(120, bool), train, values[train],
                                                    valid, values[valid], query, dims=(8,))
    assert np.abs(pred).max() < 2 * np.abs(values[train]).max()
    per_column = ridge_baseline(embedding[train], values[train], embedding[valid], values[valid],
                                embedding[query])
    assert np.abs(per_column).max() > 10 * np.abs(values[train]).max()  # what it avoids


def test_embedding_computed_once_per_data_object(monkeypatch):
    calls = []
    real = prior_baselines.spectral_embedding
    monkeypatch.setattr(prior_baselines, "spectral_embedding",
                        lambda *args, **kw: calls.append(1) or real(*args, **kw))
    data = planted(go=False)
    splits = splits_of(data)
    fit_predict_baselines(data, splits, query_split="test")
    fit_predict_baselines(data, splits, query_split="valid")
    assert len(calls) == 1  # both types, both queries
    fit_predict_baselines(data.select_layers(["chain"]), splits)
    assert len(calls) == 2  # a selection may hold other layers: its own


def test_several_tables_scaled_per_table_for_ridge():
    data = planted(tables=2)
    train_genes = np.zeros(N_GENES, bool)
    train_genes[:40] = True
    features = node_feature_matrix(data, train_genes)
    np.testing.assert_array_equal(features, standardise_blocks(data.node_features, data.feature_blocks,
                                                               train_genes))
    assert features.shape == (N_GENES, 6)  # 2 + 2 columns, a missing column per table
    np.testing.assert_array_equal(features[:, 4], ~data.feature_blocks[0].present)
    # one table: the raw features and the presence column, as before
    single = planted()
    np.testing.assert_array_equal(node_feature_matrix(single, train_genes),
                                  np.column_stack([single.node_features, np.ones(N_GENES)]))
