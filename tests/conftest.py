"""Test set-up: four fake CPU devices (before jax is imported) and shared fixtures."""
import os

_flag = "--xla_force_host_platform_device_count=4"
if _flag not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Tiny sizes keep every jit compile cheap.
TINY_DATA = dict(num_genes=300, num_communities=6, num_readouts=40, perts_per_type=120,
                 latent_dim=8, hidden_dim=8, feature_dim_noise=4)
TINY_MODEL = dict(node_input="auto", hidden=16, gat_layers=1, heads=2, fusion="attention",
                  fusion_dim=4, head_hidden=32, head_blocks=1, dropout=0.0)


def tiny_model(**overrides):
    """TINY_MODEL (plus `overrides`) as the typed model config build_model takes."""
    from tfnet_jax.schemas.models import TranscriptionNetConfig
    return TranscriptionNetConfig(**{**TINY_MODEL, **overrides})


@pytest.fixture
def compiles():
    """XLA compilations by function name during the test (jax_log_compiles' records)."""
    from tfnet_jax.train.compiles import CompileCounter
    counter = CompileCounter().start()
    yield counter
    counter.stop()


@pytest.fixture(scope="session")
def tiny_data():
    from tfnet_jax.data.perturbation.synthetic import SyntheticConfig, make_synthetic
    return make_synthetic(SyntheticConfig(**TINY_DATA))


@pytest.fixture(scope="session")
def tiny_prepared(tiny_data):
    from tfnet_jax.data.splits import assign_splits
    from tfnet_jax.tasks.transcriptionnet.prepare import prepare
    return prepare(tiny_data, assign_splits(tiny_data, seed=0))


@pytest.fixture
def l1000_root():
    root = SHARED_DATA / "l1000_genetic"
    if not root.exists():
        pytest.skip(f"shared real data not found at {root}")
    return root


def execute_notebook(name: str, out_env: str, out_dir, monkeypatch, timeout: int = 300) -> list:
    """Run notebooks/NAME top to bottom on one CPU device, writing into `out_dir` (via the
    `out_env` variable the notebook reads); returns its PNG outputs."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv(out_env, str(out_dir))
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    notebook = nbformat.read(REPO_ROOT / "notebooks" / name, as_version=4)
    nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO_ROOT / "notebooks")}}).execute()
    return [out for cell in notebook.cells for out in cell.get("outputs", [])
            if "image/png" in out.get("data", {})]


# ---------------------------------------------------------------- one tiny GenoNet run per session
# (test_genonet and test_twas_export share it: training it is the slow part)
GENONET_TINY_RUN = ["split.folds=2", "model.elastic_net.inner_folds=2", "model.elastic_net.n_lambdas=4",
                    # block=8 >= 5 genes: one elastic-net compile (compiles, not steps, dominate here)
                    "model.elastic_net.block=8", "model.elastic_net.max_iter=10",
                    "model.channels=2", "model.hidden=4", "model.kernel=3",
                    "train.max_steps=10", "train.eval_every=5", "train.log_every=5", "train.patience=1",
                    "train.batch_size=16", "train.eval_batch_size=64", "train.warmup_steps=2"]


def compose_genonet(overrides):
    from hydra import compose, initialize_config_dir

    from tfnet_jax.cli import CONFIG_DIR
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=["model=genonet", *overrides])


@pytest.fixture(scope="session")
def genonet_files(tmp_path_factory):
    """A tiny simulation, plus a gene whose window holds no variant."""
    import numpy as np
    import pandas as pd

    from tfnet_jax.data.genotype.synthetic import GenoSimConfig, simulate_genotypes
    root = tmp_path_factory.mktemp("genosim")
    cfg = GenoSimConfig(num_genes=5, num_individuals=64, max_variants=24, region_length=60_000)
    sim = simulate_genotypes(cfg, root)
    genes = pd.read_csv(sim["genes"], dtype={"chrom": str})
    genes.loc[len(genes)] = ["lonely", "1", 400_000_000, 400_001_000]
    genes.to_csv(sim["genes"], index=False)
    expr = pd.read_csv(sim["expression"], index_col=0)
    expr["lonely"] = np.random.default_rng(0).normal(size=len(expr))
    expr.to_csv(sim["expression"])
    return sim


@pytest.fixture(scope="session")
def genonet_run(genonet_files, tmp_path_factory):
    """(cfg, run dir, metrics) of a finished tiny GenoNet run on `genonet_files`."""
    from tfnet_jax.run import train_and_evaluate
    files = genonet_files
    cfg = compose_genonet(["data=genotypes", f"data.bed={files['bed']}",
                           f"data.expression={files['expression']}", f"data.genes={files['genes']}",
                           f"data.annotations={files['annotations']}", "data.window=100000",
                           "model.genes_per_block=3",  # 5 genes: 2 blocks, one padded
                           "model.screen_variants=16",  # the network screens the widest windows
                           *GENONET_TINY_RUN, "model.elastic_net.n_lambdas=8", "model.elastic_net.max_iter=30"])
    run_dir = tmp_path_factory.mktemp("genonet_run")
    return cfg, run_dir, train_and_evaluate(cfg, run_dir)
