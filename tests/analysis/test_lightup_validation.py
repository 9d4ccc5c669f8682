"""Light-up validation against known TF -> target pairs: planted signal is found, noise is not."""
import gzip

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT
from scipy import stats

from tfnet_jax.analysis.validation import (
    average_precision,
    early_precision,
    ranking_metrics,
    read_known_pairs,
    spearman_matrix,
    validate_lightup,
    validation_table,
)
from tfnet_jax.errors import DataError

TRRUST = REPO_ROOT.parent / "shared" / "data" / "trrust" / "trrust_human.tsv.gz"
TFS = [f"TF{i}" for i in range(30)]
TARGETS = [f"G{i}" for i in range(60)]


def _planted(seed=0, signal=3.0, signs_planted=True):
    """A full TF x target grid; ~10% of pairs known, their |score| raised by `signal`."""
    rng = np.random.default_rng(seed)
    grid = pd.MultiIndex.from_product([TFS, TARGETS], names=["tf", "target"]).to_frame(index=False)
    known_mask = rng.random(len(grid)) < 0.1
    modes = rng.choice(["Activation", "Repression", "Unknown"], size=len(grid))
    sign = np.where(modes == "Repression", -1.0, 1.0)
    if not signs_planted:
        sign = rng.choice([-1.0, 1.0], size=len(grid))
    noise = rng.normal(0, 1, len(grid))
    score = np.where(known_mask, sign * (signal + np.abs(noise)), noise)
    scores = grid.assign(score=score)
    known = grid[known_mask].assign(mode=modes[known_mask]).reset_index(drop=True)
    # Pairs outside the table must be ignored.
    known = pd.concat([known, pd.DataFrame({"tf": ["TFX"], "target": ["G1"], "mode": ["Activation"]})])
    return scores, known


def _brute_auroc(values, positive):
    pos, neg = values[positive], values[~positive]
    diff = pos[:, None] - neg[None, :]
    return ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size


def test_planted_signal_is_found():
    scores, known = _planted()
    result = validate_lightup(scores, known)
    n_known = len(known) - 1
    assert result["n_known_pairs_used"] == n_known
    assert (result["n_tfs"], result["n_targets"]) == (30, 60)
    assert result["auroc"] > 0.97
    assert result["sign_agreement"] == 1.0 and result["sign_p"] < 1e-10
    assert result["sign_n"] == (known["mode"] != "Unknown").sum() - 1
    per_target = result["per_target"]
    assert (per_target["n_known"] >= 1).all() and (per_target["n_other"] >= 1).all()
    assert per_target["n_known"].sum() == n_known  # no target here has every TF known
    assert result["frac_targets_p05"] > 0.5 and result["combined_p"] < 1e-10
    table = validation_table(result)
    assert set(table["method"]) == {"lightup"}
    assert table.set_index("metric").loc["auroc", "value"] == pytest.approx(result["auroc"])


def test_random_signs_and_noise():
    scores, known = _planted(seed=1, signs_planted=False)
    result = validate_lightup(scores, known)
    assert result["auroc"] > 0.97
    assert abs(result["sign_agreement"] - 0.5) < 0.15 and result["sign_p"] > 0.01
    scores, known = _planted(seed=2, signal=0.0)
    scores["score"] = np.random.default_rng(3).normal(size=len(scores))
    result = validate_lightup(scores, known)
    assert abs(result["auroc"] - 0.5) < 0.06
    assert result["frac_targets_p05"] < 0.15 and result["combined_p"] > 0.01


def test_auroc_with_ties_matches_pairwise_count():
    scores, known = _planted(seed=4, signal=0.5)
    scores["score"] = np.round(scores["score"], 0)  # many ties
    result = validate_lightup(scores, known)
    keys = set(zip(known["tf"], known["target"]))
    positive = np.array([k in keys for k in zip(scores["tf"], scores["target"])])
    assert result["auroc"] == pytest.approx(_brute_auroc(np.abs(scores["score"].to_numpy()), positive))
    one = result["per_target"].iloc[0]
    rows = scores[scores["target"] == one["target"]]
    pos = np.array([(t, one["target"]) in keys for t in rows["tf"]])
    expected = stats.mannwhitneyu(np.abs(rows["score"])[pos], np.abs(rows["score"])[~pos], alternative="greater")
    assert one["p_value"] == pytest.approx(expected.pvalue)


def test_spearman_control():
    rng = np.random.default_rng(5)
    scores, known = _planted(seed=5)
    expression = pd.DataFrame(rng.normal(size=(40, len(TFS))), columns=TFS)
    for target in TARGETS:  # targets follow their known TFs, so co-expression finds them too
        regulators = known.loc[known["target"] == target, "tf"].tolist()
        regulators = [t for t in regulators if t in TFS]
        expression[target] = expression[regulators].sum(axis=1) + rng.normal(size=40)
    expression["TF0"] = np.round(expression["TF0"])  # ties in ranks
    rho = spearman_matrix(expression, ["TF0", "TF3"], ["G2", "G7", "TF3"])
    for i, tf in enumerate(["TF0", "TF3"]):
        for j, target in enumerate(["G2", "G7", "TF3"]):
            assert rho[i, j] == pytest.approx(stats.spearmanr(expression[tf], expression[target])[0])
    result = validate_lightup(scores, known, expression=expression.drop(columns=["G0"]))
    control = result["correlation"]
    assert control["n_pairs_not_in_expression"] == len(TFS)
    assert control["auroc"] > 0.8
    keep = scores[scores["target"] != "G0"]
    keys = set(zip(known["tf"], known["target"]))
    positive = np.array([k in keys for k in zip(keep["tf"], keep["target"])])
    full = pd.DataFrame(stats.spearmanr(expression).statistic, index=expression.columns, columns=expression.columns)
    abs_rho = np.round(np.abs([full.loc[t, g] for t, g in zip(keep["tf"], keep["target"])]), 12)
    assert control["auroc"] == pytest.approx(_brute_auroc(abs_rho, positive))
    assert set(validation_table(result)["method"]) == {"lightup", "correlation"}


def test_ranking_metrics_by_hand():
    # Ranked 0.9+ 0.8- 0.7+ 0.6- 0.5- 0.4+: precision at each hit 1, 2/3, 3/6.
    values = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    positive = np.array([1, 0, 1, 0, 0, 1], bool)
    out = ranking_metrics(values, positive)
    assert out["auprc"] == pytest.approx((1 + 2 / 3 + 1 / 2) / 3)  # 13/18
    assert out["random_precision"] == 0.5 and out["auprc_ratio"] == pytest.approx(13 / 9)
    assert out["early_precision"] == pytest.approx(2 / 3) and out["epr"] == pytest.approx(4 / 3)
    assert out["auroc"] == pytest.approx(5 / 9)  # 3 + 2 + 0 of 9 (positive, negative) pairs


def test_ranking_metrics_with_ties_by_hand():
    # 3-, then a tie 2+ 2+ 2-, then 1+. AP: the tie is one threshold (P 2/4 at R 2/3), then
    # P 3/5 at R 1: 0.5 * 2/3 + 0.6 * 1/3 = 8/15. Early precision, k = 3: 3- then 2 of the
    # 3 tied places, each holding 2/3 positive on average: (0 + 4/3) / 3 = 4/9.
    values = np.array([3.0, 2.0, 2.0, 2.0, 1.0])
    positive = np.array([0, 1, 1, 0, 1], bool)
    assert average_precision(values, positive) == pytest.approx(8 / 15)
    assert early_precision(values, positive) == pytest.approx(4 / 9)
    out = ranking_metrics(values, positive)
    assert out["auprc_ratio"] == pytest.approx(8 / 15 / 0.6) and out["epr"] == pytest.approx(4 / 9 / 0.6)
    # Same ordering, permuted input: tie handling does not depend on the input order.
    order = np.array([3, 1, 4, 0, 2])
    assert early_precision(values[order], positive[order]) == pytest.approx(4 / 9)
    assert average_precision(values[order], positive[order]) == pytest.approx(8 / 15)
    # One class only: undefined, not a number that looks like a result.
    assert np.isnan(ranking_metrics(values, np.zeros(5, bool))["epr"])
    assert np.isnan(ranking_metrics(values, np.ones(5, bool))["auprc_ratio"])


def test_average_precision_is_sklearns_and_early_precision_the_top_k():
    from sklearn.metrics import average_precision_score
    rng = np.random.default_rng(7)
    for decimals in (None, 1):  # distinct values, then many ties
        values = rng.normal(size=300)
        values = values if decimals is None else np.round(values, decimals)
        positive = rng.random(300) < 0.15 + 0.3 * (values > 0.5)
        assert average_precision(values, positive) == pytest.approx(
            average_precision_score(positive, values), abs=1e-12)
    values = rng.normal(size=200)
    positive = rng.random(200) < 0.2
    top = np.argsort(-values)[: positive.sum()]
    assert early_precision(values, positive) == pytest.approx(positive[top].mean())


def test_validation_reports_auprc_ratio_and_epr_for_model_and_control():
    rng = np.random.default_rng(8)
    scores, known = _planted(seed=8, signal=0.5)
    scores = scores.rename(columns={"tf": "source", "score": "weight"})  # decoupler's names
    expression = pd.DataFrame(rng.normal(size=(30, len(TFS) + len(TARGETS))), columns=TFS + TARGETS)
    result = validate_lightup(scores, known, expression=expression)
    keys = set(zip(known["tf"], known["target"]))
    positive = np.array([k in keys for k in zip(scores["source"], scores["target"])])
    strength = np.abs(scores["weight"].to_numpy())
    assert result["random_precision"] == pytest.approx(positive.mean())
    assert result["auprc_ratio"] == pytest.approx(average_precision(strength, positive) / positive.mean())
    assert result["epr"] == pytest.approx(early_precision(strength, positive) / positive.mean())
    assert result["auprc_ratio"] > 1.5 and result["epr"] > 1.5  # planted signal beats chance
    control = result["correlation"]  # noise expression: the control is at chance
    assert abs(control["auprc_ratio"] - 1) < 0.35 and abs(control["epr"] - 1) < 0.5
    table = validation_table(result).set_index(["method", "metric"])["value"]
    for method, part in (("lightup", result), ("correlation", control)):
        for metric in ("auroc", "auprc_ratio", "epr"):
            assert table[(method, metric)] == pytest.approx(part[metric])


def test_bad_inputs():
    scores, known = _planted()
    with pytest.raises(DataError, match="weight"):
        validate_lightup(scores.drop(columns="score"), known)
    with pytest.raises(DataError, match=r"non-finite weight for \(TF0, G0\)"):
        validate_lightup(scores.assign(score=np.where(np.arange(len(scores)) == 0, np.nan, scores["score"])), known)
    with pytest.raises(DataError, match="more than once"):
        validate_lightup(pd.concat([scores, scores.iloc[:1]]), known)


def test_read_known_pairs(tmp_path):
    path = tmp_path / "raw.tsv"
    path.write_text("AATF\tBAX\tRepression\t22909821\nAATF\tMYC\tActivation\t1;2\n\nABL1\tBCL6\tUnknown\t3\n")
    pairs = read_known_pairs(path)
    assert pairs.values.tolist() == [["AATF", "BAX", "Repression"], ["AATF", "MYC", "Activation"],
                                     ["ABL1", "BCL6", "Unknown"]]
    with gzip.open(tmp_path / "h.tsv.gz", "wt") as handle:
        handle.write("tf\ttarget\tmode\tpmids\nAATF\tBAX\tRepression\t1\n")
    assert read_known_pairs(tmp_path / "h.tsv.gz").values.tolist() == [["AATF", "BAX", "Repression"]]
    path.write_text("AATF\tBAX\tRepression\t1\nAATF\tMYC\tActivates\t2\n")
    with pytest.raises(DataError, match=r"raw\.tsv, line 2: mode 'Activates'"):
        read_known_pairs(path)
    with pytest.raises(DataError, match="not found"):
        read_known_pairs(tmp_path / "none.tsv")
    # decoupler / CollecTRI networks: source, target, weight (csv or tsv); the sign is the mode.
    (tmp_path / "collectri.csv").write_text("source,target,weight,PMID\nMYC,TERT,1,1\nTP53,MYC,-1,2\nA,B,0,\n")
    assert read_known_pairs(tmp_path / "collectri.csv").values.tolist() == [
        ["MYC", "TERT", "Activation"], ["TP53", "MYC", "Repression"], ["A", "B", "Unknown"]]
    (tmp_path / "bad.tsv").write_text("source\ttarget\tweight\nMYC\tTERT\tup\n")
    with pytest.raises(DataError, match=r"bad\.tsv, line 2: weight 'up' is not a finite number"):
        read_known_pairs(tmp_path / "bad.tsv")


def test_real_trrust():
    if not TRRUST.is_file():
        pytest.skip(f"{TRRUST} not present")
    pairs = read_known_pairs(TRRUST)
    assert len(pairs) == 9396 and pairs["source"].nunique() == 795
    assert pairs["mode"].value_counts().to_dict() == {"Unknown": 4325, "Activation": 3149, "Repression": 1922}
