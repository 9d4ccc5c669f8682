"""The out-of-distribution guard and the two perturbation-type scenarios / farthest split."""
from dataclasses import replace

import numpy as np
import pytest

from tfnet_jax.data.splits import assign_splits, feature_outlyingness, holdout
from tfnet_jax.errors import ConfigError, DataError
from tfnet_jax.eval.metrics import signature_metrics
from tfnet_jax.models.baseline_suite import fit_predict_baselines
from tfnet_jax.models.ood_guard import (
    FeatureDistance,
    apply_shrink,
    choose,
    reference_scores,
    shrink_factors,
)
from tfnet_jax.schemas.models import GuardConfig
from tfnet_jax.tasks.transcriptionnet import guard
from tfnet_jax.tasks.transcriptionnet import prepare as task

OPTIONS = GuardConfig(quantiles=[0.0, 0.25, 0.5, 0.75, 0.9, 1.0], shrinks=[0.0, 0.25, 0.5, 0.75, 0.9],
                      folds=5)


# ---------------------------------------------------------------- the guard's maths
def test_feature_distance_by_hand():
    # Centre (1, 1); covariance 4/3 I; lam = trace / F = 4/3; precision = 3/8 I.
    distance = FeatureDistance.fit([[0, 0], [2, 0], [0, 2], [2, 2]])
    np.testing.assert_allclose(distance.centre, [1, 1])
    np.testing.assert_allclose(distance.precision, 3 / 8 * np.eye(2))
    np.testing.assert_allclose(distance.score([[3, 1], [1, 1], [0, 0]]), [1.5, 0.0, 0.75])


def test_feature_distance_with_more_features_than_rows_equals_the_full_inverse():
    """F > n (thousands of GO terms over a few hundred genes) goes through Woodbury's n x n
    solve; the scores equal (x - mu)^T (C + lam I)^-1 (x - mu) with the F x F inverse."""
    rng = np.random.default_rng(0)
    x, query = rng.normal(size=(12, 40)), rng.normal(size=(5, 40))
    distance = FeatureDistance.fit(x)
    assert distance.precision is None and distance.inner.shape == (12, 12)
    centred = x - x.mean(axis=0)
    cov = centred.T @ centred / 11
    full = np.linalg.inv(cov + np.trace(cov) / 40 * np.eye(40))
    d = query - x.mean(axis=0)
    np.testing.assert_allclose(distance.score(query), np.einsum("ij,jk,ik->i", d, full, d),
                               rtol=1e-9)


def test_reference_scores_are_cross_fitted():
    x = np.random.default_rng(0).normal(size=(10, 3))
    scores = reference_scores(x, folds=5)
    fold = np.arange(10) % 5
    for f in range(5):
        held = fold == f
        np.testing.assert_allclose(scores[held], FeatureDistance.fit(x[~held]).score(x[held]))
    # Out of fold, a row is as new as a held-out one: scored higher than in sample.
    assert np.mean(scores) > np.mean(FeatureDistance.fit(x).score(x))


def test_choose_by_hand():
    # Reference 1..5: q=1 -> threshold 5, q=0 -> 1. Row 0 (score 0.5) is never flagged; row 1
    # (score 10) is flagged at both; s=0.9 takes its prediction 4 to 0.4: MSE 0.16 / 2 = 0.08.
    # Both quantiles tie, and the larger (fewer genes flagged) is kept.
    choice = choose([[1.0], [4.0]], [[1.0], [0.0]], [0.0], [0.5, 10.0], [1, 2, 3, 4, 5],
                    [0.0, 1.0], [0.0, 0.5, 0.9])
    assert (choice.quantile, choice.threshold, choice.shrink) == (1.0, 5.0, 0.9)
    assert choice.valid_mse == pytest.approx(0.08) and choice.unguarded_valid_mse == 8.0
    # Predictions already right: no shrinkage (ties go to the smallest s).
    exact = choose([[1.0], [4.0]], [[1.0], [4.0]], [0.0], [0.5, 10.0], [1, 2, 3, 4, 5],
                   [0.0, 1.0], [0.0, 0.5, 0.9])
    assert exact.shrink == 0.0
    # Flagging row 0 too (q=0, threshold 1 is above 0.5: it is not) cannot help; a lower
    # reference makes it flagged, and shrinking it hurts: q=1 is chosen again.
    low = choose([[1.0], [4.0]], [[1.0], [0.0]], [0.0], [0.5, 10.0], [0.1, 6.0],
                 [0.0, 1.0], [0.0, 0.9])
    assert (low.quantile, low.shrink) == (1.0, 0.9)


def test_shrinking_keeps_direction_metrics():
    rng = np.random.default_rng(1)
    pred, true, mean = rng.normal(size=(12, 20)), rng.normal(size=(12, 20)), rng.normal(size=20)
    factors = shrink_factors(rng.uniform(0, 2, size=12), 1.0, 0.9)
    assert set(np.round(factors, 6)) <= {1.0, 0.1}
    guarded = apply_shrink(pred, mean, factors)
    np.testing.assert_allclose(guarded[factors == 1], pred[factors == 1])
    np.testing.assert_allclose(guarded[factors < 1] - mean, 0.1 * (pred[factors < 1] - mean))
    own = rng.integers(-1, 20, size=12)  # some perturbed genes are readouts
    before = signature_metrics(pred, true, mean, own_col=own)
    after = signature_metrics(guarded, true, mean, own_col=own)
    for name in ("pearson_delta", "retrieval_top1", "retrieval_top10", "rank_score", "pearson_delta_top20de"):
        assert after[name] == pytest.approx(before[name], abs=1e-12), name
    assert after["mse"] != before["mse"] and after["mse_de_weighted"] != before["mse_de_weighted"]


# ---------------------------------------------------------------- scenarios and splits
def test_other_type_scenario_salts_each_type(tiny_data):
    same = assign_splits(tiny_data, seed=3)
    other = assign_splits(tiny_data, seed=3, scenario="other_type")
    for t, table in tiny_data.signatures.items():
        genes = np.asarray(table.pert_genes, str)
        np.testing.assert_array_equal(other[t], holdout(genes, f"3:{t}", 0.1, 0.2))
        np.testing.assert_array_equal(same[t], holdout(genes, 3, 0.1, 0.2))
        assert (other[t] == "test").sum() == (same[t] == "test").sum()
    # Some gene is a test gene of one type and a training gene of another.
    split_of = {(t, g): s for t, table in tiny_data.signatures.items()
                for g, s in zip(table.pert_genes, other[t])}
    crossed = [(t, g) for (t, g), s in split_of.items() if s == "test"
               and any(split_of.get((u, g)) == "train" for u in tiny_data.signatures if u != t)]
    assert len(crossed) >= 5


def test_other_type_feeds_only_training_rows(tiny_data):
    """Scenario b: a test gene's training signatures of other types are inputs to the refiner
    and to cross_type; its own (gene, type) test signature never is."""
    splits = assign_splits(tiny_data, seed=0, scenario="other_type")
    prepared = task.prepare(tiny_data, splits)
    poisoned = replace(tiny_data, signatures={
        t: replace(table, values=np.where((splits[t] != "train")[:, None], 1e3, table.values)
                   .astype(np.float32)) for t, table in tiny_data.signatures.items()})
    prepared_poisoned = task.prepare(poisoned, splits)
    np.testing.assert_array_equal(prepared.observed, prepared_poisoned.observed)
    np.testing.assert_array_equal(prepared.observed_mask, prepared_poisoned.observed_mask)
    clean = fit_predict_baselines(tiny_data, splits)["cross_type"]
    dirty = fit_predict_baselines(poisoned, splits)["cross_type"]
    inputs_for_test_genes = 0
    for t_id, t in enumerate(prepared.types):
        table = tiny_data.signatures[t]
        test = splits[t] == "test"
        slots = prepared.observed_slot[table.pert_index[test]]
        assert not prepared.observed_mask[t_id, slots].any()  # own test row: never an input
        inputs_for_test_genes += prepared.observed_mask[:, slots].any(axis=0).sum()
        # Only training values feed cross_type (the poisoned valid/test values change nothing),
        # and in scenario b it predicts something other than the mean for test genes.
        np.testing.assert_allclose(clean[t], dirty[t])
        mean = table.values[splits[t] == "train"].mean(axis=0)
        assert np.abs(clean[t] - mean).max(axis=1).max() > 1e-3
    assert inputs_for_test_genes >= 5
    # Scenario a: cross_type has no input for any test gene held out in every type.
    same = assign_splits(tiny_data, seed=0)
    pred = fit_predict_baselines(tiny_data, same)["cross_type"]
    for t, table in tiny_data.signatures.items():
        test_genes = table.pert_index[same[t] == "test"]
        held_everywhere = [i for i, g in enumerate(test_genes) if all(
            g not in other.pert_index[same[u] == "train"]
            for u, other in tiny_data.signatures.items() if u != t)]
        mean = table.values[same[t] == "train"].mean(axis=0)
        np.testing.assert_allclose(pred[t][held_everywhere], np.tile(mean, (len(held_everywhere), 1)),
                                   rtol=1e-5, atol=1e-6)


def test_farthest_split_holds_out_outlying_genes(tiny_data):
    splits = assign_splits(tiny_data, seed=0, mode="farthest")
    distance = feature_outlyingness(tiny_data)
    for t, table in tiny_data.signatures.items():
        d = distance[table.pert_index]
        split = splits[t]
        assert d[split == "test"].min() >= d[split == "valid"].max() >= d[split == "train"].max()
        assert (split == "test").sum() == (assign_splits(tiny_data, seed=0)[t] == "test").sum()


def test_split_options_are_checked(tiny_data):
    with pytest.raises(DataError, match="scenario='others'"):
        assign_splits(tiny_data, seed=0, scenario="others")
    given = replace(tiny_data, splits=assign_splits(tiny_data, seed=0))
    with pytest.raises(DataError, match="data gives its own split"):
        assign_splits(given, seed=0, mode="farthest")
    no_features = replace(tiny_data, node_features=None)
    with pytest.raises(DataError, match="has none"):
        assign_splits(no_features, seed=0, mode="farthest")


@pytest.mark.parametrize("override, message", [
    ("split.scenario=other_types", "split.scenario='other_types'.*did you mean other_type"),
    ("split.mode=far", "split.mode='far'"),
    ("model.guard.shrinks=[0.5,1.0]", r"model.guard.shrinks\[1\]=1.0: must lie in \[0, 1\)"),
    ("model.guard.quantiles=[]", "model.guard.quantiles=.*non-empty list"),
    ("model.guard.folds=1", "model.guard.folds=1: must be an integer >= 2"),
])
def test_bad_guard_and_split_config_is_one_line(override, message):
    from test_pipeline import compose_cfg

    from tfnet_jax.config import validate
    with pytest.raises(ConfigError, match=message):
        validate(compose_cfg([override]))


# ---------------------------------------------------------------- the guard on a farthest split
def test_guard_flags_farthest_genes_and_lowers_their_error(tiny_data):
    """Ridge extrapolates for the genes farthest out in feature space, whose true response
    fades there; the guard, chosen on the next-farthest (validation) genes, flags the test
    genes and lowers their MSE."""
    rng = np.random.default_rng(0)
    features = np.asarray(tiny_data.node_features, np.float64)
    features = (features - features.mean(axis=0)) / features.std(axis=0)
    weights = rng.normal(size=(features.shape[1], len(tiny_data.readout_genes)))
    typical = np.median(np.linalg.norm(features, axis=1))
    signatures = {}
    for t, table in tiny_data.signatures.items():
        x = features[table.pert_index]
        # Linear near the centre, fading far out: z / (1 + (|x| / median |x|)^4).
        z = x @ weights / np.sqrt(x.shape[1])
        fade = 1 + (np.linalg.norm(x, axis=1, keepdims=True) / typical) ** 4
        values = z / fade + 0.1 * rng.normal(size=z.shape)
        signatures[t] = replace(table, values=values.astype(np.float32))
    data = replace(tiny_data, signatures=signatures)
    splits = assign_splits(data, seed=0, mode="farthest")
    prepared = task.prepare(data, splits)
    valid = {"ridge": fit_predict_baselines(data, splits, query_split="valid")["ridge"]}
    test = {"ridge": fit_predict_baselines(data, splits, query_split="test")["ridge"]}
    guarded, report = guard.guard_split(prepared, OPTIONS, valid, test)
    for t in prepared.types:
        r = report["ridge"][t]
        truth = data.signatures[t].values[splits[t] == "test"]
        before = np.mean((test["ridge"][t] - truth) ** 2)
        after = np.mean((guarded["ridge"][t] - truth) ** 2)
        assert r["shrink"] > 0 and r["test_flagged"] >= 0.8 * r["test_n"], (t, r)
        assert after < before, (t, before, after)


def test_guard_query_spares_training_genes(tiny_prepared):
    prepared = tiny_prepared
    t = prepared.types[0]
    table = prepared.data.signatures[t]
    index = table.pert_index
    pred = np.random.default_rng(2).normal(size=(len(index), len(prepared.data.readout_genes)))
    state = {t: {"quantile": 0.0, "threshold": -1.0, "shrink": 0.5}}  # every gene flagged
    out = guard.guard_query(prepared, state, {}, index, t, pred.astype(np.float32))
    train = prepared.splits[t] == "train"
    np.testing.assert_allclose(out[train], pred[train], rtol=1e-6)
    mean = prepared.target_mean[0]
    np.testing.assert_allclose(out[~train] - mean, 0.5 * (pred[~train] - mean), rtol=1e-4, atol=1e-5)
    # A type without a saved choice is left alone.
    assert guard.guard_query(prepared, {}, {}, index, t, pred) is pred
