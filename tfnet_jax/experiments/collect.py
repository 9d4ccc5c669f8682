"""Aggregate a Hydra multirun into one tidy table, statistics and a Markdown report.

    python -m tfnet_jax.experiments.collect SWEEP_DIR [--reference ARM] [--metric pearson_delta]

Reads every `SWEEP_DIR/*/metrics.json` with its `.hydra/config.yaml` and `.hydra/overrides.yaml`
and writes, in SWEEP_DIR: `results.parquet` / `results.csv` (one row per run x perturbation
type x method x metric), `summary.csv` (mean and 95% t interval over seeds), `paired.csv`
(each arm vs the reference arm, paired by seed), `methods_paired.csv` (each baseline vs the
model in the reference arm), `report.md` and `figures/*.png`. Paired tables give raw p-values
(`t_p`, `wilcoxon_p`) and, beside each, its Benjamini-Hochberg adjustment over all the tests of
that column in that file (`t_p_bh`, `wilcoxon_p_bh`).
Runs without metrics.json (unfinished) are listed in the report, never silently dropped.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd
import yaml

from tfnet_jax.train import metrics_log
from tfnet_jax.atomic import atomic_write_text, atomic_write_with
from tfnet_jax.cli import Command, plain_command
from tfnet_jax.errors import ConfigError, DataError
from tfnet_jax.eval import plots, stats
from tfnet_jax.eval.metrics import CEILING_KEY

log = logging.getLogger(__name__)

# Overrides that name the run, not the arm: the seed is the replicate; the rest are constant.
NOT_ARM = {"seed", "experiment"}
# Arm values that mean "nothing ablated": preferred as the default reference arm.
REFERENCE_VALUES = ("all", "base", "null", "default")
# Table columns an override key (e.g. ablate_components' `arm`) must not overwrite.
RESERVED = {"run", "arm", "seed", "layers", "pert_type", "method", "role", "metric", "value"}


def read_overrides(run_dir: Path) -> dict[str, str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    items = yaml.safe_load(path.read_text()) if path.exists() else []
    return dict(item.split("=", 1) for item in items or [])


def arm_name(overrides: dict[str, str], varying=None) -> str:
    """A readable arm name from the overrides in `varying` (default: all but seed/hydra.*):
    the value alone for one key, else `key=value` pairs."""
    keys = [k for k in overrides if (k in varying if varying is not None else
                                     k not in NOT_ARM and not k.startswith("hydra."))]
    if not keys:
        return "default"
    if len(keys) == 1:
        return _short(overrides[keys[0]])
    return ",".join(f"{k.rsplit('.', 1)[-1]}={_short(overrides[k])}" for k in keys)


def _short(value: str) -> str:
    """Sampled floats (Optuna) to 3 significant digits; anything else unchanged."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() else f"{number:.3g}"


def varying_keys(all_overrides: list[dict[str, str]]) -> set[str]:
    """Override keys that differ between runs (seed aside): the arms' axes. Constant overrides
    (e.g. smaller data for the whole sweep) stay columns but do not name arms."""
    keys = {k for o in all_overrides for k in o if k not in NOT_ARM and not k.startswith("hydra.")}
    return {k for k in keys if len({o.get(k) for o in all_overrides}) > 1}


def load_runs(sweep_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[Path]]:
    """(tidy results, fusion weights, unfinished run dirs) of every run under `sweep_dir`."""
    rows, weights, missing, arms = [], [], [], {}
    for run_dir in sorted((p.parent.parent for p in sweep_dir.glob("*/.hydra/config.yaml")),
                          key=_run_order):
        metrics_file = run_dir / "metrics.json"
        if not metrics_file.exists():
            missing.append(run_dir)
            continue
        metrics = json.loads(metrics_file.read_text())
        config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
        overrides = read_overrides(run_dir)
        base = {"run": run_dir.name, "seed": int(config["seed"]),
                **{(f"override.{k}" if k in RESERVED else k): v for k, v in overrides.items()
                   if k not in NOT_ARM and not k.startswith("hydra.")},
                "layers": ",".join(metrics.get("layers") or [])}
        label = metrics.get("method", "model")  # a plug-in network carries its own name
        methods = {label: ("model", metrics["model"]),
                   **{name: ("baseline", t) for name, t in metrics.get("baselines", {}).items()}}
        if "oracle" in metrics:
            methods["oracle"] = ("oracle", metrics["oracle"])
        if CEILING_KEY in metrics:  # a reference: shown, never tested against the model
            methods[CEILING_KEY] = ("ceiling", metrics[CEILING_KEY])
        for method, (role, per_type) in methods.items():
            for pert_type, values in per_type.items():
                rows += [{**base, "pert_type": pert_type, "method": method, "role": role,
                          "metric": metric, "value": float(v)}
                         for metric, v in values.items() if metric != "n"]
        best = metrics.get("train", {}).get("best_score")
        if best is not None:  # what sweepers optimise: best validation score, all types
            rows.append({**base, "pert_type": "all", "method": label, "role": "model", "metric": "valid_best",
                         "value": float(best)})
        weights += [{"run": run_dir.name, "seed": base["seed"], "layer": k, "weight": v}
                    for k, v in (metrics.get("fusion_weights") or {}).items()]
        arms[run_dir.name] = overrides
    varying = varying_keys(list(arms.values()))
    names = {run: arm_name(o, varying) for run, o in arms.items()}
    table, weights = pd.DataFrame(rows), pd.DataFrame(weights)
    for frame in (table, weights):
        if not frame.empty:
            frame.insert(1, "arm", frame["run"].map(names))
    return table, weights, missing


def model_labels(table: pd.DataFrame) -> list[str]:
    """The method names the trained models carry (`model`, or a plug-in network's name)."""
    return list(dict.fromkeys(table.loc[table["role"] == "model", "method"]))


def _run_order(path: Path):
    """Hydra job number first (`<num>_...` subdirs), so arms keep the sweep's order."""
    name = path.name
    head = name.split("_", 1)[0]
    return (int(head) if head.isdigit() else 1 << 30, name)


def pick_reference(arms: list[str], requested: str | None) -> str:
    if requested is not None:
        if requested not in arms:
            raise SystemExit(f"error: --reference {requested!r} is not an arm; arms: {arms}")
        return requested
    return next((a for a in arms if a in REFERENCE_VALUES), arms[0])


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub Markdown table (no tabulate dependency)."""
    def cell(v):
        return f"{v:.{digits}g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
             "| " + " | ".join("---" for _ in frame.columns) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _interval_table(summary: pd.DataFrame, factor: str) -> pd.DataFrame:
    """`factor` rows x type columns of 'mean [low, high]'."""
    text = summary.assign(cell=[f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in
                                summary[["mean", "ci_low", "ci_high"]].itertuples(index=False)])
    wide = text.pivot_table(index=factor, columns="pert_type", values="cell", aggfunc="first",
                            sort=False)
    wide.columns.name = None
    return wide.reset_index()


def _valid_ranking(summary: pd.DataFrame) -> pd.DataFrame:
    """Arms by mean best validation score, best first (a sweep's ranking; no test data)."""
    valid = summary[summary["metric"] == "valid_best"]
    return valid[["arm", "n", "mean", "ci_low", "ci_high"]].sort_values("mean", ascending=False)


def write_figures(sweep_dir: Path, table, summary, methods_summary, weights, reference, metric):
    """All report figures; returns (caption, relative path) pairs."""
    out = sweep_dir / "figures"
    model = summary[summary["method"].isin(model_labels(table))]
    figures = [("Model by arm", plots.bars_with_ci(model, "arm", out / "arms.png",
                                                   f"model, {metric} by arm", metric)),
               (f"Methods ({reference} arm)", plots.bars_with_ci(
                   methods_summary, "method", out / "methods.png", f"methods, {metric}", metric))]
    first = table[(table["arm"] == reference)]["run"].iloc[0]
    run_dir = sweep_dir / first
    if (run_dir / "predictions_test.parquet").exists() and (run_dir / "truth_test.parquet").exists():
        figures.append((f"Predicted vs observed, run {first}", plots.predicted_vs_true(
            pd.read_parquet(run_dir / "predictions_test.parquet"),
            pd.read_parquet(run_dir / "truth_test.parquet"), out / "pred_vs_true.png")))
    curves = {}
    for arm, group in table.groupby("arm", sort=False):  # the first seed's run of each arm
        records = metrics_log.read(sweep_dir / group["run"].iloc[0] / metrics_log.FILE_NAME)
        if records:
            curves[arm] = pd.DataFrame.from_records(records)
    if curves:
        figures.append(("Learning curves (first seed per arm)",
                        plots.learning_curves(curves, out / "learning_curves.png")))
    if not weights.empty:
        figures.append(("Fusion attention per layer",
                        plots.fusion_weights(weights, out / "fusion_weights.png")))
    return [(caption, path.relative_to(sweep_dir)) for caption, path in figures]


def report_metric(table: pd.DataFrame, requested: str | None) -> str:
    """The metric the report compares: `requested`, else pearson_delta where the runs report it
    (TranscriptionNet), else the models' first metric (TFNet r2_median, GenoNet r2_mean)."""
    scored = table[(table["role"] == "model") & (table["metric"] != "valid_best")]
    available = list(dict.fromkeys(scored["metric"]))
    if requested is None:
        return "pearson_delta" if "pearson_delta" in available else available[0]
    if requested not in available:
        raise DataError(f"--metric {requested}: the runs report {', '.join(available)}")
    return requested


def multiple_testing_note(paired: pd.DataFrame, vs_model: pd.DataFrame) -> str:
    """What the report's raw and adjusted p-value columns are, and each adjustment's family."""
    def family(frame, column):
        return int(frame[column].notna().sum()) if column in frame else 0
    return ("`t_p`, `wilcoxon_p`: raw two-sided p-values. `t_p_bh`, `wilcoxon_p_bh`: "
            "Benjamini-Hochberg adjusted, each over every test of its column in its file, all "
            "types and metrics (not only the rows shown): paired.csv "
            f"{family(paired, 't_p')} t-tests / {family(paired, 'wilcoxon_p')} Wilcoxon tests, "
            f"methods_paired.csv {family(vs_model, 't_p')} / {family(vs_model, 'wilcoxon_p')}.")


def collect(sweep_dir: str | Path, reference: str | None = None, metric: str | None = None) -> dict:
    sweep_dir = Path(sweep_dir)
    table, weights, missing = load_runs(sweep_dir)
    if table.empty:
        raise DataError(f"{sweep_dir}: no finished runs (no */metrics.json)")
    atomic_write_with(sweep_dir / "results.parquet", lambda tmp: table.to_parquet(tmp, index=False))
    atomic_write_with(sweep_dir / "results.csv", lambda tmp: table.to_csv(tmp, index=False))

    metric = report_metric(table, metric)
    arms = list(dict.fromkeys(table["arm"]))
    reference = pick_reference(arms, reference)
    summary = stats.summarise(table)
    # Arms compare the model of each arm (built-in or plug-in: role "model") under one name.
    paired = stats.with_bh(stats.paired_against(
        table[table["role"] == "model"].assign(method="model"), "arm", reference))
    in_reference = table[table["arm"] == reference]
    reference_model = in_reference.loc[in_reference["role"] == "model", "method"].iloc[0]
    vs_model = stats.with_bh(stats.paired_against(
        in_reference[in_reference["role"] != "ceiling"], "method", reference_model))
    for name, frame in (("summary", summary), ("paired", paired), ("methods_paired", vs_model)):
        atomic_write_with(sweep_dir / f"{name}.csv", lambda tmp, f=frame: f.to_csv(tmp, index=False))

    chosen = summary[summary["metric"] == metric]
    model = chosen[chosen["method"].isin(model_labels(table))]
    methods = chosen[chosen["arm"] == reference]
    figures = write_figures(sweep_dir, table, summary, methods, weights, reference, metric)
    seeds = sorted(int(s) for s in table["seed"].unique())
    lines = [f"# Experiment report: {sweep_dir.name}", "",
             (f"{table['run'].nunique()} finished runs, {len(arms)} arms x seeds {seeds}; "
              f"reference arm `{reference}`. Intervals: mean and 95% t interval over seeds. "
              f"Paired tests by seed: t-test (n >= 2), Wilcoxon signed-rank "
              f"(n >= {stats.WILCOXON_MIN_PAIRS})."), "",
             multiple_testing_note(paired, vs_model), ""]
    if missing:
        lines += [f"**Unfinished runs (no metrics.json):** {', '.join(p.name for p in missing)}", ""]
    legend = table.drop_duplicates("arm")[["arm"] + [c for c in table.columns if c not in (
        "run", "arm", "seed", "pert_type", "method", "role", "metric", "value")]]
    lines += ["## Arms", "", markdown_table(legend), ""]
    lines += [f"## Model: test {metric} by arm", "", markdown_table(_interval_table(model, "arm")),
              "", f"## Each arm vs `{reference}` (model, {metric})", "",
              markdown_table(paired[paired["metric"] == metric].drop(columns=["metric", "method"])), "",
              f"## Methods in arm `{reference}`: test {metric}", "",
              markdown_table(_interval_table(methods, "method")), "",
              f"## Each baseline vs the model (arm `{reference}`, {metric})", "",
              markdown_table(vs_model[vs_model["metric"] == metric].drop(columns=["metric", "arm"])),
              "", "## Best validation score by arm (what sweepers maximise)", "",
              markdown_table(_valid_ranking(summary)), "", "## Figures", ""]
    lines += [f"### {caption}\n\n![{caption}]({path.as_posix()})\n" for caption, path in figures]
    atomic_write_text(sweep_dir / "report.md", "\n".join(lines))
    return {"table": table, "summary": summary, "paired": paired, "methods_paired": vs_model,
            "reference": reference, "missing": missing, "metric": metric}


COLLECT = Command(
    name="tfnet-collect",
    usage="SWEEP_DIR [--reference ARM] [--metric METRIC]",
    summary=("Aggregate a Hydra multirun: read every SWEEP_DIR/*/metrics.json with its config "
             "and overrides, and write results.parquet/.csv (tidy), summary.csv (mean and 95% "
             "interval over seeds), paired.csv (each arm vs the reference arm, paired by seed; "
             "raw p-values t_p/wilcoxon_p and Benjamini-Hochberg adjusted t_p_bh/wilcoxon_p_bh "
             "over all tests of the file), report.md and figures/ into SWEEP_DIR. "
             "--reference names the arm the others are "
             "tested against (default: all/base/null/default, else the first)."),
    example="tfnet-collect outputs/experiments/ablate_networks --reference all",
)


class OneLineParser(argparse.ArgumentParser):
    """argparse's usage errors as the one-line ConfigError of every command (not usage + error)."""

    def error(self, message):
        raise ConfigError(f"arguments: {message}; see {self.prog} --help")


@plain_command(COLLECT)
def main(argv: list[str]) -> None:
    parser = OneLineParser(prog=COLLECT.name, description=COLLECT.summary)
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--reference", default=None)
    parser.add_argument("--metric", default=None,
                        help="default: pearson_delta where reported, else the models' first metric")
    args = parser.parse_args(argv)
    result = collect(args.sweep_dir, args.reference, args.metric)
    model = result["summary"]
    model = model[model["method"].isin(model_labels(result["table"])) & (model["metric"] == result["metric"])]
    log.info("%s", markdown_table(_interval_table(model, "arm")))
    log.info("wrote %s and results.parquet/.csv", args.sweep_dir / "report.md")


if __name__ == "__main__":
    main()
