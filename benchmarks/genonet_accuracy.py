#!/usr/bin/env python
"""GenoNet vs elastic net on simulated cis-eQTL data: a non-additive and an additive simulation.

A script, not a test. Each arm is one `model=genonet` run (held-out R^2 under nested CV, the
same outer folds for every method); the tables are the runs' own metrics.json, printed side
by side with the acceptance figures of issue 6. Runs are resumable (their fits/ caches).

The runs go in OUT/<name of the arguments>/<arm> (`run_dir_name`: --genes and a digest of
the extra overrides), so other arguments never land in the same folder; a finished run is reused only
when its recorded config (RUN/identity.json, `tasks/identity.py`) is this one, and a run dir
holding another config's run is refused (one line naming the differing fields).

    python benchmarks/genonet_accuracy.py [--genes 40] [--out outputs/benchmarks/genonet] [extra overrides]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as `python benchmarks/genonet_accuracy.py` without installing

ARMS = {"nonadditive": ["data.mode=nonadditive"], "additive": ["data.mode=additive"]}


def run_dir_name(genes: int, overrides: list[str]) -> str:
    """The folder of one set of arguments: genes<N>, plus a digest of the extra overrides (no
    '=' or ',' in it: the folder goes into a Hydra override, data.cache)."""
    if not overrides:
        return f"genes{genes}"
    return f"genes{genes}_" + hashlib.sha256(json.dumps(list(overrides)).encode()).hexdigest()[:10]


def run_arm(name: str, overrides: list[str], out: Path) -> dict:
    """The arm's metrics: train_and_evaluate reuses a finished run only under the same config
    (its identity check), resumes an unfinished one, and refuses another config's run dir."""
    from hydra import compose, initialize_config_dir
    from tfnet_jax.cli import CONFIG_DIR
    from tfnet_jax.run import train_and_evaluate

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["model=genonet", f"data.cache={out / (name + '_sim')}",
                                                       *overrides])
    return train_and_evaluate(cfg, out / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genes", type=int, default=40)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "benchmarks" / "genonet")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every arm")
    args = parser.parse_args()
    from tfnet_jax.errors import RunDirError
    from tfnet_jax.tasks.genonet.scores import format_table

    from tfnet_jax.atomic import atomic_write_json
    out = args.out / run_dir_name(args.genes, args.overrides)
    atomic_write_json(out / "arguments.json", {"genes": args.genes, "overrides": args.overrides})  # what the digest stands for
    results = {}
    for name in args.arms:
        try:
            results[name] = run_arm(name, [*ARMS[name], f"data.num_genes={args.genes}", *args.overrides], out)
        except RunDirError as err:
            sys.exit(str(err))
        print(f"\n=== {name} simulation ({args.genes} genes) ===")
        print(format_table(results[name]))
    if "nonadditive" in results:
        c = results["nonadditive"]["comparison"]
        g, ga, ea = c["genonet_vs_elastic_net"], c["annotation_gain_genonet"], c["annotation_gain_elastic_net"]
        ties = f", ties within {c['win_tolerance']:g} R^2: {g['frac_tied']:.1%}" if "frac_tied" in g else ""
        print("\nAcceptance (non-additive): GenoNet beats elastic net on "
              f"{g['frac_better']:.1%} of heritable genes{ties} (target >= 60%, Wilcoxon p {g['wilcoxon_p']:.3g}); "
              f"annotation gain GenoNet {ga['mean_diff']:+.4f} (p {ga['wilcoxon_p']:.3g}) vs elastic net "
              f"{ea['mean_diff']:+.4f} (p {ea['wilcoxon_p']:.3g})")
    if "additive" in results:
        m = results["additive"]
        diff = m["model"]["all_genes"]["r2_mean"] - m["baselines"]["elastic_net"]["all_genes"]["r2_mean"]
        print(f"Acceptance (additive): mean R^2 GenoNet - elastic net = {diff:+.4f} (target |diff| <= 0.01)")
    atomic_write_json(out / "summary.json", results)
    print(f"\nruns and summary.json in {out}")


if __name__ == "__main__":
    main()
