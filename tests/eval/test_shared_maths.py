"""The shared maths (scaling, splits, per-gene R^2, Pearson / paired tests, ridge) against
hand-computed values and reference implementations."""
import numpy as np
import pytest
from scipy import stats as sps
from sklearn.linear_model import Ridge

from tfnet_jax.data.scaling import Standardiser, constant_columns
from tfnet_jax.data.splits import hash_order, holdout, kfold, validation_slice
from tfnet_jax.errors import DataError
from tfnet_jax.eval.regression import expression_metrics, r2_summary
from tfnet_jax.maths import per_gene_r2
from tfnet_jax.eval.stats import bh_adjust, paired_test, with_bh
from tfnet_jax.maths import pearson_test, row_pearson
from tfnet_jax.models.elastic_net import cv_r2
from tfnet_jax.models.linear import ridge_fit, variance_explained


# ---------------------------------------------------------------- scaling
def test_standardiser_uses_only_the_fitted_rows():
    values = np.array([[1.0, 10.0], [3.0, 10.0], [1000.0, -50.0]])
    scaler = Standardiser.fit(values, rows=np.array([True, True, False]))
    # Row 2 is huge: had it been seen, the mean would be far from 2.
    np.testing.assert_allclose(scaler.mean, [2.0, 10.0])
    np.testing.assert_allclose(scaler.sd, [1.0, 1.0])  # column 1 constant on the fit rows: sd 1
    np.testing.assert_allclose(scaler.transform(values), [[-1, 0], [1, 0], [998, -60]])
    np.testing.assert_allclose(scaler.inverse(scaler.transform(values)), values)
    # Index rows give the same statistics as the mask.
    same = Standardiser.fit(values, rows=[0, 1])
    np.testing.assert_array_equal(same.mean, scaler.mean)


def test_changing_held_out_rows_never_changes_the_scaler():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(20, 3))
    train = np.arange(20) < 12
    before = Standardiser.fit(values, train)
    values[~train] = rng.normal(50.0, 9.0, size=((~train).sum(), 3))
    after = Standardiser.fit(values, train)
    np.testing.assert_array_equal(before.mean, after.mean)
    np.testing.assert_array_equal(before.sd, after.sd)


def test_constant_rule_absorbs_rounding_but_keeps_small_real_spread():
    # The mean of identical values can be off by an ulp: still constant.
    ulp_noise = np.full((7, 1), 0.1) + np.array([[0, 0, 0, 0, 0, 0, 1e-17]]).T
    assert constant_columns(ulp_noise)[0]
    assert constant_columns(np.zeros((4, 1)))[0]
    small_but_real = np.array([[0.0], [1e-3], [2e-3]])
    assert not constant_columns(small_but_real)[0]
    assert Standardiser.fit(small_but_real).sd[0] == pytest.approx(np.std([0, 1e-3, 2e-3]))


def test_standardiser_without_rows_is_a_clear_error():
    with pytest.raises(DataError, match="targets: no rows"):
        Standardiser.fit(np.ones((3, 2)), rows=np.zeros(3, bool), name="targets")


# ---------------------------------------------------------------- splits
def test_kfold_balanced_deterministic_and_seeded():
    units = np.array([f"ind{i}" for i in range(23)])
    folds = kfold(units, 5, seed=7)
    np.testing.assert_array_equal(folds, kfold(units, 5, seed=7))
    assert sorted(np.bincount(folds).tolist()) == [4, 4, 5, 5, 5]  # sizes differ by <= 1
    assert not np.array_equal(folds, kfold(units, 5, seed=8))
    # A unit's fold follows its place in the hash order, dealt round-robin.
    order = hash_order(units, 7)
    np.testing.assert_array_equal(folds[order], np.arange(23) % 5)
    with pytest.raises(DataError, match="too few"):
        kfold(units[:3], 5, seed=0)


def test_holdout_counts_with_unit_and_group_sizes():
    genes = np.array([f"g{i}" for i in range(18)])
    split = holdout(genes, seed=0, valid_frac=0.1, test_frac=0.2)
    # round(3.6) = 4 test, then round(1.8) = 2 valid, 12 train.
    assert [int((split == s).sum()) for s in ("test", "valid", "train")] == [4, 2, 12]
    # Counting valid from the start: round(5.4) = 5 test + valid, so 1 valid.
    start = holdout(genes, seed=0, valid_frac=0.1, test_frac=0.2, valid_counted_from="start")
    assert [int((start == s).sum()) for s in ("test", "valid", "train")] == [4, 1, 13]
    np.testing.assert_array_equal(split == "test", start == "test")
    # Unit sizes: whole groups go to one side; test's groups reach 20% of the rows.
    sizes = np.array([10, 30, 5, 20, 15, 10, 10])
    groups = np.array([f"study{i}" for i in range(7)])
    by_group = holdout(groups, seed=3, valid_frac=0.1, test_frac=0.2, sizes=sizes)
    order = hash_order(groups, 3)
    first_test = np.cumsum(sizes[order]) >= 20
    assert by_group[order[0]] == "test" and set(by_group) == {"train", "valid", "test"}
    assert sizes[by_group == "test"].sum() >= 20
    assert (by_group[order[:int(np.argmax(first_test)) + 1]] == "test").all()


def test_validation_slice_comes_from_training_rows_in_hash_order():
    units = np.array([f"ind{i}" for i in range(30)])
    rows = np.flatnonzero(kfold(units, 3, seed=1) != 0)
    valid = validation_slice(units, rows, seed=1, valid_frac=0.1, min_rows=2)
    assert len(valid) == 2 and set(valid) <= set(rows)
    np.testing.assert_array_equal(valid, rows[hash_order(units[rows], 1)][:2])
    with pytest.raises(DataError, match="leave none"):
        validation_slice(units, rows[:2], seed=1, valid_frac=0.1, min_rows=2)


# ---------------------------------------------------------------- per-gene R^2
def test_constant_gene_has_no_r2_and_is_counted_out():
    true = np.array([[1.0, 0.1, 2.0], [2.0, 0.1, 4.0], [3.0, 0.1, 6.0], [4.0, 0.1, 9.0]])
    pred = true.copy()
    pred[:, 0] += [0.5, -0.5, 0.5, -0.5]
    r2 = per_gene_r2(pred, true)
    assert r2[0] == pytest.approx(1.0 - 1.0 / 5.0) and np.isnan(r2[1]) and r2[2] == 1.0
    summary = r2_summary(r2)
    assert summary["n_genes"] == 2.0
    assert summary["r2_mean"] == pytest.approx((0.8 + 1.0) / 2)
    assert summary["frac_r2_above_0.5"] == 1.0
    assert expression_metrics(pred, true)["n_genes"] == 2.0
    # cv_r2 (genes x samples) follows the same convention for both of its R^2s.
    r2_pearson, r2_sse = cv_r2(true.T, pred.T)
    assert np.isnan(r2_pearson[1]) and np.isnan(r2_sse[1])
    np.testing.assert_allclose(r2_sse, r2)
    assert r2_pearson[0] == pytest.approx(np.corrcoef(true[:, 0], pred[:, 0])[0, 1] ** 2)


def test_r2_uses_each_genes_own_mean():
    true = np.array([[0.0, 100.0], [2.0, 102.0]])
    means = np.tile(true.mean(0), (2, 1))  # knowing each gene's level earns nothing
    np.testing.assert_allclose(per_gene_r2(means, true), [0.0, 0.0])


# ---------------------------------------------------------------- Pearson and paired tests
def test_pearson_test_matches_scipy_and_constant_prediction_scores_zero():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 12))
    b = a + rng.normal(size=(3, 12))
    b[2] = 4.0
    r, p = pearson_test(b, a)
    for i in range(2):
        ref = sps.pearsonr(b[i], a[i])
        assert r[i] == pytest.approx(ref.statistic) and p[i] == pytest.approx(ref.pvalue, rel=1e-9)
    assert r[2] == 0.0 and p[2] == 1.0
    np.testing.assert_allclose(row_pearson(a.T, b.T)[:2],
                               [sps.pearsonr(a[:, j], b[:, j]).statistic for j in range(2)])


def test_paired_test_per_gene_drops_nan_and_reports_fraction_better():
    a = np.array([0.5, 0.4, np.nan, 0.3, 0.9])
    b = np.array([0.4, 0.5, 0.1, 0.1, 0.2])
    got = paired_test(a, b, wilcoxon_min_pairs=2)
    kept_a, kept_b = a[[0, 1, 3, 4]], b[[0, 1, 3, 4]]
    assert got["n"] == 4 and got["frac_better"] == 0.75
    assert got["diff"] == pytest.approx(np.mean(kept_a - kept_b))
    assert got["wilcoxon_p"] == pytest.approx(sps.wilcoxon(kept_a, kept_b).pvalue)
    assert got["t_p"] == pytest.approx(sps.ttest_rel(kept_a, kept_b).pvalue)
    assert np.isnan(paired_test(a, b)["wilcoxon_p"])  # default: too few pairs for p < 0.05


def test_paired_test_counts_ties_within_a_tolerance_and_gives_the_mean_difference_interval():
    a = np.array([0.30, 0.2005, 0.10, 0.50, 0.40])
    b = np.array([0.20, 0.2000, 0.1009, 0.5011, 0.45])  # a - b: +0.1, +0.0005, -0.0009, -0.0011, -0.05
    got = paired_test(a, b, tolerance=0.001)
    assert (got["frac_better"], got["frac_tied"], got["frac_worse"]) == pytest.approx((0.2, 0.4, 0.4))
    exact = paired_test(a, b)  # tolerance 0: every nonzero difference is a win or a loss
    assert (exact["frac_better"], exact["frac_tied"], exact["frac_worse"]) == pytest.approx((0.4, 0.0, 0.6))
    d = a - b
    half = 2.776445 * d.std(ddof=1) / np.sqrt(5)  # t quantile 0.975 on 4 df (tables)
    assert (got["diff_ci_low"], got["diff_ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-5)
    assert np.isnan(paired_test([0.1], [0.2])["diff_ci_low"])  # one pair: no interval
    with pytest.raises(ValueError, match="tolerance"):
        paired_test(a, b, tolerance=-0.1)


def test_bh_adjust_hand_values_and_scipy():
    # m = 4 finite: sorted .01 .03 .04 .20 -> p m / rank = .04 .06 .0533 .20; the running
    # minimum from the top makes it monotone: .04 .0533 .0533 .20. NaN is not in the family.
    got = bh_adjust([0.04, 0.01, np.nan, 0.2, 0.03])
    np.testing.assert_allclose(got, [0.16 / 3, 0.04, np.nan, 0.2, 0.16 / 3])
    assert bh_adjust([0.9, 0.8]).tolist() == [0.9, 0.9] and bh_adjust([0.5] * 3).max() == 0.5
    assert bh_adjust([0.6, 0.7, 0.99]).max() <= 1.0 and bh_adjust([]).size == 0
    p = np.random.default_rng(3).uniform(size=40) ** 3
    np.testing.assert_allclose(bh_adjust(p), sps.false_discovery_control(p), rtol=1e-12)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bh_adjust([0.1, 1.5])


def test_with_bh_puts_each_adjusted_column_beside_its_raw_one():
    import pandas as pd
    table = pd.DataFrame({"arm": list("abc"), "t_p": [0.01, 0.04, 0.03], "wilcoxon_p": np.nan,
                          "n": 3})
    out = with_bh(table)
    assert list(out.columns) == ["arm", "t_p", "t_p_bh", "wilcoxon_p", "wilcoxon_p_bh", "n"]
    np.testing.assert_allclose(out["t_p_bh"], [0.03, 0.04, 0.04])
    assert out["wilcoxon_p_bh"].isna().all() and "t_p_bh" not in table


# ---------------------------------------------------------------- ridge
def test_ridge_fit_equals_sklearn_at_the_chosen_alpha():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(80, 6))
    y = x @ rng.normal(size=(6, 3)) + 3.0 + rng.normal(scale=2.0, size=(80, 3))
    alphas = [0.01, 1.0, 30.0, 1e4]
    coef, intercept, alpha = ridge_fit(x[:60], y[:60], x[60:], y[60:], alphas)
    ref = Ridge(alpha=alpha).fit(x[:60], y[:60])
    np.testing.assert_allclose(coef, ref.coef_.T, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(intercept, ref.intercept_, rtol=1e-8)
    # The chosen alpha is the validation-best one of the grid.
    scores = [variance_explained(Ridge(alpha=a).fit(x[:60], y[:60]).predict(x[60:]), y[60:])
              for a in alphas]
    assert alpha == alphas[int(np.argmax(scores))]
    # The criterion is a parameter: preferring the largest shrinkage picks the last alpha.
    _, _, heaviest = ridge_fit(x[:60], y[:60], x[60:], y[60:], alphas,
                               score=lambda pred, true: -np.abs(pred - pred.mean(0)).sum())
    assert heaviest == 1e4


def test_ridge_fit_needs_validation_rows_to_choose():
    x, y = np.eye(4), np.ones((4, 2))
    with pytest.raises(ValueError, match="no validation rows"):
        ridge_fit(x, y, x[:0], y[:0], [0.1, 1.0])
    _, _, alpha = ridge_fit(x, y, x[:0], y[:0], [0.5])
    assert alpha == 0.5
