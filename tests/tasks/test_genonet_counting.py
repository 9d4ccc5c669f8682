"""GenoNet's honest counting: ties within a stated tolerance, the network's share (network folds,
the starts-only arm), and the accuracy benchmark's run reuse under the same config only."""
import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT
from conftest import compose_genonet as _compose
from omegaconf import OmegaConf

from tfnet_jax.tasks.genonet.scores import (
    METHODS,
    NETWORK_FOLDS,
    WIN_TOLERANCE,
    evaluate,
    format_table,
    gene_table,
    network_reliance,
)

T_975_DF5 = 2.570582  # t quantile 0.975 on 5 degrees of freedom (tables)


def _hand_genes() -> pd.DataFrame:
    """Six heritable genes; GenoNet - elastic net = +0.1, +0.0005, -0.0009, -0.0011, -0.05, 0."""
    genonet = [0.30, 0.2005, 0.10, 0.50, 0.40, 0.25]
    elastic = [0.20, 0.20, 0.1009, 0.5011, 0.45, 0.25]
    genes = pd.DataFrame({"gene": list("abcdef"), "n_variants": 5, "heritable": True})
    for m in METHODS:
        genes[f"r2_{m}"] = elastic
        genes[f"r2sse_{m}"] = elastic
    genes["r2_genonet"] = genes["r2sse_genonet"] = genonet
    genes["r2_genonet_starts"] = genes["r2sse_genonet_starts"] = [0.30, 0.2, 0.1, 0.2, 0.1, 0.25]
    genes[NETWORK_FOLDS] = [0, 1, 2, 3, 3, 0]
    return genes


def test_wins_ties_losses_within_the_stated_tolerance_and_the_mean_difference_interval():
    assert WIN_TOLERANCE == 0.001
    metrics = evaluate(_hand_genes(), outer_folds=3)
    g = metrics["comparison"]["genonet_vs_elastic_net"]
    # +0.1 wins; +0.0005, -0.0009 and 0 are within 0.001: ties; -0.0011 and -0.05 lose.
    assert (g["frac_better"], g["frac_tied"], g["frac_worse"]) == pytest.approx((1 / 6, 3 / 6, 2 / 6))
    diffs = np.array([0.1, 0.0005, -0.0009, -0.0011, -0.05, 0.0])
    half = T_975_DF5 * diffs.std(ddof=1) / np.sqrt(6)
    assert g["n"] == 6 and g["mean_diff"] == pytest.approx(diffs.mean())
    assert g["mean_diff_ci_low"] == pytest.approx(diffs.mean() - half, rel=1e-5)
    assert g["mean_diff_ci_high"] == pytest.approx(diffs.mean() + half, rel=1e-5)
    # The network's own share: GenoNet vs its starts alone (+0, +0.0005, 0, +0.3, +0.3, 0).
    s = metrics["comparison"]["genonet_vs_genonet_starts"]
    assert (s["frac_better"], s["frac_tied"], s["frac_worse"]) == pytest.approx((2 / 6, 4 / 6, 0))
    assert metrics["comparison"]["win_tolerance"] == WIN_TOLERANCE
    assert "genonet_starts" in metrics["baselines"]
    table = format_table(metrics)
    assert "GenoNet vs elastic net" in table and " 1 / 3 / 2 " in table
    assert "GenoNet vs its starts alone" in table and " 2 / 4 / 0 " in table


def test_network_reliance_counts_majority_folds():
    # 3 folds: a majority is 2 or 3 network folds.
    got = network_reliance(np.array([0, 1, 2, 3, 3, 0]), 3)
    assert got == {"outer_folds": 3, "genes": 6, "genes_network_majority": 3,
                   "share_network_majority": 0.5, "genes_starts_only": 2, "mean_network_folds": 1.5}
    genes = _hand_genes()
    genes.loc[[0, 3], "heritable"] = False  # heritable: folds 1, 2, 3, 0
    network = evaluate(genes, outer_folds=3)["network"]
    assert network["all_genes"] == got
    assert network["heritable_genes"]["genes_network_majority"] == 2
    assert network["heritable_genes"]["genes_starts_only"] == 1
    assert "network" not in evaluate(genes.drop(columns=NETWORK_FOLDS), outer_folds=3)


def test_an_older_metrics_file_still_formats():
    """A metrics.json from before ties (no frac_tied, no CI, no starts arm) still prints."""
    metrics = evaluate(_hand_genes())
    for c in metrics["comparison"].values():
        if isinstance(c, dict):
            for key in ("frac_tied", "frac_worse", "mean_diff_ci_low", "mean_diff_ci_high"):
                c.pop(key)
    del metrics["comparison"]["win_tolerance"], metrics["comparison"]["genonet_vs_genonet_starts"]
    table = format_table(metrics)
    assert "ties within 0 R^2" in table and " 1 / - / - " in table


# ---------------------------------------------------------------- on the tiny run
def _restored(genonet_run):
    from tfnet_jax.tasks.genonet.family import GenoNetFamily
    cfg, run_dir, _ = genonet_run
    family = GenoNetFamily()
    data = family.load(cfg)
    prepared = family.prepare(cfg, data, family.split(cfg, data))
    return cfg, prepared, family.restore(cfg, prepared, run_dir), run_dir


def _per_unit(prepared, cache, name):
    from tfnet_jax.tasks.genonet.fit import genonet_unit
    first = 0
    for b, block in enumerate(prepared.blocks):
        for c in range(prepared.folds.max() + 1):
            yield b, first, len(block.genes), c, cache.get(genonet_unit(name, c, b))
        first += len(block.genes)


def test_tiny_run_counts_network_folds_and_scores_the_starts_arm(genonet_run):
    from tfnet_jax.models.elastic_net import cv_r2
    cfg, prepared, fitted, run_dir = _restored(genonet_run)
    models, folds = fitted.predictor, prepared.folds
    genes = pd.read_csv(run_dir / "genes.csv")
    network = np.zeros(len(prepared.genes), int)
    starts_kept = 0
    for _, first, n, c, unit in _per_unit(prepared, models.cache, "genonet"):
        network[first:first + n] += unit["kept_step"][:n] > 0
        held = folds == c
        np.testing.assert_array_equal(models.pred["genonet_starts"][first:first + n, held], unit["held_starts"].T)
        for j in np.flatnonzero(unit["kept_step"][:n] <= 0):
            # The start never beaten: GenoNet predicts exactly what its starts alone predict.
            starts_kept += 1
            np.testing.assert_allclose(unit["held"][:, j], unit["held_starts"][:, j], rtol=1e-4, atol=1e-4)
    assert starts_kept > 0
    np.testing.assert_array_equal(genes[NETWORK_FOLDS], network)
    r2, r2sse = cv_r2(prepared.truth, models.pred["genonet_starts"])
    np.testing.assert_allclose(genes["r2_genonet_starts"], r2, rtol=1e-9)
    np.testing.assert_allclose(genes["r2sse_genonet_starts"], r2sse, rtol=1e-9)
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["network"]["all_genes"]["genes_network_majority"] == int((network > 1).sum())  # 2 folds
    assert {"frac_tied", "mean_diff_ci_low"} <= set(saved["comparison"]["genonet_vs_genonet_starts"])


def test_network_held_at_its_start_gives_the_starts_arm_and_no_network_fold(genonet_run):
    """learning_rate 0: the network's output stays at zero, so no gene ever beats its start:
    every fold relies on the starts alone and GenoNet's held-out predictions are the arm's."""
    from tfnet_jax.schemas.typed import typed_config
    from tfnet_jax.tasks.genonet import enet_fits
    from tfnet_jax.tasks.genonet import fit as fitting
    from tfnet_jax.tasks.genonet.family import starts_and_network_folds
    cfg, prepared, fitted, _ = _restored(genonet_run)
    frozen = typed_config(OmegaConf.merge(cfg, {"train": {"learning_rate": 0.0}}))
    cache = enet_fits.FitCache(None)
    # The annotated GenoNet's start: the elastic net with annotation penalties (model.annotated_start).
    enet = fitted.predictor.cache.get("elastic_net_annot" if cfg.model.annotated_start else "elastic_net")
    pred, _, _ = fitting.fit_genonet(frozen, prepared, True, cache, enet, None)
    starts, network = starts_and_network_folds(prepared, cache, "genonet", with_starts=True)
    assert (network == 0).all()
    np.testing.assert_allclose(pred, starts, rtol=1e-4, atol=1e-4)
    # The same starts as the trained run's: the arm does not depend on the network.
    np.testing.assert_allclose(starts, fitted.predictor.pred["genonet_starts"], rtol=1e-5, atol=1e-5)


def test_units_from_before_the_starts_arm_give_nan_not_a_crash(genonet_run, caplog):
    from tfnet_jax.tasks.genonet import enet_fits
    from tfnet_jax.tasks.genonet import fit as fitting
    from tfnet_jax.tasks.genonet.family import starts_and_network_folds
    cfg, prepared, fitted, _ = _restored(genonet_run)
    old = enet_fits.FitCache(None)
    for b, _, _, c, unit in _per_unit(prepared, fitted.predictor.cache, "genonet"):
        old.units[fitting.genonet_unit("genonet", c, b)] = {k: v for k, v in unit.items()
                                                            if not (k == "held_starts" and c == 0)}
    starts, network = starts_and_network_folds(prepared, old, "genonet", with_starts=True)
    held0 = prepared.folds == 0
    assert np.isnan(starts[:, held0]).all() and np.isfinite(starts[:, ~held0]).all()
    assert "lack the starts-only predictions" in caplog.text
    np.testing.assert_array_equal(network, fitted.predictor.network_folds)
    # Scored as missing: NaN R^2, no pairs, and the tables still print.
    genes = gene_table(prepared, {**fitted.predictor.pred, "genonet_starts": starts}, network)
    assert genes["r2_genonet_starts"].isna().all() and genes["r2_genonet"].notna().all()
    metrics = evaluate(genes, outer_folds=2)
    assert metrics["comparison"]["genonet_vs_genonet_starts"]["n"] == 0
    assert "GenoNet vs its starts alone" not in format_table(metrics)


# ---------------------------------------------------------------- the benchmark reuses runs honestly
def _benchmark(name="genonet_accuracy"):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_folder_depends_on_its_arguments_and_reuses_only_the_same_config(tmp_path):
    from tfnet_jax.errors import RunDirError
    from tfnet_jax.tasks.identity import IDENTITY_FILE, Identity
    bench = _benchmark()
    names = {bench.run_dir_name(40, []), bench.run_dir_name(80, []),
             bench.run_dir_name(40, ["model.l1=0.1"]), bench.run_dir_name(40, ["train.max_steps=5"])}
    assert len(names) == 4
    out = tmp_path / bench.run_dir_name(40, [])
    overrides = [*bench.ARMS["additive"], "data.num_genes=40"]
    cfg = _compose([f"data.cache={out / 'additive_sim'}", *overrides])
    run_dir = out / "additive"
    run_dir.mkdir(parents=True)
    (run_dir / IDENTITY_FILE).write_text(json.dumps(Identity.of(cfg).record))
    (run_dir / "metrics.json").write_text(json.dumps({"finished": "same config"}))
    assert bench.run_arm("additive", overrides, out) == {"finished": "same config"}  # no training
    # The same folder under other arguments: refused, naming the field, never reused.
    with pytest.raises(RunDirError, match="data.num_genes"):
        bench.run_arm("additive", [*bench.ARMS["additive"], "data.num_genes=80"], out)


def test_real_l1000_benchmark_reuses_a_seed_only_under_the_same_config(tmp_path):
    from hydra import compose, initialize_config_dir

    from tfnet_jax.cli import CONFIG_DIR
    from tfnet_jax.errors import RunDirError
    from tfnet_jax.tasks.identity import IDENTITY_FILE, Identity
    bench = _benchmark("real_l1000")
    root = tmp_path / "l1000"  # never read: a finished run is recognised before any data loads
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["experiment=real_l1000", f"data.root={root}", "seed=0",
                                           "train.progress=false"])
    run_dir = tmp_path / "a" / "seed=0"
    run_dir.mkdir(parents=True)
    (run_dir / IDENTITY_FILE).write_text(json.dumps(Identity.of(cfg).record))
    (run_dir / "metrics.json").write_text(json.dumps({"finished": "same config"}))
    assert bench.run_seed(0, root, tmp_path / "a", []) == {"finished": "same config"}
    with pytest.raises(RunDirError, match="split.scenario"):  # another arm's config in this dir
        bench.run_seed(0, root, tmp_path / "a", ["split.scenario=other_type"])
