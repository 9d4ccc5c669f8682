"""TranscriptionNet against every baseline on the real L1000 subset, over seeded splits.

    python benchmarks/real_l1000.py                       # 5 seeds, experiment=real_l1000
    python benchmarks/real_l1000.py --seeds 0 1 2 3 4 5 6 7 --out outputs/bench_real
    python benchmarks/real_l1000.py --override model.refine.enabled=true

Each seed is one ordinary run (`tfnet_jax.run.train_and_evaluate`) in OUT/seed=S, so its
split, checkpoints and metrics.json are kept, and a re-run skips finished seeds. For each
perturbation type the table gives mean +- sd over seeds of pearson_delta,
retrieval_top10 and pearson for the model and every baseline, with a paired t-test and
a Wilcoxon signed-rank test of the model against the best baseline (highest mean
pearson_delta on that type). Needs ../shared/data/l1000_genetic.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tfnet_jax.cli import CONFIG_DIR  # noqa: E402
from tfnet_jax.run import train_and_evaluate  # noqa: E402

METRICS = ("pearson_delta", "retrieval_top10", "pearson")


def run_seed(seed: int, root: Path, out: Path, overrides: list[str]) -> dict:
    run_dir = out / f"seed={seed}"
    done = run_dir / "metrics.json"
    if done.exists():
        return json.loads(done.read_text())
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["experiment=real_l1000", f"data.root={root}",
                                           f"seed={seed}", "train.progress=false", *overrides])
    return train_and_evaluate(cfg, run_dir)


def tidy(results: dict[int, dict]) -> pd.DataFrame:
    rows = []
    for seed, metrics in results.items():
        methods = {"model": metrics["model"], **metrics["baselines"]}
        for method, per_type in methods.items():
            for pert_type, values in per_type.items():
                rows += [{"seed": seed, "method": method, "pert_type": pert_type, "metric": m,
                          "value": values[m]} for m in (*METRICS, "n")]
    return pd.DataFrame(rows)


def paired_tests(frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    delta = frame[frame.metric == "pearson_delta"]
    for pert_type, group in delta.groupby("pert_type"):
        means = group[group.method != "model"].groupby("method")["value"].mean()
        best = means.idxmax()
        for metric in METRICS:
            sub = frame[(frame.metric == metric) & (frame.pert_type == pert_type)]
            wide = sub.pivot(index="seed", columns="method", values="value")
            diff = wide["model"] - wide[best]
            t_p = stats.ttest_rel(wide["model"], wide[best]).pvalue if len(diff) > 1 else np.nan
            w_p = (stats.wilcoxon(diff).pvalue if len(diff) > 1 and np.any(diff != 0) else np.nan)
            rows.append({"pert_type": pert_type, "metric": metric, "best_baseline": best,
                         "model_minus_best": diff.mean(), "wins": int((diff > 0).sum()),
                         "seeds": len(diff), "paired_t_p": t_p, "wilcoxon_p": w_p})
    return pd.DataFrame(rows)


def summary_table(frame: pd.DataFrame) -> str:
    stats_ = (frame[frame.metric.isin(METRICS)].groupby(["pert_type", "method", "metric"])["value"]
              .agg(["mean", "std"]).reset_index())
    stats_["cell"] = stats_.apply(lambda r: f"{r['mean']:.3f} ± {r['std']:.3f}", axis=1)
    wide = stats_.pivot(index=["pert_type", "method"], columns="metric", values="cell")[list(METRICS)]
    chance = (10 / frame[(frame.metric == "n") & (frame.method == "model")]
              .groupby("pert_type")["value"].mean().clip(lower=10))
    lines = [wide.to_string(), "", "retrieval_top10 chance (10 / n_test): "
             + ", ".join(f"{t} {c:.3f}" for t, c in chance.items())]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=REPO.parent / "shared/data/l1000_genetic")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=REPO / "outputs/bench_real_l1000")
    parser.add_argument("--override", action="append", default=[],
                        help="extra Hydra override, e.g. model.refine.enabled=true (repeatable)")
    args = parser.parse_args(argv)
    if not args.root.exists():
        sys.exit(f"real data not found at {args.root}; pass --root")
    logging.basicConfig(level=logging.WARNING)
    results = {seed: run_seed(seed, args.root, args.out / "_".join(args.override or ["default"]),
                              args.override) for seed in args.seeds}
    frame = tidy(results)
    tests = paired_tests(frame)
    out = args.out / "_".join(args.override or ["default"])
    frame.to_csv(out / "results.csv", index=False)
    tests.to_csv(out / "paired_tests.csv", index=False)
    print(f"\nReal L1000 subset, {len(args.seeds)} split seeds (mean ± sd over seeds)\n")
    print(summary_table(frame))
    print("\nModel vs best baseline (by mean pearson_delta), paired over seeds:\n")
    print(tests.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
