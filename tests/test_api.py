"""The Python API without Hydra: fit each family on tiny data, reload the run, predict new inputs;
and run identity: a re-run of another config into the same dir is refused, changing nothing."""
import dataclasses
import hashlib
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from prediction_checks import assert_h5ad_matches

import tfnet_jax
from tfnet_jax.errors import RunDirError

TINY_TN = {"data": {"num_genes": 300, "num_communities": 6, "num_readouts": 40, "perts_per_type": 60,
                    "latent_dim": 8, "hidden_dim": 8, "feature_dim_noise": 4},
           "model": {"hidden": 8, "gat_layers": 1, "heads": 2, "fusion_dim": 4, "head_hidden": 16,
                     "head_blocks": 1},
           "train": {"max_steps": 10, "batch_size": 16, "eval_batch_size": 32, "eval_every": 5,
                     "log_every": 5, "warmup_steps": 2, "progress": False}}
TINY_TF = {"overrides": ["experiment=smoke_tfnet"], "train": {"max_steps": 10, "eval_every": 5}}


def cli_predict(run_dir, *args):
    """`tfnet-predict run_dir=RUN ...` in a subprocess; returns the parquet it wrote (an .h5ad
    written beside it, with format=[parquet,h5ad], must hold the same)."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    done = subprocess.run([sys.executable, "-m", "tfnet_jax.predict", f"run_dir={run_dir}", *args],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    frame = pd.read_parquet(run_dir / "predictions.parquet")
    if (run_dir / "predictions.h5ad").exists():
        assert_h5ad_matches(run_dir / "predictions.h5ad", frame, frame.columns[:1].tolist())
    return frame


def tree_digest(path):
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def tfnet_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("api") / "tfnet"
    return tfnet_jax.fit("tfnet", run_dir=run_dir, **TINY_TF)


def test_version_is_the_installed_one():
    assert tfnet_jax.__version__ and tfnet_jax.__version__[0].isdigit()


@pytest.mark.e2e
def test_tfnet_fit_load_predict_new_samples(tfnet_run):
    metrics = tfnet_run.metrics
    assert set(metrics.columns) == {"method", "group", "metric", "value"}
    assert {"model", "ridge", "mean", "oracle"} <= set(metrics["method"])
    run = tfnet_jax.load_run(tfnet_run.run_dir)
    data = run.prepared.data
    # New samples: the test samples' levels, shuffled columns, under new ids.
    test = run.prepared.split == "test"
    frame = pd.DataFrame(data.values[test], columns=data.genes).iloc[:, ::-1]
    frame.index = [f"new{i}" for i in range(len(frame))]
    pred = run.predict(frame)
    assert list(pred.columns) == ["sample", "split", *data.target_genes.tolist()]
    assert pred["sample"].tolist() == frame.index.tolist()
    assert set(pred["split"]) == {"unseen"}  # new sample names
    default = run.predict()  # the run's test samples, same inputs: same predictions
    assert set(default["split"]) == {"test"}
    np.testing.assert_allclose(pred.iloc[:, 2:].to_numpy(), default.iloc[:, 2:].to_numpy(), rtol=1e-5)
    # Samples named like the run's own carry their split.
    own = run.predict(pd.DataFrame(data.values, index=data.samples, columns=data.genes))
    assert own["split"].tolist() == run.prepared.split.tolist()
    # A prediction that ignored the inputs would not track the held-out truth this well.
    truth = data.targets()[test]
    r = np.corrcoef(pred.iloc[:, 2:].to_numpy().ravel(), truth.ravel())[0, 1]
    assert r > 0.7
    with pytest.raises(tfnet_jax.errors.DataError, match="TFs are missing"):
        run.predict(frame.drop(columns=[data.tf_genes[0]]))
    matrix = tfnet_run.run_dir.parent / "new_samples.csv"
    frame.to_csv(matrix, index_label="sample")
    written = cli_predict(tfnet_run.run_dir, f"inputs={matrix}", "format=[parquet,h5ad]")
    np.testing.assert_allclose(written.iloc[:, 2:].to_numpy(), pred.iloc[:, 2:].to_numpy(), rtol=1e-4)


def test_keyword_dicts_become_overrides_also_for_free_keyed_dict_fields():
    from tfnet_jax.api import compose, config_overrides
    overrides = config_overrides("data", {"name": "anndata", "path": "a.h5ad", "networks": "nets",
                                          "type_map": {"KD": "RNAi", "ORF": "OE"}})
    assert overrides[0] == "data=anndata"
    config = compose(overrides + config_overrides("model", {"guard": {"enabled": False}}))
    assert dict(config.data.type_map) == {"KD": "RNAi", "ORF": "OE"}
    assert config.data.path == "a.h5ad" and config.model.guard.enabled is False
    with pytest.raises(Exception, match="model.guard.enabld: unknown key"):
        compose(config_overrides("model", {"guard": {"enabld": False}}))


@pytest.mark.e2e
def test_transcriptionnet_fit_load_predict_genes(tmp_path):
    run = tfnet_jax.fit("transcriptionnet", run_dir=tmp_path / "tn", **TINY_TN)
    assert {"model", "ridge", "mean"} <= set(run.metrics["method"])
    loaded = tfnet_jax.load_run(tmp_path / "tn")
    genes = loaded.prepared.data.genes[:5].tolist()
    pred = loaded.predict(genes, pert_types=["OE", "RNAi"])
    assert len(pred) == 10 and pred["pert_type"].tolist() == ["OE"] * 5 + ["RNAi"] * 5
    assert pred["pert_gene"].tolist()[:5] == genes
    assert pred.shape[1] == 4 + len(loaded.prepared.data.readout_genes)
    with pytest.raises(tfnet_jax.errors.DataError, match="not in the run's gene index"):
        loaded.predict(["no_such_gene"])
    written = cli_predict(tmp_path / "tn", "pert_types=[OE]")  # every gene of the graph
    assert len(written) == loaded.prepared.data.num_genes and set(written["pert_type"]) == {"OE"}


def test_in_memory_data_joins_the_identity(tmp_path, tfnet_run):
    import anndata

    from tfnet_jax.data.expression.readers import expression_data
    known = tfnet_run.prepared.data
    adata = anndata.AnnData(X=known.values, obs=pd.DataFrame(index=known.samples),
                            var=pd.DataFrame(index=known.genes))
    data = expression_data(adata, tfs=known.tf_genes, targets=known.target_genes)
    run = tfnet_jax.fit("tfnet", data=data, run_dir=tmp_path / "mem", **TINY_TF)
    assert run.config.data_fingerprint
    with pytest.raises(RunDirError, match="pass it again"):
        tfnet_jax.load_run(tmp_path / "mem").predict()
    assert len(tfnet_jax.load_run(tmp_path / "mem", data=data).predict()) > 0
    changed = dataclasses.replace(data, values=data.values * 1.01)
    with pytest.raises(RunDirError, match="data_fingerprint"):
        tfnet_jax.fit("tfnet", data=changed, run_dir=tmp_path / "mem", **TINY_TF)


@pytest.mark.e2e
def test_rerun_with_changed_config_is_refused_and_changes_nothing(tfnet_run):
    run_dir = tfnet_run.run_dir
    before = {name: tree_digest(run_dir / name) if (run_dir / name).is_dir()
              else hashlib.sha256((run_dir / name).read_bytes()).hexdigest()
              for name in ("metrics.json", "checkpoints", ".hydra", "identity.json")}
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    done = subprocess.run([sys.executable, "-m", "tfnet_jax.train", "model=tfnet", "experiment=smoke_tfnet",
                           "train.max_steps=10", "train.eval_every=5", "model.hidden=[16,16]",
                           f"hydra.run.dir={run_dir}"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0
    assert "model.hidden" in done.stderr and "Traceback" not in done.stderr
    after = {name: tree_digest(run_dir / name) if (run_dir / name).is_dir()
             else hashlib.sha256((run_dir / name).read_bytes()).hexdigest() for name in before}
    assert after == before
    # Fields that do not change results (progress, logging) leave the identity alone.
    again = tfnet_jax.fit("tfnet", run_dir=run_dir, overrides=[*TINY_TF["overrides"], "train.log_every=3"],
                          train=TINY_TF["train"])
    assert again.metrics_json == tfnet_run.metrics_json


@pytest.mark.e2e
def test_genonet_fit_load_predict_new_genotypes(tmp_path):
    run = tfnet_jax.fit("genonet", run_dir=tmp_path / "geno", overrides=["experiment=smoke_genonet"],
                        data={"cache": str(tmp_path / "sim")})
    metrics = run.metrics
    assert {"model", "elastic_net"} <= set(metrics["method"])
    assert {"heritable_genes", "all_genes"} <= set(metrics["group"])
    loaded = tfnet_jax.load_run(tmp_path / "geno")
    data = loaded.prepared.data
    # New genotypes: the cohort's dosages under new individual ids, columns shuffled.
    table = pd.DataFrame(np.concatenate([w.float_dosages() for w in data.windows], axis=1),
                         columns=np.concatenate([w.variant_ids for w in data.windows]))
    table = table.loc[:, ~table.columns.duplicated()].iloc[:, ::-1]
    table.index = [f"new{i}" for i in range(len(table))]
    for method in ("genonet", "elastic_net"):
        pred = loaded.predict(table, method=method)
        assert pred["individual"].tolist() == table.index.tolist()
        assert pred.shape == (len(table), 2 + len(loaded.prepared.genes))
        assert set(pred["split"]) == {"unseen"}  # new individuals; the cohort's own are train
        own = loaded.predict(None, method=method)
        assert set(own["split"]) == {"train"}
        np.testing.assert_allclose(pred.iloc[:, 2:].to_numpy(), own.iloc[:, 2:].to_numpy(), rtol=1e-5)
    with pytest.raises(tfnet_jax.errors.DataError, match="missing"):
        loaded.predict(table.iloc[:, 1:])
    written = cli_predict(tmp_path / "geno", "format=[parquet,h5ad]")  # the cohort's own genotypes
    np.testing.assert_allclose(written.iloc[:, 2:].to_numpy(),
                               loaded.predict(None).iloc[:, 2:].to_numpy(), rtol=1e-5)
    # TWAS stage 2 through the library function (the simulation's own trait): a table by |z|.
    from tfnet_jax.analysis.twas import associate
    twas = associate(tmp_path / "geno")
    assert (tmp_path / "geno" / "twas.csv").exists() and "is_trait_gene" in twas
    assert np.all(np.diff(np.abs(twas["z"].to_numpy())) <= 0)


def test_tfnet_analyses_through_library_functions(tfnet_run):
    """Light-up, core TFs and disease on a loaded run, as a notebook calls them: no Hydra."""
    from tfnet_jax.analysis.disease import run_disease
    from tfnet_jax.analysis.lightup import run_lightup
    from tfnet_jax.analysis.tf_selection import run_core_tfs
    run = tfnet_jax.load_run(tfnet_run.run_dir)
    summary = run_lightup(run, jacobian=False)
    assert summary["weight"]["auroc"] > 0.5 and (run.run_dir / "lightup.parquet").exists()
    sets = run_core_tfs(run, retrain_steps=10, min_tfs=3, drop_fraction=0.5)
    assert {"80%", "95%"} <= set(sets) and (run.run_dir / "core_tfs.csv").exists()
    disease = run_disease(run)
    assert -1 <= disease["spearman_rho"] <= 1 and (run.run_dir / "disease.json").exists()
    with pytest.raises(tfnet_jax.errors.ConfigError, match="mdoe: unknown option; did you mean mode"):
        run_lightup(run, mdoe="sd")


def test_failed_attempt_does_not_lock_the_run_dir(tmp_path):
    bad = ["data=expression", f"data.path={tmp_path / 'typo.csv'}",
           f"data.tf_list={tmp_path / 'tfs.txt'}"]
    with pytest.raises(tfnet_jax.errors.DataError):
        tfnet_jax.fit("tfnet", run_dir=tmp_path / "run", overrides=bad)
    # The corrected command (another config) may use the dir: nothing was trained there.
    run = tfnet_jax.fit("tfnet", run_dir=tmp_path / "run", **TINY_TF)
    assert (run.run_dir / "metrics.json").exists()
