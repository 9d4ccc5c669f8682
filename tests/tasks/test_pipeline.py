"""Configs, the end-to-end run, honest splits and prediction, on tiny synthetic data."""
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_DATA, TINY_MODEL
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from prediction_checks import assert_h5ad_matches

from tfnet_jax.cli import CONFIG_DIR as CONFIGS
from tfnet_jax.eval.metrics import METRIC_NAMES
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
    # The full signature panel for the model and every baseline; no replicates, no ceiling.
    for method in [saved["model"], *saved["baselines"].values()]:
        assert all(set(METRIC_NAMES) <= set(m) for m in method.values())
    assert "replicate_ceiling" not in saved
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


@pytest.fixture(scope="module")
def predicted(tiny_run, tmp_path_factory):
    """Every gene x type of the tiny run in parquet, GCTX and h5ad; every other gene (and so
    some readouts) has a symbol in the gene table."""
    from tfnet_jax.predict import predict_run
    run_dir, _ = tiny_run
    out = tmp_path_factory.mktemp("predicted")
    genes = [f"G{i:05d}" for i in range(0, TINY_DATA["num_genes"], 2)]
    pd.DataFrame({"EntrezID": genes, "Symbol": [f"SYM{g[1:]}" for g in genes]}).to_csv(
        out / "gene_meta.csv", index=False)
    cfg = compose_cfg([f"run_dir={run_dir}", "format=[parquet,gctx,h5ad]", f"output={out / 'p'}",
                       f"gene_table={out / 'gene_meta.csv'}", "chunk_size=128"], name="predict")
    parquet, gctx, h5ad = predict_run(cfg)
    return run_dir, pd.read_parquet(parquet), gctx, h5ad


def test_predict_writes_every_gene(tiny_run, predicted, tmp_path):
    from tfnet_jax.predict import predict_run
    run_dir, _ = tiny_run
    genes = tmp_path / "genes.txt"
    genes.write_text("G00003\n# a comment\nG00010\n")
    cfg = compose_cfg([f"run_dir={run_dir}", f"genes={genes}", "format=csv",
                       f"output={tmp_path / 'p'}", "chunk_size=1"], name="predict")
    [path] = predict_run(cfg)
    out = pd.read_csv(path)
    assert path == tmp_path / "p.csv" and out.shape == (2 * 3, 4 + TINY_DATA["num_readouts"])
    assert out["pert_gene"].tolist()[:2] == ["G00003", "G00010"]

    _, everything, gctx_path, _ = predicted  # every gene x type, in chunks of 128
    assert len(everything) == 3 * TINY_DATA["num_genes"]
    full = everything.query("pert_type == 'OE'")
    assert len(full) == TINY_DATA["num_genes"]
    # The test predictions written at training time are the same model's outputs.
    test_preds = pd.read_parquet(run_dir / "predictions_test.parquet").query("pert_type == 'OE'")
    merged = test_preds.merge(full, on=["pert_type", "pert_gene"], suffixes=("", "_all"))
    col = test_preds.columns[2]  # the first readout (predictions_test has no split column)
    np.testing.assert_allclose(merged[col], merged[col + "_all"], rtol=1e-4, atol=1e-5)

    # The GCTX holds the same numbers, readable by our reader and by plain h5py (CMap layout).
    import h5py

    from tfnet_jax.data.io.gctx import read_gctx
    gctx = read_gctx(gctx_path)
    readouts = everything.columns[4:]
    np.testing.assert_array_equal(gctx.row_ids, readouts)
    np.testing.assert_allclose(gctx.matrix.T, everything[readouts].to_numpy(), rtol=1e-6)
    with h5py.File(gctx_path, "r") as handle:
        on_disk = handle["/0/DATA/0/matrix"][...]  # signatures x genes
        col_ids = [x.decode() for x in handle["/0/META/COL/id"][...]]
    assert on_disk.shape == (len(everything), len(readouts))
    np.testing.assert_allclose(on_disk, everything[readouts].to_numpy(), rtol=1e-6)
    assert col_ids[0] == everything["pert_type"].iloc[0] + ":" + everything["pert_gene"].iloc[0]


def test_predict_rejects_unknown_genes(tiny_run, tmp_path):
    from tfnet_jax.errors import DataError
    from tfnet_jax.predict import predict_run
    run_dir, _ = tiny_run
    genes = tmp_path / "genes.txt"
    genes.write_text("G00003\nNOT_A_GENE\n")
    cfg = compose_cfg([f"run_dir={run_dir}", f"genes={genes}"], name="predict")
    with pytest.raises(DataError, match=r"line 2: 'NOT_A_GENE'"):
        predict_run(cfg)


def test_each_prediction_carries_its_gene_and_type_split(predicted):
    run_dir, frame, _, _ = predicted
    saved = pd.read_csv(run_dir / "splits.csv")
    role = dict(zip(zip(saved["pert_type"], saved["pert_gene"]), saved["split"]))
    want = [role.get(key, "unseen") for key in zip(frame["pert_type"], frame["pert_gene"])]
    assert frame["split"].tolist() == want
    assert list(frame.columns[:4]) == ["pert_type", "pert_gene", "pert_symbol", "split"]
    unseen = TINY_DATA["num_genes"] - TINY_DATA["perts_per_type"]  # genes without a signature
    for t, rows in frame.groupby("pert_type"):
        counts = rows["split"].value_counts()
        assert counts["unseen"] == unseen, t
        assert {"train", "valid", "test"} <= set(counts.index), t


def test_gene_splits_are_per_perturbation_type():
    """A gene held out in one type and trained on in another gets each type's own role."""
    from types import SimpleNamespace

    from tfnet_jax.tasks.transcriptionnet.family import gene_splits
    table = lambda index: SimpleNamespace(pert_index=np.array(index))  # noqa: E731
    data = SimpleNamespace(num_genes=5, signatures={"RNAi": table([0, 2, 3]), "OE": table([3, 4])})
    prepared = SimpleNamespace(data=data, splits={"RNAi": np.array(["train", "test", "valid"]),
                                                  "OE": np.array(["train", "test"])})
    assert gene_splits(prepared, "RNAi").tolist() == ["train", "unseen", "test", "valid", "unseen"]
    assert gene_splits(prepared, "OE").tolist() == ["unseen", "unseen", "unseen", "train", "test"]


def test_h5ad_predictions_round_trip(predicted):
    _, frame, _, h5ad = predicted
    adata = assert_h5ad_matches(h5ad, frame, ["pert_type", "pert_gene"])
    assert adata.obs["pert_symbol"].isna().sum() == (frame["pert_gene"].str[1:].astype(int) % 2).sum()
    symbols = [f"SYM{g[1:]}" if int(g[1:]) % 2 == 0 else None for g in adata.var_names]
    assert adata.var["symbol"].astype(object).where(adata.var["symbol"].notna(), None).tolist() == symbols


def test_gctx_predictions_use_cmap_codes(predicted):
    from tfnet_jax.data.io.gctx import read_gctx
    _, frame, gctx_path, _ = predicted
    gctx = read_gctx(gctx_path)
    codes = {"RNAi": "trt_sh", "CRISPR": "trt_xpr", "OE": "trt_oe"}
    assert gctx.col_meta["pert_type"].tolist() == frame["pert_type"].map(codes).tolist()
    # pert_iname: the symbol where the gene table has one, else the gene ID.
    assert gctx.col_meta["pert_iname"].tolist() == frame["pert_symbol"].fillna(frame["pert_gene"]).tolist()
    assert gctx.col_meta["split"].tolist() == frame["split"].tolist()
    assert gctx.col_ids.tolist() == (frame["pert_type"] + ":" + frame["pert_gene"]).tolist()
    np.testing.assert_array_equal(gctx.matrix.T, frame.iloc[:, 4:].to_numpy(np.float32))


CMAPPY_SCRIPT = """
import json, sys
import numpy as np
from cmapPy.pandasGEXpress.parse import parse
gct = parse(sys.argv[1])
np.save(sys.argv[2] + ".npy", gct.data_df.to_numpy())
meta = gct.col_metadata_df.astype(str)
json.dump({"rids": gct.data_df.index.astype(str).tolist(), "cids": gct.data_df.columns.tolist(),
           "col_meta": {c: meta[c].tolist() for c in meta.columns},
           "symbols": gct.row_metadata_df["pr_gene_symbol"].astype(str).tolist()},
          open(sys.argv[2] + ".json", "w"))
"""


def cmappy_python():
    """cmapPy's venv python (.ci/cmappy_venv.sh); skips only outside CI."""
    python = os.environ.get("TFNET_JAX_CMAPPY_PYTHON")
    if not python:
        if os.environ.get("CI"):
            pytest.fail("CI is set but TFNET_JAX_CMAPPY_PYTHON is not: .ci/run builds cmapPy's "
                        "venv with .ci/cmappy_venv.sh and exports it")
        pytest.skip("cmapPy check: set TFNET_JAX_CMAPPY_PYTHON (python=$(.ci/cmappy_venv.sh))")
    if not Path(python).is_file():
        pytest.fail(f"TFNET_JAX_CMAPPY_PYTHON={python}: no such file; run .ci/cmappy_venv.sh")
    return python


def test_cmappy_gate_skips_only_outside_ci(monkeypatch, tmp_path):
    monkeypatch.delenv("TFNET_JAX_CMAPPY_PYTHON", raising=False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        cmappy_python()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        cmappy_python()
    monkeypatch.setenv("TFNET_JAX_CMAPPY_PYTHON", str(tmp_path / "no_python"))
    with pytest.raises(pytest.fail.Exception, match="no such file"):
        cmappy_python()


@pytest.fixture(scope="module")  # module scope: set up before `predicted`, so a skip trains nothing
def cmappy():
    return cmappy_python()


def test_cmappy_reads_predicted_gctx(cmappy, predicted, tmp_path):
    import json
    import subprocess
    _, frame, gctx_path, _ = predicted
    done = subprocess.run([cmappy, "-c", CMAPPY_SCRIPT, str(gctx_path), str(tmp_path / "parsed")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    parsed = json.loads((tmp_path / "parsed.json").read_text())
    values = np.load(tmp_path / "parsed.npy")  # genes x signatures, as cmapPy's data_df
    readouts = frame.columns[4:].tolist()
    assert parsed["rids"] == readouts
    assert parsed["cids"] == (frame["pert_type"] + ":" + frame["pert_gene"]).tolist()
    np.testing.assert_array_equal(values, frame[readouts].to_numpy(np.float32).T)
    codes = {"RNAi": "trt_sh", "CRISPR": "trt_xpr", "OE": "trt_oe"}
    meta = parsed["col_meta"]
    assert meta["pert_type"] == frame["pert_type"].map(codes).tolist()
    assert meta["pert_iname"] == frame["pert_symbol"].fillna(frame["pert_gene"]).tolist()
    assert meta["split"] == frame["split"].tolist()
    # -666 (missing) reads back as NaN in cmapPy: readouts without a symbol.
    assert parsed["symbols"] == [f"SYM{g[1:]}" if int(g[1:]) % 2 == 0 else "nan" for g in readouts]
