"""Test genes marked in splits.csv never touch training, validation or a fitted scaler."""
import json

import numpy as np
import pandas as pd
import pytest

from tfnet_jax.data.perturbation.datadir import load_data_dir
from tfnet_jax.data.splits import assign_splits
from tfnet_jax.run import train_and_evaluate
from tfnet_jax.tasks.transcriptionnet import prepare as task


def write_data_dir(root, data, test_genes, poison=None):
    """Writes `data` as a data directory; test genes' signatures are replaced by `poison`."""
    (root / "networks").mkdir(parents=True)
    (root / "signatures").mkdir()
    for layer in data.layers:
        pd.DataFrame({"gene_a": data.genes[layer.senders], "gene_b": data.genes[layer.receivers],
                      "weight": layer.weights}).to_csv(root / "networks" / f"{layer.name}.tsv",
                                                        sep="\t", index=False)
    rows = []
    for t, table in data.signatures.items():
        values = table.values.copy()
        is_test = np.isin(table.pert_genes, test_genes)
        if poison is not None:
            values[is_test] = poison
        frame = pd.DataFrame(values, columns=data.readout_genes)
        frame.insert(0, "pert_gene", table.pert_genes)
        frame.to_csv(root / "signatures" / f"{t}.csv", index=False)
        rows += [(t, g, "test") for g in table.pert_genes[is_test]]
    features = pd.DataFrame(data.node_features)
    features.insert(0, "gene", data.genes)
    features.to_csv(root / "node_features.csv", index=False)
    pd.DataFrame(rows, columns=["pert_type", "pert_gene", "split"]).to_csv(root / "splits.csv",
                                                                         index=False)


@pytest.fixture(scope="module")
def two_dirs(tmp_path_factory, tiny_data):
    test_genes = tiny_data.genes[tiny_data.signatures["RNAi"].pert_index[:20]]
    clean, poisoned = tmp_path_factory.mktemp("clean"), tmp_path_factory.mktemp("poisoned")
    write_data_dir(clean, tiny_data, test_genes)
    write_data_dir(poisoned, tiny_data, test_genes, poison=1e3)
    return clean, poisoned, test_genes


def test_test_genes_touch_no_fitted_statistic(two_dirs):
    clean, poisoned, test_genes = two_dirs
    prepared = []
    for root in (clean, poisoned):
        data = load_data_dir(root)
        prepared.append(task.prepare(data, assign_splits(data, seed=0)))
    a, b = prepared
    for t in a.types:
        test_rows = np.isin(a.data.signatures[t].pert_genes, test_genes)
        assert np.all(a.splits[t][test_rows] == "test") and np.all(a.splits[t] == b.splits[t])
    for name in ("target_mean", "target_sd", "features", "observed", "observed_mask"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for split in ("train", "valid"):
        for key, value in a.rows(split).items():
            np.testing.assert_array_equal(value, b.rows(split)[key], err_msg=f"{split}/{key}")


def test_training_ignores_test_values_and_reports_on_them(two_dirs, tmp_path):
    from test_pipeline import compose_cfg, tiny_overrides
    clean, poisoned, test_genes = two_dirs
    overrides = [o for o in tiny_overrides(max_steps=30, eval_every=10) if not o.startswith("data.")]
    results = []
    for root in (clean, poisoned):
        cfg = compose_cfg(overrides + ["data=dir", f"data.root={root}", "model.on_target=true",
                                       "model.refine.enabled=true"])
        run_dir = tmp_path / root.name
        train_and_evaluate(cfg, run_dir)
        results.append(run_dir)
    logs = [[json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
            for d in results]
    assert logs[0] == logs[1]  # every training loss and validation score identical
    metrics = [json.loads((d / "metrics.json").read_text()) for d in results]
    for t in ("RNAi", "CRISPR", "OE"):
        n_test = sum(1 for g in test_genes if g in set(
            pd.read_csv(clean / "signatures" / f"{t}.csv", usecols=[0])["pert_gene"]))
        assert metrics[0]["model"][t]["n"] == n_test
    # Same predictions, different truths: the poisoned test set scores differently.
    assert metrics[0]["model"]["RNAi"]["mse"] != metrics[1]["model"]["RNAi"]["mse"]
    splits = pd.read_csv(results[0] / "splits.csv", dtype=str)
    assert set(splits.query("split == 'test'")["pert_gene"]) == set(test_genes)
