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


@pytest.fixture(scope="session")
def tiny_data():
    from tfnet_jax.data.synthetic import SyntheticConfig, make_synthetic
    return make_synthetic(SyntheticConfig(**TINY_DATA))


@pytest.fixture(scope="session")
def tiny_prepared(tiny_data):
    from tfnet_jax.data.splits import assign_splits
    from tfnet_jax.tasks.perturbation import prepare
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
