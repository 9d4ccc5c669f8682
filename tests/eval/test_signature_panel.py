"""The signature metric panel (top-20-DE Pearson delta, rank score, DE-weighted MSE, the
replicate ceiling's table row) against hand-computed values on tiny arrays."""
import numpy as np
import pytest

from tfnet_jax.eval.metrics import (
    CEILING_KEY,
    TOP_DE,
    de_weighted_error,
    de_weights,
    format_results_table,
    rank_scores,
    results_table,
    signature_metrics,
    top_de_pearson,
)

# The 3 x 4 example of test_metrics_baselines. Deltas from MEAN = [1, 1, 2, 2]:
#   true:  T0 = [0, 1, 1, 2]   T1 = [3, 2, 0, -1]   T2 = [0, 2, 0, 2]
#   pred - true:  [1, 2, 3, 4]   [-3, -1, 1, 3]   [0, -1, 1, 0]
TRUE = np.array([[1, 2, 3, 4], [4, 3, 2, 1], [1, 3, 2, 4]], dtype=np.float32)
PRED = np.array([[2, 4, 6, 8], [1, 2, 3, 4], [1, 2, 3, 4]], dtype=np.float32)
MEAN = np.array([1, 1, 2, 2], dtype=np.float32)


def test_de_weights_hand_values_sum_to_one_and_uniform_for_no_change():
    w = de_weights(TRUE - MEAN)
    np.testing.assert_allclose(w, [[0, 1 / 4, 1 / 4, 2 / 4], [3 / 6, 2 / 6, 0, 1 / 6],
                                   [0, 2 / 4, 0, 2 / 4]])
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    np.testing.assert_array_equal(de_weights(np.zeros((1, 4))), [[0.25] * 4])


def test_mse_de_weighted_hand_values():
    # Row sums of w * err^2: 0 + 4/4 + 9/4 + 16*2/4 = 11.25;  9*3/6 + 1*2/6 + 0 + 9/6 = 19/3;
    # 0 + 1*2/4 + 0 + 0 = 0.5.
    np.testing.assert_allclose(de_weighted_error(PRED, TRUE, MEAN), [11.25, 19 / 3, 0.5])
    m = signature_metrics(PRED, TRUE, MEAN)
    assert m["mse_de_weighted"] == pytest.approx((11.25 + 19 / 3 + 0.5) / 3)
    # Training-mean predictor: err = -delta, so sum |d|^3 / sum |d| per row: 10/4, 36/6, 16/4.
    m = signature_metrics(np.tile(MEAN, (3, 1)), TRUE, MEAN)
    assert m["mse_de_weighted"] == pytest.approx((2.5 + 6 + 4) / 3)


def test_top_de_pearson_keeps_the_largest_observed_changes():
    # |true| ranks readouts 0 (3), 3 (2), 1 (1); readout 2 (0.5) is dropped with k=3.
    # pred [1, 0, 0] vs true [3, -2, -1]: centred pred [2, -1, -1]/3, dot 3,
    # sum sq 6/9 and 14 -> r = 3 / sqrt(28/3).
    true = np.array([[3.0, -1.0, 0.5, -2.0]])
    pred = np.array([[1.0, 0.0, 5.0, 0.0]])
    assert top_de_pearson(pred, true, k=3)[0] == pytest.approx(3 / np.sqrt(28 / 3))
    # k >= R: all readouts, i.e. the plain row Pearson.
    assert top_de_pearson(pred, true, k=4)[0] == pytest.approx(np.corrcoef(pred[0], true[0])[0, 1])


def test_pearson_delta_top20de_ignores_readouts_beyond_the_top_20():
    # 25 readouts: the 20 largest changes are predicted exactly (r = 1 on them); the 5
    # smallest get wild predictions that ruin the all-readout Pearson delta.
    true = np.concatenate([np.arange(1, TOP_DE + 1) * (-1.0) ** np.arange(TOP_DE), [0.1] * 5])
    pred = np.concatenate([true[:TOP_DE], [100, -100, 100, -100, 100]])
    m = signature_metrics(pred[None], true[None], np.zeros(25))
    assert m["pearson_delta_top20de"] == pytest.approx(1.0)
    assert m["pearson_delta"] < 0.5
    # With R <= 20 it equals pearson_delta.
    small = signature_metrics(PRED, TRUE, MEAN)
    assert small["pearson_delta_top20de"] == pytest.approx(small["pearson_delta"])


def test_rank_score_hand_values_without_own_readouts():
    # Pearson deltas S (test_metrics_baselines): row0 own .98 beats -.96, .55 -> r = 0 -> 1;
    # row1 own -.89 loses to 1 and .71 -> r = 2 -> 0; row2 own .71 loses to 1 -> r = 1 -> .5.
    np.testing.assert_allclose(rank_scores(PRED - MEAN, TRUE - MEAN), [1.0, 0.0, 0.5])
    assert signature_metrics(PRED, TRUE, MEAN)["rank_score"] == pytest.approx(0.5)


# Deltas for the own-readout case. Perturbation 0's gene is readout 0 (own_col 0): its big
# change (-5) is predicted. Perturbations 1 and 2 are not readouts.
T_OWN = np.array([[-5.0, 1, 2, 3], [0, 3, 1, 2], [0, 1, 2, 3]])
P_OWN = np.array([[-5.0, 3, 2, 1], [0, 3, 1, 2], [0, 0, 0, 0]])


def test_rank_score_own_readout_exclusion_changes_the_result():
    # Row 0 with readout 0 kept: centred P0 = [-5.25, 2.75, 1.75, .75] (ss 38.75) gives
    # r = 34.75/38.75 = .897 with T0, 11.5/sqrt(38.75*5) = .826 with T1 and
    # 8.5/sqrt(38.75*5) = .611 with T2: own is closest -> score 1.
    # Row 1 = T1 exactly -> 1.  Row 2 is the training mean (delta 0): every r is 0, so both
    # others tie -> r = 1 -> 1 - 1/2 = .5.
    np.testing.assert_allclose(rank_scores(P_OWN, T_OWN, [-1, -1, -1]), [1.0, 1.0, 0.5])
    # Readout 0 dropped for row 0 (from P0 and from every T_j): P0' = [3, 2, 1],
    # T0' = [1, 2, 3] (r = -1), T1' = [3, 1, 2] (r = .5, closer), T2' = [1, 2, 3] (r = -1,
    # a tie) -> r = 1 + 1/2 -> score 1 - 1.5/2 = .25. Rows 1 and 2 are unchanged.
    np.testing.assert_allclose(rank_scores(P_OWN, T_OWN, [0, -1, -1]), [0.25, 1.0, 0.5])
    m = signature_metrics(P_OWN, T_OWN, np.zeros(4), own_col=np.array([0, -1, -1]))
    assert m["rank_score"] == pytest.approx((0.25 + 1 + 0.5) / 3)


def test_rank_score_perfect_reversed_mean_and_single_row():
    np.testing.assert_array_equal(rank_scores(TRUE - MEAN, TRUE - MEAN), [1, 1, 1])
    np.testing.assert_array_equal(rank_scores(MEAN - TRUE, TRUE - MEAN), [0, 0, 0])
    # Perfect predictions with the own readout dropped: T0' equals T2' (both [1, 2, 3]), a tie.
    np.testing.assert_allclose(rank_scores(T_OWN, T_OWN, [0, -1, -1]), [0.75, 1, 1])
    m = signature_metrics(np.tile(MEAN, (3, 1)), TRUE, MEAN, own_col=np.array([2, -1, 0]))
    assert m["rank_score"] == 0.5  # the training mean: chance, own readouts or not
    assert np.isnan(signature_metrics(PRED[:1], TRUE[:1], MEAN)["rank_score"])


def test_rank_score_matches_brute_force_pearson_with_a_column_dropped():
    rng = np.random.default_rng(0)
    n, readouts = 9, 7
    pred = rng.normal(size=(n, readouts))
    true = rng.normal(size=(n, readouts)) + pred
    pred[3] = 0.0  # constant row
    pred[4] = [0, 0, 0, 0, 0, 0, 2.0]  # constant once its own column 6 is dropped
    own = np.array([-1, 2, 0, 5, 6, -1, 1, 3, 4])

    def r(x, y):
        return 0.0 if np.ptp(x) == 0 or np.ptp(y) == 0 else np.corrcoef(x, y)[0, 1]

    expected = []
    for i in range(n):
        keep = np.arange(readouts) != own[i]
        d = np.array([1 - r(pred[i, keep], true[j, keep]) for j in range(n)])
        others = np.delete(d, i)
        closer = np.sum(others < d[i] - 1e-10)
        ties = np.sum(np.abs(others - d[i]) <= 1e-10)
        expected.append(1 - (closer + ties / 2) / (n - 1))
    np.testing.assert_allclose(rank_scores(pred, true, own), expected, atol=1e-12)
    assert expected[4] == 0.5


def test_own_col_is_checked():
    with pytest.raises(ValueError, match="own_col must hold one integer per row"):
        signature_metrics(PRED, TRUE, MEAN, own_col=np.array([0, 1]))
    with pytest.raises(ValueError, match="own_col must hold one integer per row"):
        signature_metrics(PRED, TRUE, MEAN, own_col=np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"-1 \(not a readout\) or a readout column 0..3"):
        signature_metrics(PRED, TRUE, MEAN, own_col=np.array([0, 4, -1]))


def test_ceiling_row_is_shown_but_never_marked_best():
    results = {"model": {"ko": {"pearson": 0.5, "mse_de_weighted": 1.0}},
               "baselines": {"mean": {"ko": {"pearson": 0.2, "mse_de_weighted": 0.5}}},
               CEILING_KEY: {"ko": {"pearson": 0.9, "mse_de_weighted": 0.1}}}
    assert set(results_table(results)["method"]) == {"model", "mean", CEILING_KEY}
    text = format_results_table(results)
    rows = {line.split()[1]: line for line in text.splitlines() if line.split()[:1] == ["ko"]}
    assert "0.500*" in rows["model"] and "0.500*" in rows["mean"]  # best among the methods
    assert "*" not in rows[CEILING_KEY]
    assert "mse_de_weighted: lowest" in text and "not ranked" in text


def test_wide_table_is_split_into_blocks_of_the_same_rows():
    metrics = signature_metrics(PRED, TRUE, MEAN)
    text = format_results_table({"model": {"RNAi": metrics}}, width=80)
    blocks = text.split("\n\n")
    assert len(blocks) >= 2
    assert all(len(line) <= 80 for block in blocks for line in block.splitlines()[:2])
    headers = " ".join(block.splitlines()[0] for block in blocks).split()
    assert sorted(h for h in headers if h not in ("pert_type", "method")) == sorted(metrics)
    assert all(block.splitlines()[1].split()[:2] == ["RNAi", "model"] for block in blocks)


def test_score_predictions_drops_each_perturbed_genes_own_readout():
    from tfnet_jax.data.networks import NetworkLayer
    from tfnet_jax.data.perturbation.container import PerturbationData, SignatureTable
    from tfnet_jax.tasks.transcriptionnet import prepare as task

    # Readouts g2, r1, r2, g0: perturbed gene g2 is readout 0, g0 readout 3, g1 none.
    genes = np.array(["g0", "g1", "g2", "g3", "g4", "g5", "r1", "r2"])
    train = np.array([[1.0] * 4, [-1.0] * 4, [0.0] * 4])  # training mean 0
    # Test rows g0, g1, g2 carry T_OWN rows 2, 1, 0 (g2: its own readout 0 moves by -5).
    values = np.vstack([T_OWN[[2, 1, 0]], train]).astype(np.float32)
    table = SignatureTable("ko", genes[:6], np.arange(6, dtype=np.int32), values)
    layer = NetworkLayer("ppi", np.arange(5, dtype=np.int32), np.arange(1, 6, dtype=np.int32),
                         np.ones(5, np.float32))
    data = PerturbationData(genes=genes, layers=[layer], signatures={"ko": table},
                            readout_genes=np.array(["g2", "r1", "r2", "g0"]))
    splits = {"ko": np.array(["test"] * 3 + ["train"] * 3)}
    prepared = task.prepare(data, splits)
    got = task.score_predictions(prepared, {"ko": P_OWN[[2, 1, 0]]}, "test")["ko"]
    # As the own-readout hand case: g2 0.25, g1 1, g0 (the training mean) 0.5.
    assert got["rank_score"] == pytest.approx((0.25 + 1 + 0.5) / 3)
    assert got == pytest.approx(signature_metrics(P_OWN[[2, 1, 0]], T_OWN[[2, 1, 0]], np.zeros(4),
                                                  own_col=np.array([3, -1, 0])))
