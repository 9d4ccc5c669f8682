"""TFNet family: runs on the shared engine, metrics, baselines, light-up, core TFs, disease."""
import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import execute_notebook
from hydra import compose, initialize_config_dir

from tfnet_jax.cli import CONFIG_DIR as CONFIGS
from tfnet_jax.data.expression.container import ExpressionData
from tfnet_jax.data.expression.readers import write_expression_h5ad
from tfnet_jax.data.expression.synthetic import GRNConfig, make_grn
from tfnet_jax.errors import DataError
from tfnet_jax.eval.regression import expression_metrics
from tfnet_jax.maths import per_gene_r2
from tfnet_jax.run import train_and_evaluate

TINY_GRN = dict(num_samples=300, num_tfs=16, num_masters=3, num_targets=40, num_states=4)
TINY_TRAIN = dict(max_steps=200, batch_size=32, eval_batch_size=64, eval_every=50, log_every=50,
                  warmup_steps=10, learning_rate=3e-3, progress=False)


def compose_cfg(overrides=(), name="config"):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


def tfnet_overrides(data=True):
    out = ["model=tfnet", "model.hidden=[32]"] + [f"train.{k}={v}" for k, v in TINY_TRAIN.items()]
    if data:
        out += [f"data.{k}={v}" for k, v in TINY_GRN.items()]
    return out


@pytest.fixture(scope="module")
def grn_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("grn_run")
    cfg = compose_cfg(tfnet_overrides())
    metrics = train_and_evaluate(cfg, run_dir)
    return run_dir, metrics


def test_model_tfnet_selects_its_data_and_training_defaults():
    cfg = compose_cfg(["model=tfnet"])
    assert cfg.data.name == "grn" and cfg.train.monitor == "valid/variance_explained"
    assert list(cfg.model.hidden) == [250, 250] and cfg.model.activation == "elu"
    cfg = compose_cfg(["model=tfnet", "data=expression", "data.path=x.h5ad", "data.tf_list=t.txt"])
    assert cfg.data.name == "expression" and cfg.data.path == "x.h5ad"


def test_grn_run_writes_the_pipeline_schema_and_beats_the_mean(grn_run):
    run_dir, metrics = grn_run
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert set(saved["baselines"]) == {"mean", "ridge", "pcr"}
    model = saved["model"]["targets"]
    for key in ("r2_median", "r2_mean", "frac_r2_above_0.5", "variance_explained",
                "r2_grand_mean_paper", "mse"):
        assert key in model
    assert model["variance_explained"] > saved["baselines"]["mean"]["targets"]["variance_explained"] + 0.2
    assert saved["oracle"]["targets"]["r2_median"] >= model["r2_median"] - 0.05
    splits = pd.read_csv(run_dir / "splits.csv")
    assert set(splits["split"]) == {"train", "valid", "test"}
    per_gene = pd.read_csv(run_dir / "per_gene_r2.csv")
    assert len(per_gene) == TINY_GRN["num_targets"] and "r2_model" in per_gene


def test_lightup_cli_writes_parquet_and_validates_against_planted_edges(grn_run):
    from tfnet_jax.lightup import lightup_command
    run_dir, _ = grn_run
    summary = lightup_command(compose_cfg([f"run_dir={run_dir}"], name="lightup"))
    table = pd.read_parquet(run_dir / "lightup.parquet")
    assert list(table.columns[:3]) == ["source", "target", "weight"]
    assert len(table) == TINY_GRN["num_tfs"] * TINY_GRN["num_targets"]
    assert summary["weight"]["auroc"] > 0.6  # chance is 0.5; even this tiny model finds edges
    for part in (summary["weight"], summary["weight"]["correlation"], summary["jacobian"]):
        assert part["auprc_ratio"] > 1 and part["epr"] > 1  # 1 = a random ranking
    saved = json.loads((run_dir / "lightup_validation.json").read_text())
    assert saved["weight"]["correlation"]["epr"] == pytest.approx(summary["weight"]["correlation"]["epr"])


def test_lightup_is_the_loop_over_tfs_and_the_jacobian_its_linearisation():
    from flax import nnx

    from tfnet_jax.analysis.lightup import jacobian_matrix, lightup_matrix
    from tfnet_jax.models.tfnet import TFNet, TFNetModelConfig
    model = TFNet(TFNetModelConfig(7, 5, hidden=(8,)), rngs=nnx.Rngs(0))
    deltas, sd = np.linspace(0.5, 1.5, 7), np.arange(1, 6, dtype=float)
    scores = lightup_matrix(model, deltas, sd, chunk=3)  # chunks of 3: padding path too
    base = np.asarray(model(np.zeros((1, 7), np.float32)))[0]
    for i in range(7):
        x = np.zeros((1, 7), np.float32)
        x[0, i] = deltas[i]
        np.testing.assert_allclose(scores[i], (np.asarray(model(x))[0] - base) * sd, rtol=1e-4, atol=1e-5)
    tiny = deltas * 1e-3
    np.testing.assert_allclose(jacobian_matrix(model, tiny, sd), lightup_matrix(model, tiny, sd),
                               rtol=2e-2, atol=1e-6)


def test_lightup_double_mode_uses_the_data_log_scale():
    from tfnet_jax.analysis.lightup import perturbation_sizes
    np.testing.assert_allclose(perturbation_sizes(np.array([1.0, 2.0]), "double"),
                               [math.log(2), math.log(2) / 2])
    np.testing.assert_allclose(perturbation_sizes(np.array([0.5]), "double", log_base=2), [2.0])
    np.testing.assert_allclose(perturbation_sizes(np.array([3.0]), "sd", k=2), [2.0])


def test_r2_uses_each_genes_own_mean_and_the_paper_variant_is_inflated():
    rng = np.random.default_rng(0)
    true = rng.normal(size=(50, 4)) + np.array([0.0, 10.0, 20.0, 30.0])
    guess_means = np.tile(true.mean(axis=0), (50, 1))
    np.testing.assert_allclose(per_gene_r2(guess_means, true), 0.0, atol=1e-12)
    metrics = expression_metrics(guess_means, true)
    assert abs(metrics["variance_explained"]) < 1e-12 and metrics["r2_grand_mean_paper"] > 0.99
    assert expression_metrics(true, true)["r2_median"] == 1.0


def test_ridge_and_pcr_baselines_recover_a_linear_map():
    from tfnet_jax.models.expression_baselines import fit_predict_expression_baselines
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 6))
    y = x @ rng.normal(size=(6, 3)) + 0.01 * rng.normal(size=(400, 3))
    fitted = fit_predict_expression_baselines(x[:300], y[:300], x[300:350], y[300:350], x[350:])
    for name in ("ridge", "pcr"):
        assert expression_metrics(fitted[name][0], y[350:])["r2_median"] > 0.99
    assert expression_metrics(fitted["mean"][0], y[350:])["r2_median"] < 0.05


def _tiny_expression(num_samples=40, groups=None):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(num_samples, 5)).astype(np.float32)
    return ExpressionData(values, np.array([f"s{i}" for i in range(num_samples)]),
                          np.array(list("abcde")), np.array(["a", "b"]), np.array(["c", "d", "e"]),
                          groups=groups, source="tiny.csv")


def test_split_by_group_holds_out_whole_groups():
    from tfnet_jax.data.splits import split_samples
    groups = np.repeat([f"study{i}" for i in range(8)], 10)
    split = split_samples(_tiny_expression(80, groups), seed=0, by="group")
    for g in np.unique(groups):
        assert len(set(split[groups == g])) == 1
    assert {"train", "valid", "test"} == set(split)


def test_too_few_samples_and_missing_groups_are_clear_errors():
    from tfnet_jax.data.splits import split_samples
    with pytest.raises(DataError, match="too few samples"):
        split_samples(_tiny_expression(6), seed=0)
    with pytest.raises(DataError, match="group_column"):
        split_samples(_tiny_expression(40), seed=0, by="group")


def test_scalers_are_fitted_on_training_samples_only():
    from tfnet_jax.tasks.tfnet.prepare import prepare
    from tfnet_jax.data.splits import split_samples
    data = _tiny_expression(40)
    split = split_samples(data, seed=0)
    before = prepare(data, split)
    data.values[split == "test"] += 100.0  # test samples must not move any scaler
    after = prepare(data, split)
    np.testing.assert_array_equal(before.x_mean, after.x_mean)
    np.testing.assert_array_equal(before.y_sd, after.y_sd)


def test_expression_h5ad_with_tf_list_trains_and_lights_up(tmp_path):
    # The matrix in Ensembl IDs, the TF list and the known pairs in symbols, one gene table.
    # Light-up through the library function, as a notebook calls it (no Hydra).
    from tfnet_jax import load_run
    from tfnet_jax.analysis.lightup import run_lightup
    data = make_grn(GRNConfig(**{**TINY_GRN, "num_samples": 200}))
    ensembl = {g: f"ENSG{i:011d}" for i, g in enumerate(data.genes)}
    pd.DataFrame({"EntrezID": np.arange(len(data.genes)) + 1, "GeneID": list(ensembl.values()),
                  "Symbol": data.genes}).to_csv(tmp_path / "genes.csv", index=False)
    path = write_expression_h5ad(tmp_path / "expr.h5ad", data.values, data.samples,
                                 [ensembl[g] for g in data.genes])
    (tmp_path / "tfs.txt").write_text("\n".join(data.tf_genes[::-1]) + "\n")
    run_dir = tmp_path / "run"
    cfg = compose_cfg(tfnet_overrides(data=False) + ["data=expression", f"data.path={path}",
                                                     f"data.tf_list={tmp_path / 'tfs.txt'}",
                                                     f"data.gene_table={tmp_path / 'genes.csv'}"])
    metrics = train_and_evaluate(cfg, run_dir)
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["model"]["targets"]["r2_median"] == metrics["model"]["targets"]["r2_median"]
    assert "oracle" not in saved  # a file has no planted truth
    run_lightup(load_run(run_dir))
    table = pd.read_parquet(run_dir / "lightup.parquet")
    assert set(table["source"].astype(str)) == {ensembl[g] for g in data.tf_genes}
    assert not (run_dir / "lightup_validation.json").exists()  # nothing known to validate against
    edges = data.extras["edges"][data.extras["edges"]["kind"] == "tf->target"]
    mode = np.where(edges["sign"] > 0, "Activation", "Repression")
    known = pd.DataFrame({"tf": edges["tf"], "target": edges["target"], "mode": mode})
    known.to_csv(tmp_path / "known.tsv", sep="\t", index=False)
    summary = run_lightup(load_run(run_dir), known=str(tmp_path / "known.tsv"), jacobian=False)
    assert summary["weight"]["n_known_pairs_used"] == len(known)
    assert summary["weight"]["auroc"] > 0.6 and summary["weight"]["correlation"]["epr"] > 1


def test_unknown_tf_in_the_list_is_a_clear_error_through_the_run(tmp_path):
    data = make_grn(GRNConfig(**TINY_GRN))
    path = write_expression_h5ad(tmp_path / "expr.h5ad", data.values, data.samples, data.genes)
    (tmp_path / "tfs.txt").write_text("TF0000\nNOT_A_GENE\n")
    cfg = compose_cfg(tfnet_overrides(data=False) + ["data=expression", f"data.path={path}",
                                                     f"data.tf_list={tmp_path / 'tfs.txt'}"])
    with pytest.raises(DataError, match=r"tfs\.txt.*NOT_A_GENE|NOT_A_GENE.*tfs\.txt"):
        train_and_evaluate(cfg, tmp_path / "run")


def test_core_tf_elimination_and_disease_on_a_trained_run(grn_run):
    # Core TFs and disease through the library functions (no Hydra).
    from tfnet_jax import load_run
    from tfnet_jax.analysis.disease import run_disease
    from tfnet_jax.analysis.tf_selection import run_core_tfs
    run_dir, _ = grn_run
    run = load_run(run_dir)
    sets = run_core_tfs(run, retrain_steps=40, min_tfs=3, drop_fraction=0.3)
    table = pd.read_csv(run_dir / "core_tfs.csv")
    assert table["n_tfs"].iloc[0] == TINY_GRN["num_tfs"] and table["n_tfs"].iloc[-1] == 3
    assert (np.diff(table["n_tfs"]) < 0).all()
    assert sets["80%"]["n_tfs"] <= sets["95%"]["n_tfs"]
    assert sets["80%"]["valid_share_of_full"] >= 0.8
    assert (run_dir / "figures" / "core_tfs.png").stat().st_size > 0
    summary = run_disease(run)
    assert -1 <= summary["spearman_rho"] <= 1 and summary["n_targets"] == TINY_GRN["num_targets"]
    ranking = pd.read_csv(run_dir / "disease_tf_ranking.csv")
    assert set(ranking.columns) >= {"tf", "log_fc", "rho_without", "rho_drop"}


def test_disease_prediction_of_a_linear_model_is_its_weights_times_the_shift():
    from flax import nnx

    from tfnet_jax.analysis.disease import disease_analysis
    from tfnet_jax.models.tfnet import TFNet, TFNetModelConfig
    from tfnet_jax.tasks.tfnet.prepare import prepare
    from tfnet_jax.data.splits import split_samples
    data = _tiny_expression(40)
    prepared = prepare(data, split_samples(data, seed=0))
    model = TFNet(TFNetModelConfig(2, 3, hidden=()), rngs=nnx.Rngs(0))
    weights = np.asarray(model.out.kernel[...])
    tf_lfc = pd.Series([0.7, -0.4], index=["a", "b"])
    expected = ((tf_lfc.to_numpy() / prepared.x_sd) @ weights) * prepared.y_sd
    observed = pd.Series(expected, index=["c", "d", "e"])
    summary, ranking = disease_analysis(model, prepared, tf_lfc, observed)
    assert summary["spearman_rho"] == pytest.approx(1.0)
    assert set(ranking["tf"]) == {"a", "b"}
    with pytest.raises(DataError, match="none of the"):
        disease_analysis(model, prepared, pd.Series([1.0], index=["zz"]), observed)


def test_model_config_reaches_the_network():
    from tfnet_jax.data.splits import split_samples
    from tfnet_jax.schemas.typed import typed_group
    from tfnet_jax.tasks.tfnet.prepare import build_model, prepare
    data = _tiny_expression(40)
    prepared = prepare(data, split_samples(data, seed=0))
    cfg = typed_group("model", compose_cfg(["model=tfnet", "model.hidden=[4,3]",
                                            "model.linear_skip=true"]).model)
    model = build_model(cfg, prepared, seed=0)
    assert [layer.out_features for layer in model.layers] == [4, 3]
    assert model.skip[...].shape == (2, 3) and np.abs(np.asarray(model.skip[...])).sum() > 0  # ridge start
    with pytest.raises(ValueError, match="activation"):
        build_model(dataclasses.replace(cfg, activation="nope"), prepared, seed=0)


def test_tfnet_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    images = execute_notebook("tfnet_quickstart.ipynb", "TFNET_NOTEBOOK_OUT", tmp_path, monkeypatch)
    assert len(images) >= 2
    for name in ("metrics.json", "lightup.parquet", "core_tfs.csv", "disease.json"):
        assert (tmp_path / "tfnet_run" / name).exists()
