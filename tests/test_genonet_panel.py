"""benchmarks/genonet_panel.py --quick: the architecture panel end to end (slow: a few minutes)."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

PANEL = Path(__file__).resolve().parents[1] / "benchmarks" / "genonet_panel.py"


def _panel():
    spec = importlib.util.spec_from_file_location("genonet_panel", PANEL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_counts_ties_and_interval():
    panel = _panel()
    a = np.array([0.10, 0.20, 0.30, 0.40, np.nan])
    b = np.array([0.10, 0.15, 0.3005, 0.45, 0.2])
    row = panel.compare(a, b)
    assert row["n"] == 4 and row["frac_better"] == 0.25 and row["frac_tied"] == 0.5 and row["frac_worse"] == 0.25
    assert row["mean_diff_ci_low"] < row["mean_diff"] < row["mean_diff_ci_high"]
    assert row["mean_diff"] == pytest.approx(np.mean([0.0, 0.05, -0.0005, -0.05]))


@pytest.mark.slow
def test_quick_panel(tmp_path):
    panel = _panel()
    report = panel.main(["--quick", "--split", "validation", "--out", str(tmp_path), "--json",
                         str(tmp_path / "panel.json")])
    assert json.loads((tmp_path / "panel.json").read_text())["split"] == "validation"
    rows = report["results"]["n400_rec1e-8"]
    assert set(rows) <= set(panel.ARCHITECTURES) and len(rows) >= 9
    for name, row in rows.items():
        methods = row["r2"]
        assert {"genonet", "genonet_noannot", "genonet_choice", "elastic_net", "elastic_net_annot",
                "ceiling"} <= set(methods)
        assert all(np.isfinite(v) for k, v in methods.items() if k != "genonet_starts")
        assert 0 < methods["ceiling"] <= 1
        if panel.ARCHITECTURES[name][1].get("mode") == "additive":
            assert row["nonadditive_share"] < 1e-6
    assert rows["dosage_product"]["nonadditive_share"] > 0.2
    # The data set is reused (same folder), the finished run too: a second call refits nothing.
    written = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.npz")}
    again = panel.main(["--quick", "--split", "validation", "--out", str(tmp_path)])
    assert again["results"] == report["results"]
    assert written and {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.npz")} == written
