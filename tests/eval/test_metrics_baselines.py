"""Metrics and baselines against hand-computed values on tiny arrays."""
import numpy as np
import pytest

from tfnet_jax.data.networks import NetworkLayer
from tfnet_jax.data.perturbation.container import PerturbationData, SignatureTable
from tfnet_jax.eval.metrics import (
    HIGHER_IS_BETTER,
    METRIC_NAMES,
    format_results_table,
    results_table,
    retrieval_hits,
    row_pearson,
    signature_metrics,
)
from tfnet_jax.models.baseline_suite import fit_predict_baselines
from tfnet_jax.models.baselines import (
    mean_baseline,
    neighbor_baseline,
    ridge_baseline,
)

# 3 x 4 worked example. Hand computation (centred rows written out):
#   raw:   p0=2*t0 -> r=1;  p1=t0=-t1 pattern -> r=-1;
#          p2=[-1.5,-.5,.5,1.5] . t2=[-1.5,.5,-.5,1.5] = 4, both sum sq 5 -> r=0.8
#   mse:   errors^2 per row 30, 20, 2 -> 52 / 12
#   delta (m=[1,1,2,2]), centred:  P0=[-2.5,-.5,.5,2.5] (ss 13)  P1=P2=[-1,0,0,1] (ss 2)
#                                  T0=[-1,0,0,1] (ss 2)  T1=[2,1,-1,-2] (ss 10)  T2=[-1,1,-1,1] (ss 4)
#   S = P.T/norms:  row0: 5/sqrt26=.980581, -11/sqrt130=-.964764, 4/sqrt52=.554700
#                   row1,row2: 2/2=1, -4/sqrt20=-.894427, 2/sqrt8=.707107
TRUE = np.array([[1, 2, 3, 4], [4, 3, 2, 1], [1, 3, 2, 4]], dtype=np.float32)
PRED = np.array([[2, 4, 6, 8], [1, 2, 3, 4], [1, 2, 3, 4]], dtype=np.float32)
MEAN = np.array([1, 1, 2, 2], dtype=np.float32)


def test_row_pearson_hand_values():
    np.testing.assert_allclose(row_pearson(PRED, TRUE), [1.0, -1.0, 0.8], atol=1e-12)


def test_row_pearson_zero_variance_rows_give_zero():
    a = np.array([[1, 1, 1, 1], [1, 2, 3, 4], [0.1, 0.1, 0.1, 0.1]], dtype=np.float32)
    b = np.array([[1, 2, 3, 4], [5, 5, 5, 5], [0.3, 0.1, 0.2, 0.7]], dtype=np.float32)
    r = row_pearson(a, b)
    assert np.all(np.isfinite(r))
    np.testing.assert_array_equal(r, [0.0, 0.0, 0.0])


def test_signature_metrics_hand_values():
    m = signature_metrics(PRED, TRUE, MEAN)
    assert set(m) == set(METRIC_NAMES) | {"n"}
    assert m["pearson"] == pytest.approx(0.8 / 3)
    assert m["mse"] == pytest.approx(52 / 12)
    assert m["pearson_delta"] == pytest.approx((0.980581 - 0.894427 + 0.707107) / 3, abs=1e-6)
    # top-1: row0 own 0.98 is the best; row1 own -0.89 beaten by 1 and 0.71;
    # row2 own 0.71 beaten by 1.  top-10 >= n -> always hit.
    assert m["retrieval_top1"] == pytest.approx(1 / 3)
    assert m["retrieval_top10"] == 1.0
    assert m["n"] == 3.0


def test_retrieval_k2_hand_values():
    # g (number strictly better) per row = 0, 2, 1 -> clip(2 - g) = 1, 0, 1
    np.testing.assert_array_equal(retrieval_hits(PRED - MEAN, TRUE - MEAN, 2), [1.0, 0.0, 1.0])


def test_pearson_delta_zero_for_mean_prediction():
    m = signature_metrics(np.tile(MEAN, (3, 1)), TRUE, MEAN)
    assert m["pearson_delta"] == 0.0
    assert m["retrieval_top1"] == pytest.approx(1 / 3)  # constant -> chance


def test_retrieval_perfect_reversed_constant():
    np.testing.assert_array_equal(retrieval_hits(TRUE, TRUE, 1), [1, 1, 1])
    # pred_i = -true_i: own score -1, the two others are higher for every row.
    np.testing.assert_array_equal(retrieval_hits(-TRUE, TRUE, 1), [0, 0, 0])
    np.testing.assert_array_equal(retrieval_hits(-TRUE, TRUE, 2), [0, 0, 0])
    np.testing.assert_array_equal(retrieval_hits(-TRUE, TRUE, 3), [1, 1, 1])
    const = np.full((3, 4), 7.0)
    np.testing.assert_allclose(retrieval_hits(const, TRUE, 1), [1 / 3] * 3)
    np.testing.assert_allclose(retrieval_hits(const, TRUE, 2), [2 / 3] * 3)


def test_retrieval_ties():
    # true_3 = 2 * true_0 + 1 has the same Pearson to anything as true_0.
    true = np.vstack([TRUE, 2 * TRUE[0] + 1])
    pred = np.vstack([TRUE[0], TRUE[1], TRUE[2], TRUE[0]])
    # rows 0 and 3: own score 1 tied with one other -> 1 / 2; rows 1, 2 are unique best.
    np.testing.assert_allclose(retrieval_hits(pred, true, 1), [0.5, 1, 1, 0.5])
    np.testing.assert_allclose(retrieval_hits(pred, true, 2), [1, 1, 1, 1])


def test_shape_errors():
    with pytest.raises(ValueError, match="same shape"):
        signature_metrics(PRED, TRUE[:, :3], MEAN)
    with pytest.raises(ValueError, match="train_mean"):
        signature_metrics(PRED, TRUE, MEAN[:3])
    with pytest.raises(ValueError, match="2-D"):
        row_pearson(PRED[0], TRUE[0])
    with pytest.raises(ValueError, match="k must"):
        retrieval_hits(PRED, TRUE, 0)


def test_empty_rows_give_nan_and_zero_count():
    m = signature_metrics(np.zeros((0, 4)), np.zeros((0, 4)), MEAN)
    assert m["n"] == 0.0 and np.isnan(m["pearson"])


RESULTS = {
    "model": {"ko": {"pearson": 0.5, "mse": 1.0}, "oe": {"pearson": 0.1, "mse": 0.2}},
    "baselines": {"mean": {"ko": {"pearson": 0.2, "mse": 0.5}, "oe": {"pearson": 0.3, "mse": 0.9}}},
}


def test_results_table_long_frame():
    df = results_table(RESULTS)
    assert list(df.columns) == ["method", "pert_type", "metric", "value"]
    assert len(df) == 8
    assert set(df["method"]) == {"model", "mean"}
    row = df[(df.method == "mean") & (df.pert_type == "oe") & (df.metric == "mse")]
    assert row["value"].tolist() == [0.9]


def test_format_results_table_marks_best():
    text = format_results_table(RESULTS)
    lines = {tuple(line.split()[:2]): line for line in text.splitlines()}
    assert "0.500*" in lines[("ko", "model")] and "1.000*" not in lines[("ko", "model")]
    assert "0.500*" in lines[("ko", "mean")]  # mse, lower is better
    assert "0.300*" in lines[("oe", "mean")] and "0.200*" in lines[("oe", "model")]
    assert "pearson" in text and "mse" in text
    assert HIGHER_IS_BETTER["mse"] is False and HIGHER_IS_BETTER["pearson"] is True


def test_mean_baseline_exact():
    pred = mean_baseline(np.array([[1, 2], [3, 4]], dtype=np.float32), 3)
    np.testing.assert_array_equal(pred, [[2, 3]] * 3)


def _layers():
    # Layer A max 4 -> (0,1)=.5 (0,2)=1 (1,3)=.25;  layer B max 3 -> (0,1)=1/3 (2,3)=1.
    # Summed: (0,1)=5/6, (0,2)=1, (1,3)=1/4, (2,3)=1; gene 4 is isolated.
    a = NetworkLayer("a", np.array([0, 0, 1], np.int32), np.array([1, 2, 3], np.int32),
                     np.array([2, 4, 1], np.float32))
    b = NetworkLayer("b", np.array([0, 2], np.int32), np.array([1, 3], np.int32),
                     np.array([1, 3], np.float32))
    return [a, b]


def test_neighbor_baseline_hand_graph():
    train_index = np.array([0, 1, 3])
    train_values = np.array([[1, 0], [0, 1], [3, 3]], dtype=np.float32)
    pred = neighbor_baseline(_layers(), 5, train_index, train_values, np.array([0, 2, 4, 1]))
    expected = [
        [0, 1],  # gene 0: own row excluded; neighbour 2 untrained -> only gene 1
        [2, 1.5],  # gene 2: (1*[1,0] + 1*[3,3]) / 2
        [4 / 3, 4 / 3],  # gene 4: no neighbour -> training mean
        [19 / 13, 9 / 13],  # gene 1: (5/6*[1,0] + 1/4*[3,3]) / (5/6 + 1/4)
    ]
    np.testing.assert_allclose(pred, expected, rtol=1e-6)


def test_neighbor_baseline_only_untrained_neighbours_fall_back_to_mean():
    # gene 0's neighbours (1, 2) are untrained and its own row is excluded.
    pred = neighbor_baseline(_layers(), 5, np.array([0]), np.array([[1.0, 0.0]]), np.array([0]))
    np.testing.assert_allclose(pred, [[1.0, 0.0]])


def _linear_problem(seed=0, n=60, f=5, r=8):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f)) * rng.uniform(0.5, 20, size=f) + rng.normal(size=f) * 5
    y = x @ rng.normal(size=(f, r)) + rng.normal(size=r)
    return x, y


def test_ridge_recovers_linear_map():
    x, y = _linear_problem()
    tr, va, q = slice(0, 40), slice(40, 50), slice(50, 60)
    pred = ridge_baseline(x[tr], y[tr], x[va], y[va], x[q])
    m = signature_metrics(pred, y[q], y[tr].mean(axis=0))
    assert pred.shape == (10, 8)
    assert m["pearson_delta"] > 0.99


def test_ridge_without_validation_rows_uses_training_cv():
    x, y = _linear_problem()
    pred = ridge_baseline(x[:50], y[:50], x[:0], y[:0], x[50:])
    assert signature_metrics(pred, y[50:], y[:50].mean(axis=0))["pearson_delta"] > 0.99


def _data(with_features: bool, seed=0):
    x, y = _linear_problem(seed, n=12, f=3, r=4)
    genes = np.array([f"g{i}" for i in range(12)])
    ko = SignatureTable("ko", genes[:10], np.arange(10, dtype=np.int32), y[:10].astype(np.float32))
    oe = SignatureTable("oe", genes[[11, 3, 5, 7, 9, 1]], np.array([11, 3, 5, 7, 9, 1], np.int32),
                        y[[11, 3, 5, 7, 9, 1]].astype(np.float32))
    layer = NetworkLayer("ppi", np.arange(11, dtype=np.int32), np.arange(1, 12, dtype=np.int32),
                         np.ones(11, np.float32))
    return PerturbationData(
        genes=genes, layers=[layer], readout_genes=np.array(["r0", "r1", "r2", "r3"]),
        signatures={"ko": ko, "oe": oe},
        node_features=x.astype(np.float32) if with_features else None,
        has_features=np.ones(12, bool) if with_features else None)


SPLITS = {
    "ko": np.array(["train"] * 6 + ["valid", "valid", "test", "test"]),
    "oe": np.array(["test", "train", "train", "valid", "train", "test"]),
}


@pytest.mark.parametrize("with_features", [False, True])
def test_fit_predict_baselines_keys_and_shapes(with_features):
    out = fit_predict_baselines(_data(with_features), SPLITS)
    # embedding_ridge: the data has edges; no GO table, so no go_* baselines
    expected = ({"mean", "neighbors", "cross_type", "embedding_ridge"}
                | ({"ridge", "linear"} if with_features else set()))
    assert set(out) == expected
    for preds in out.values():
        assert set(preds) == {"ko", "oe"}
        assert preds["ko"].shape == (2, 4) and preds["oe"].shape == (2, 4)
        assert all(np.all(np.isfinite(p)) for p in preds.values())
    # oe query rows are genes 11 then 1 (table order) on the chain 0-1-...-11; their
    # neighbours (10; 0 and 2) are not oe training genes (3, 5, 9) -> mean for both.
    oe_train_mean = _data(False).signatures["oe"].values[[1, 2, 4]].mean(axis=0)
    np.testing.assert_allclose(out["neighbors"]["oe"], [oe_train_mean] * 2, rtol=1e-6)


def test_query_values_are_never_read():
    clean = fit_predict_baselines(_data(True), SPLITS)
    poisoned = _data(True)
    for pert_type, table in poisoned.signatures.items():
        table.values[SPLITS[pert_type] == "test"] = np.nan
    dirty = fit_predict_baselines(poisoned, SPLITS)
    for name in clean:
        for pert_type in clean[name]:
            np.testing.assert_array_equal(dirty[name][pert_type], clean[name][pert_type])


def test_fit_predict_baselines_requires_training_rows():
    splits = {"ko": np.array(["test"] * 10), "oe": SPLITS["oe"]}
    with pytest.raises(ValueError, match="no training rows"):
        fit_predict_baselines(_data(False), splits)


def test_linear_baseline_recovers_a_low_rank_map():
    from tfnet_jax.models.baselines import linear_baseline
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 10))
    # Signatures of rank 3 driven by the features: mean + (x A) B.
    y = 2.0 + (x @ rng.normal(size=(10, 3))) @ rng.normal(size=(3, 30))
    pred = linear_baseline(x[:80], y[:80], x[80:100], y[80:100], x[100:], ranks=(1, 3, 8))
    mean = y[:80].mean(axis=0)
    assert np.mean(row_pearson(pred - mean, y[100:] - mean)) > 0.99


def test_cross_type_baseline_by_hand():
    from tfnet_jax.models.baselines import cross_type_baseline
    # Target type: genes 0..3 with signatures; source type observed genes 0..3 and 9.
    target = np.array([[1.0, 0.0], [3.0, 2.0], [1.0, 2.0], [3.0, 0.0]])  # mean [2, 1]
    source_values = np.array([[0.0, 0.0], [2.0, 2.0], [0.0, 2.0], [2.0, 0.0], [4.0, 4.0]])
    source_index = np.array([0, 1, 2, 3, 9])  # source mean [1.6, 1.6]
    pred = cross_type_baseline(target, {"s": (source_index, source_values)}, np.arange(4),
                               np.array([9, 5]))
    # beta by least squares over the shared genes 0..3 of (source - source mean) vs (target - mean).
    xs = (source_values[:4] - 1.6).ravel()
    ys = (target - [2.0, 1.0]).ravel()
    beta = xs @ ys / (xs @ xs)
    np.testing.assert_allclose(pred[0], [2.0, 1.0] + beta * (np.array([4.0, 4.0]) - 1.6), rtol=1e-6)
    np.testing.assert_allclose(pred[1], [2.0, 1.0])  # gene 5 unobserved: training mean
