#!/usr/bin/env python
"""GenoNet vs elastic net on simulated cis-eQTL data: a non-additive and an additive simulation.

A script, not a test. Each arm is one `model=genonet` run (held-out R^2 under nested CV, the
same outer folds for every method); the tables are the runs' own metrics.json, printed side
by side with the acceptance figures of issue 6. Runs are resumable (their fits/ caches).

    python benchmarks/genonet_accuracy.py [--genes 40] [--out outputs/benchmarks/genonet] [extra overrides]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as `python benchmarks/genonet_accuracy.py` without installing

ARMS = {"nonadditive": ["data.mode=nonadditive"], "additive": ["data.mode=additive"]}


def run_arm(name: str, overrides: list[str], out: Path) -> dict:
    from hydra import compose, initialize_config_dir
    from tfnet_jax.cli import CONFIG_DIR
    from tfnet_jax.run import train_and_evaluate

    run_dir = out / name
    metrics_file = run_dir / "metrics.json"
    if metrics_file.exists():
        return json.loads(metrics_file.read_text())
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["model=genonet", f"data.cache={out / (name + '_sim')}",
                                                       *overrides])
    return train_and_evaluate(cfg, run_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genes", type=int, default=40)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "benchmarks" / "genonet")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every arm")
    args = parser.parse_args()
    from tfnet_jax.tasks.genonet.scores import format_table

    results = {}
    for name in args.arms:
        results[name] = run_arm(name, [*ARMS[name], f"data.num_genes={args.genes}", *args.overrides], args.out)
        print(f"\n=== {name} simulation ({args.genes} genes) ===")
        print(format_table(results[name]))
    if "nonadditive" in results:
        c = results["nonadditive"]["comparison"]
        g, ga, ea = c["genonet_vs_elastic_net"], c["annotation_gain_genonet"], c["annotation_gain_elastic_net"]
        print("\nAcceptance (non-additive): GenoNet beats elastic net on "
              f"{g['frac_better']:.1%} of heritable genes (target >= 60%, Wilcoxon p {g['wilcoxon_p']:.3g}); "
              f"annotation gain GenoNet {ga['mean_diff']:+.4f} (p {ga['wilcoxon_p']:.3g}) vs elastic net "
              f"{ea['mean_diff']:+.4f} (p {ea['wilcoxon_p']:.3g})")
    if "additive" in results:
        m = results["additive"]
        diff = m["model"]["all_genes"]["r2_mean"] - m["baselines"]["elastic_net"]["all_genes"]["r2_mean"]
        print(f"Acceptance (additive): mean R^2 GenoNet - elastic net = {diff:+.4f} (target |diff| <= 0.01)")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
