"""Configs, the end-to-end run, honest splits and prediction, on tiny synthetic data."""
import json

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from conftest import TINY_DATA, TINY_MODEL
from tfnet_jax.cli import CONFIG_DIR as CONFIGS
from tfnet_jax.run import run_name, train_and_evaluate


def compose_cfg(overrides=(), name="config"):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


def tiny_overrides(**train):
    data = [f"data.{k}={v}" for k, v in TINY_DATA.items()]
    model = [f"model.{k}={v}" for k, v in TINY_MODEL.items()]
    steps = {"max_steps": 300, "batch_size": 16, "eval_batch_size": 32, "eval_every": 25,
             "log_every": 25, "warmup_steps": 10, "learning_rate": 5e-3, "progress": False, **train}
    return data + model + [f"train.{k}={v}" for k, v in steps.items()]


def test_default_config_composes():
    cfg = compose_cfg()
    assert cfg.data.name == "synthetic" and cfg.model.name == "transcriptionnet"
    assert cfg.model.gat_layers == 3 and cfg.network.layers is None
    assert cfg.train.seed == cfg.seed == cfg.split.seed


def test_overrides_reach_the_config():
    cfg = compose_cfg(["model.hidden=128", "network.layers=[ppi,pathway]", "seed=3"])
    assert cfg.model.hidden == 128 and list(cfg.network.layers) == ["ppi", "pathway"]
    assert cfg.train.seed == 3 and cfg.split.seed == 3


@pytest.mark.parametrize("override", ["model.hiden=128", "train.learnin_rate=0.1"])
def test_unknown_key_is_a_clear_error(override):
    with pytest.raises(ConfigCompositionException, match=override.split("=")[0].split(".")[1]):
        compose_cfg([override])


def test_unknown_group_option_is_a_clear_error():
    with pytest.raises(ConfigCompositionException, match="data"):
        compose_cfg(["data=synthtic"])


def test_run_name_is_path_safe():
    assert run_name("") == "default"
    name = run_name("data=dir,data.root=../shared/data/l1000_genetic")
    assert "/" not in name and ".." not in name and name.startswith("data=dir,data.root=")
    assert len(run_name("x=" + "y" * 500)) <= 80


def test_unknown_layer_is_a_clear_error(tmp_path):
    cfg = compose_cfg(tiny_overrides() + ["network.layers=[ppi,nope]"])
    with pytest.raises(ValueError, match=r"network.layers: unknown layer\(s\) \['nope'\]"):
        train_and_evaluate(cfg, tmp_path)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    cfg = compose_cfg(tiny_overrides())
    return run_dir, train_and_evaluate(cfg, run_dir)


def test_end_to_end_beats_mean_baseline(tiny_run):
    run_dir, metrics = tiny_run
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert set(saved["model"]) == {"RNAi", "CRISPR", "OE"}
    assert {"mean", "neighbors", "ridge"} <= set(saved["baselines"])
    for t, m in saved["model"].items():
        assert saved["baselines"]["mean"][t]["pearson_delta"] == 0.0
        # The model must recover a real share of the planted signal on held-out genes.
        assert m["pearson_delta"] > 0.25, (t, m)
        assert m["pearson_delta"] > 0.3 * saved["oracle"][t]["pearson_delta"]
        assert m["retrieval_top10"] > 10 / m["n"]
    assert abs(sum(saved["fusion_weights"].values()) - 1.0) < 1e-5
    assert (run_dir / "checkpoints" / "best").is_dir()
    assert (run_dir / "metrics.jsonl").read_text().count("valid/pearson_delta") >= 1
    test_preds = pd.read_parquet(run_dir / "predictions_test.parquet")
    assert len(test_preds) == sum(m["n"] for m in saved["model"].values())
    # The out-of-distribution guard: chosen on validation (never worse there), kept for
    # tfnet-predict, and each prediction's direction from the training mean unchanged.
    guard = saved["guard"]
    assert guard["applied_to"] == ["model", "ridge", "linear"]
    for t, m in saved["model"].items():
        choice = guard["choices"]["model"][t]
        assert m["pearson_delta"] == pytest.approx(guard["unguarded"]["model"][t]["pearson_delta"])
        assert choice["valid_mse"] <= choice["valid_mse_unguarded"]
        assert 0 <= choice["test_flagged"] <= choice["test_n"] == m["n"]
    state = json.loads((run_dir / "guard.json").read_text())["types"]
    assert {t: s["shrink"] for t, s in state.items()} == {
        t: c["shrink"] for t, c in guard["choices"]["model"].items()}


def test_predict_writes_every_gene(tiny_run, tmp_path):
    from tfnet_jax.predict import predict_run
    run_dir, _ = tiny_run
    genes = tmp_path / "genes.txt"
    genes.write_text("G00003\n# a comment\nG00010\n")
    cfg = compose_cfg([f"run_dir={run_dir}", f"genes={genes}", "format=csv",
                       f"output={tmp_path / 'p'}", "chunk_size=1"], name="predict")
    [path] = predict_run(cfg)
    out = pd.read_csv(path)
    assert path == tmp_path / "p.csv" and out.shape == (2 * 3, 3 + TINY_DATA["num_readouts"])
    assert out["pert_gene"].tolist()[:2] == ["G00003", "G00010"]

    cfg = compose_cfg([f"run_dir={run_dir}", "pert_types=[OE]", "format=[parquet,gctx]",
                       "chunk_size=64"], name="predict")
    parquet_path, gctx_path = predict_run(cfg)
    full = pd.read_parquet(parquet_path)
    assert len(full) == TINY_DATA["num_genes"] and set(full["pert_type"]) == {"OE"}
    # The test predictions written at training time are the same model's outputs.
    test_preds = pd.read_parquet(run_dir / "predictions_test.parquet").query("pert_type == 'OE'")
    merged = test_preds.merge(full, on=["pert_type", "pert_gene"], suffixes=("", "_all"))
    col = test_preds.columns[2]
    np.testing.assert_allclose(merged[col], merged[col + "_all"], rtol=1e-4, atol=1e-5)

    # The GCTX holds the same numbers, readable by our reader and by plain h5py (CMap layout).
    import h5py
    from tfnet_jax.data.gctx import read_gctx
    gctx = read_gctx(gctx_path)
    readouts = full.columns[3:]
    np.testing.assert_array_equal(gctx.row_ids, readouts)
    np.testing.assert_allclose(gctx.matrix.T, full[readouts].to_numpy(), rtol=1e-6)
    assert gctx.col_meta["pert_type"].tolist() == ["OE"] * len(full)
    with h5py.File(gctx_path, "r") as handle:
        on_disk = handle["/0/DATA/0/matrix"][...]  # signatures x genes
        col_ids = [x.decode() for x in handle["/0/META/COL/id"][...]]
    assert on_disk.shape == (len(full), len(readouts))
    np.testing.assert_allclose(on_disk, full[readouts].to_numpy(), rtol=1e-6)
    assert col_ids[0] == "OE:" + full["pert_gene"].iloc[0]


def test_predict_rejects_unknown_genes(tiny_run, tmp_path):
    from tfnet_jax.data.dataset import DataError
    from tfnet_jax.predict import predict_run
    run_dir, _ = tiny_run
    genes = tmp_path / "genes.txt"
    genes.write_text("G00003\nNOT_A_GENE\n")
    cfg = compose_cfg([f"run_dir={run_dir}", f"genes={genes}"], name="predict")
    with pytest.raises(DataError, match=r"line 2: 'NOT_A_GENE'"):
        predict_run(cfg)
