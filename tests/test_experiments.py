"""Experiments: layer ablation resolution, aggregation and statistics with known answers,
and a multirun interrupted and re-run that trains only its missing arms."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO_ROOT, TINY_DATA, TINY_MODEL, execute_notebook

from tfnet_jax.errors import DataError, TfnetError
from tfnet_jax.eval.stats import bh_adjust, mean_ci, paired_test
from tfnet_jax.experiments.collect import arm_name, collect, varying_keys
from tfnet_jax.tasks.transcriptionnet.family import resolve_ablation

LAYERS = ["ppi", "pathway", "coexpression"]


# ------------------------------------------------------------ network.ablation
@pytest.mark.parametrize("ablation, expected", [
    ("all", LAYERS), ("only_1", ["pathway"]), ("drop_0", ["pathway", "coexpression"]),
    ("drop_2", ["ppi", "pathway"])])
def test_ablation_resolves_by_layer_index(ablation, expected):
    assert resolve_ablation(ablation, LAYERS) == expected


@pytest.mark.parametrize("ablation, message", [
    ("only_3", r"network.ablation=only_3: layer index 3 out of range.*3 layer\(s\)"),
    ("drop_7", "network.ablation=drop_7: layer index 7 out of range"),
    ("keep_1", "network.ablation='keep_1': expected all, only_<i> or drop_<i>")])
def test_bad_ablation_is_an_error_naming_the_field(ablation, message):
    with pytest.raises(TfnetError, match=message):  # a bad value: ConfigError; a bad index: DataError
        resolve_ablation(ablation, LAYERS)


def test_dropping_the_only_layer_is_an_error():
    with pytest.raises(DataError, match="leaves none"):
        resolve_ablation("drop_0", ["corum"])


# ------------------------------------------------------------ statistics
def test_mean_ci_uses_the_t_distribution():
    mean, low, high = mean_ci([0.5, 0.6, 0.7])
    half = 4.302652729749464 * 0.1 / np.sqrt(3)  # t_{0.975, 2} * sd / sqrt(n)
    assert mean == pytest.approx(0.6) and (low, high) == pytest.approx((0.6 - half, 0.6 + half))
    assert np.isnan(mean_ci([0.4])[1])  # one seed: no interval


def test_paired_test_known_answers():
    a, b = [0.4, 0.45, 0.65], [0.5, 0.6, 0.7]
    got = paired_test(a, b)
    # diffs -0.1, -0.15, -0.05: mean -0.1, sd 0.05, t = -0.1 / (0.05 / sqrt 3) on 2 df
    t = -0.1 / (0.05 / np.sqrt(3))
    from scipy.stats import t as t_dist
    assert got["diff"] == pytest.approx(-0.1) and got["t_p"] == pytest.approx(2 * t_dist.sf(-t, 2))
    assert np.isnan(got["wilcoxon_p"])  # n < 6
    # Six pairs all in one direction: exact two-sided Wilcoxon p = 2 / 2^6.
    six = paired_test(np.arange(6) + np.arange(1, 7) * 0.01, np.arange(6))
    assert six["wilcoxon_p"] == pytest.approx(2 / 64)
    assert paired_test([1, 2], [1, 2])["t_p"] == 1.0


# ------------------------------------------------------------ collect on hand-made runs
MODEL = {"all": [0.5, 0.6, 0.7], "only_0": [0.4, 0.45, 0.65]}  # pearson_delta of RNAi by seed


def write_run(sweep, num, arm, seed, value):
    run = sweep / f"{num}_network.ablation={arm},seed={seed}"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": seed}))
    (run / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump([f"network.ablation={arm}", f"seed={seed}", "experiment=ablate_networks"]))

    def scores(v):
        return {"pearson_delta": v, "mse": 1 - v, "n": 10.0}
    metrics = {"model": {"RNAi": scores(value), "OE": scores(value / 2)},
               "baselines": {"mean": {"RNAi": scores(0.0), "OE": scores(0.0)},
                             "ridge": {"RNAi": scores(value - 0.1), "OE": scores(0.1)}},
               "fusion_weights": {"ppi": 0.7, "pathway": 0.3}, "train": {"best_score": value},
               "layers": ["ppi", "pathway"] if arm == "all" else ["ppi"]}
    (run / "metrics.json").write_text(json.dumps(metrics))
    with (run / "metrics.jsonl").open("w") as handle:
        for step in (10, 20):
            handle.write(json.dumps({"step": step, "train/loss": 1 / step}) + "\n")
            handle.write(json.dumps({"step": step, "valid/pearson_delta": step / 100}) + "\n")
    return run


@pytest.fixture
def sweep(tmp_path):
    num = 0
    for arm in ("only_0", "all"):  # the reference arm is not first: it must still be chosen
        for seed, value in enumerate(MODEL[arm]):
            write_run(tmp_path, num, arm, seed, value)
            num += 1
    unfinished = write_run(tmp_path, num, "drop_0", 0, 0.1)
    (unfinished / "metrics.json").unlink()
    return tmp_path


def test_collect_tidy_table_intervals_and_paired_tests(sweep):
    result = collect(sweep)
    table = pd.read_parquet(sweep / "results.parquet")
    # 6 runs x 2 types x 3 methods x 2 metrics, plus one valid_best row per run
    assert len(table) == 6 * 2 * 3 * 2 + 6
    assert len(pd.read_csv(sweep / "results.csv")) == len(table)
    assert {"run", "arm", "seed", "network.ablation", "pert_type", "method", "metric",
            "value"} <= set(table.columns) and "experiment" not in table.columns
    assert set(table["arm"]) == {"all", "only_0"} and result["reference"] == "all"
    assert [p.name for p in result["missing"]] == ["6_network.ablation=drop_0,seed=0"]

    summary = result["summary"].set_index(["arm", "pert_type", "method", "metric"])
    row = summary.loc[("all", "RNAi", "model", "pearson_delta")]
    mean, low, high = mean_ci(MODEL["all"])
    assert (row["n"], row["mean"], row["ci_low"], row["ci_high"]) == pytest.approx((3, mean, low, high))
    assert summary.loc[("only_0", "OE", "model", "mse"), "mean"] == pytest.approx(
        1 - np.mean(MODEL["only_0"]) / 2)

    paired = result["paired"].set_index(["pert_type", "metric", "arm"])
    got = paired.loc[("RNAi", "pearson_delta", "only_0")]
    assert got["reference"] == "all" and got["n"] == 3
    assert got["t_p"] == pytest.approx(paired_test(MODEL["only_0"], MODEL["all"])["t_p"])
    # ridge is the model minus 0.1 on RNAi in every seed: diff exactly -0.1
    vs_model = result["methods_paired"].set_index(["pert_type", "metric", "method"])
    assert vs_model.loc[("RNAi", "pearson_delta", "ridge"), "diff"] == pytest.approx(-0.1)
    # Benjamini-Hochberg beside every raw p-value, over all tests of that column in the file.
    for name, frame in (("paired", result["paired"]), ("methods_paired", result["methods_paired"])):
        columns = list(frame.columns)
        assert columns.index("t_p_bh") == columns.index("t_p") + 1
        assert columns.index("wilcoxon_p_bh") == columns.index("wilcoxon_p") + 1
        np.testing.assert_allclose(frame["t_p_bh"], bh_adjust(frame["t_p"]))
        assert (frame["t_p_bh"] >= frame["t_p"]).all()
        saved = pd.read_csv(sweep / f"{name}.csv")
        np.testing.assert_allclose(saved["t_p_bh"], frame["t_p_bh"])
    assert vs_model["t_p"].notna().sum() == 2 * 2 * 2  # 2 baselines x 2 types x 2 metrics

    report = (sweep / "report.md").read_text()
    assert "reference arm `all`" in report and "6_network.ablation=drop_0" in report
    assert "0.600 [" in report  # the interval cell of arm `all`, RNAi
    assert "`t_p_bh`, `wilcoxon_p_bh`: Benjamini-Hochberg adjusted" in report
    assert "methods_paired.csv 8 / 0" in report and "| t_p | t_p_bh |" in report
    for figure in ("arms", "methods", "learning_curves", "fusion_weights"):
        assert (sweep / "figures" / f"{figure}.png").stat().st_size > 1000
        assert f"figures/{figure}.png" in report


def test_replicate_ceiling_is_a_row_but_never_tested_against_the_model(sweep):
    for run in sweep.glob("*/metrics.json"):
        metrics = json.loads(run.read_text())
        metrics["replicate_ceiling"] = {"RNAi": {"pearson_delta": 0.9, "mse": 0.1, "n": 4.0}}
        run.write_text(json.dumps(metrics))
    result = collect(sweep)
    ceiling = result["table"][result["table"]["method"] == "replicate_ceiling"]
    assert set(ceiling["role"]) == {"ceiling"} and len(ceiling) == 6 * 2
    assert "replicate_ceiling" in set(result["summary"]["method"])
    assert "replicate_ceiling" not in set(result["methods_paired"]["method"])


def test_collect_reference_choice(sweep):
    assert collect(sweep, reference="only_0")["reference"] == "only_0"
    with pytest.raises(SystemExit, match="not an arm"):
        collect(sweep, reference="nope")


def test_an_override_named_arm_keeps_its_own_column(tmp_path):
    for num, arm in enumerate(("base", "refine")):  # ablate_components sweeps `arm=...`
        run = write_run(tmp_path, num, "all", 0, 0.5)
        (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"arm={arm}", "seed=0"]))
    table = collect(tmp_path)["table"]
    assert set(table["arm"]) == {"base", "refine"} and set(table["override.arm"]) == {"base", "refine"}


def test_arm_names_are_readable():
    assert arm_name({"seed": "0"}) == "default"
    assert arm_name({"data.pert_types": "[RNAi]", "seed": "1"}) == "[RNAi]"
    assert arm_name({"model.fusion": "mean", "model.hidden": "8", "hydra.x": "1"}) == \
        "fusion=mean,hidden=8"
    assert arm_name({"train.learning_rate": "0.00042246380742484593", "model.hidden": "32",
                     "model.beta": "1.0"}) == "learning_rate=0.000422,hidden=32,beta=1.0"
    # Overrides shared by every run of the sweep do not name arms.
    runs = [{"data.num_genes": "300", "model.fusion": f, "seed": s} for f in "ab" for s in "01"]
    assert varying_keys(runs) == {"model.fusion"}
    assert arm_name(runs[0], varying_keys(runs)) == "a"


# ------------------------------------------------------------ interrupted sweep
def multirun(sweep_dir, arms):
    steps = {"max_steps": 20, "batch_size": 16, "eval_batch_size": 32, "eval_every": 10,
             "log_every": 10, "warmup_steps": 2, "progress": "false"}
    command = ([sys.executable, "-m", "tfnet_jax.train", "-m", f"hydra.sweep.dir={sweep_dir}",
                f"network.ablation={arms}", "seed=0"]
               + [f"data.{k}={v}" for k, v in TINY_DATA.items()]
               + [f"model.{k}={v}" for k, v in TINY_MODEL.items()]
               + [f"train.{k}={v}" for k, v in steps.items()])
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.e2e
@pytest.mark.slow  # test_launchers re-runs a missing arm too (default suite)
def test_rerun_sweep_trains_only_missing_arms(tmp_path):
    multirun(tmp_path, "all,only_1")
    runs = sorted(p for p in tmp_path.iterdir() if p.is_dir())  # <job num>_<overrides>
    assert [p.name[:2] for p in runs] == ["0_", "1_"]
    kept, killed = runs
    assert json.loads((killed / "metrics.json").read_text())["layers"] == ["pathway"]
    truth = pd.read_parquet(kept / "truth_test.parquet")
    pred = pd.read_parquet(kept / "predictions_test.parquet")
    assert truth.shape == pred.shape and (truth["pert_gene"] == pred["pert_gene"]).all()
    # "Kill" the second arm before it finished: no metrics.json, no checkpoint.
    (killed / "metrics.json").unlink()
    shutil.rmtree(killed / "checkpoints")
    before = (kept / "metrics.json").stat().st_mtime_ns

    out = multirun(tmp_path, "all,only_1")
    assert f"Skipped {kept}" in out and f"Skipped {killed}" not in out
    assert (kept / "metrics.json").stat().st_mtime_ns == before
    assert (killed / "metrics.json").exists()
    result = collect(tmp_path)
    assert set(result["table"]["arm"]) == {"all", "only_1"}
    assert (tmp_path / "figures" / "pred_vs_true.png").exists()


# ------------------------------------------------------------ notebook
@pytest.mark.slow  # the notebook repeats the pipeline tests' run end to end
def test_quickstart_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    images = execute_notebook("ablation_quickstart.ipynb", "TFNET_NOTEBOOK_OUT", tmp_path, monkeypatch)
    assert images and (tmp_path / "report.md").exists()
    assert len(list(tmp_path.glob("*/metrics.json"))) == 4
