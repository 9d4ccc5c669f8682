"""Do public priors (GO and KEGG layers, GO-term node features) help TranscriptionNet on real L1000?

    python benchmarks/real_l1000_priors.py screen           # every arm, seeds 0-2, VALIDATION only
    python benchmarks/real_l1000_priors.py test --arms base go_features   # 5 seeds, TEST table

The priors are built once with `tfnet-networks` from ../shared/data/go (gene2go + go-basic.obo:
one Jaccard top-20 layer per GO aspect, GO-term membership features; KEGG: the pathway table as
a co-membership layer) into OUT/priors, and added to `experiment=real_l1000` by keys only
(`data.extra_networks`, `data.node_feature_files`), so the real subset's root is untouched.
`data.go_features` is set in every arm, so the go_ridge / go_forest baselines are in every table.

Screen: each arm x scenario ((a) unseen genes; (b) measured in another type) x seed 0-2 is one
ordinary run (`--scenarios a` screens one scenario, every arm, before the next); its score is the best validation pearson_delta (mean over types) of metrics.jsonl,
the quantity the trainer's checkpoint choice maximises. Test: the chosen arm and the current one
on seeds 0-4, both scenarios, with the multi-seed tables and paired tests of real_l1000.py.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from real_l1000 import fmt, paired_tests, run_seed, summary_table, tidy  # noqa: E402

SHARED = REPO.parent / "shared/data"
GAT = ["model.gat_layers=1"]
SCENARIOS = {"a": ("(a) unseen genes", []), "b": ("(b) measured in another type",
                                                   ["split.scenario=other_type"])}


def build_priors(out: Path) -> Path:
    """GO layers + GO features + the KEGG layer, built once (reused when present)."""
    from tfnet_jax.data.sources.build import build_networks
    root = out / "priors"
    if not (root / "networks" / "report.json").exists():
        go = SHARED / "go"
        build_networks(out=root, gene_info=go / "gene_info.gz", go=go / "gene2go.gz",
                       obo=go / "go-basic.obo.gz", go_features=True,
                       pathways=go / "kegg_pathways.tsv.gz")
    return root


def arms(priors: Path) -> dict[str, list[str]]:
    go_layers = ",".join(str(priors / "networks" / f"go_{a}.tsv.gz") for a in ("bp", "mf", "cc"))
    kegg = str(priors / "networks" / "pathways.tsv.gz")
    go_features = str(priors / "node_features_go.csv.gz")
    features = [f"data.node_feature_files=[node_features_512.csv.gz,{go_features}]"]
    every = [f"data.go_features={go_features}"]
    with_go = [f"data.extra_networks=[{go_layers}]"]
    with_kegg = [f"data.extra_networks=[{go_layers},{kegg}]"]
    # Without graph attention the model reads node features only, so the layers matter only
    # to the arms with attention (and to the neighbors / embedding_ridge baselines).
    table = {"base": [], "go_features": features,
             "gat": GAT, "gat_go": GAT + with_go, "gat_go_kegg": GAT + with_kegg,
             "gat_go_features": GAT + with_go + features,
             "gat_go_kegg_features": GAT + with_kegg + features}
    return {name: every + overrides for name, overrides in table.items()}


def best_validation(run_dir: Path) -> float:
    scores = [json.loads(line).get("valid/pearson_delta") for line in
              (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return max(s for s in scores if s is not None)


def screen(args, table: dict[str, list[str]]) -> None:
    rows = []
    for scenario in args.scenarios:
        extra = SCENARIOS[scenario][1]
        for arm in args.arms:
            for seed in args.seeds:
                out = args.out / "screen" / arm / scenario
                start = time.perf_counter()
                run_seed(seed, args.root, out, [*table[arm], *extra])
                rows.append({"arm": arm, "scenario": scenario, "seed": seed,
                             "valid_pearson_delta": best_validation(out / f"seed={seed}"),
                             "wall_s": time.perf_counter() - start})
                pd.DataFrame(rows).to_csv(args.out / f"screen_{'_'.join(args.scenarios)}.csv",
                                          index=False)
    frame = pd.DataFrame(rows)
    wide = frame.pivot_table(index="arm", columns=["scenario", "seed"], values="valid_pearson_delta")
    wide["mean"] = wide.mean(axis=1)
    print("\n=== Screen: best validation pearson_delta (mean over types), per scenario and seed\n")
    print(wide.sort_values("mean", ascending=False).to_string(float_format=lambda v: f"{v:.3f}"))
    print("\nWall s per run (mean, incl. runs skipped as done):",
          frame.groupby("arm")["wall_s"].mean().round(0).to_dict())


def test(args, table: dict[str, list[str]]) -> None:
    for arm in args.arms:
        for scenario in args.scenarios:
            title, extra = SCENARIOS[scenario]
            out = args.out / "test" / arm / scenario
            start = time.perf_counter()
            results = {seed: run_seed(seed, args.root, out, [*table[arm], *extra])
                       for seed in args.seeds}
            frame = tidy(results)
            frame.to_csv(out / "results.csv", index=False)
            print(f"\n=== arm {arm}, {title}: test, split seeds {args.seeds} "
                  f"({time.perf_counter() - start:.0f} s)\n")
            print(summary_table(frame[frame.metric.isin(["pearson_delta", "rank_score", "n"])]))
            print("\nModel vs best baseline (by mean pearson_delta), paired over seeds:\n")
            print(fmt(paired_tests(frame)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=("screen", "test"))
    parser.add_argument("--root", type=Path, default=SHARED / "l1000_genetic")
    parser.add_argument("--arms", nargs="+")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--out", type=Path, default=REPO / "outputs/bench_real_priors")
    args = parser.parse_args(argv)
    if not (args.root.exists() and (SHARED / "go").exists()):
        sys.exit(f"needs {args.root} and {SHARED / 'go'}")
    logging.basicConfig(level=logging.WARNING)
    table = arms(build_priors(args.out))
    args.arms = args.arms or (list(table) if args.stage == "screen" else ["base"])
    unknown = sorted(set(args.arms) - set(table))
    if unknown:
        sys.exit(f"unknown arms {unknown}; known: {list(table)}")
    args.seeds = args.seeds or ([0, 1, 2] if args.stage == "screen" else [0, 1, 2, 3, 4])
    (screen if args.stage == "screen" else test)(args, table)


if __name__ == "__main__":
    main()
