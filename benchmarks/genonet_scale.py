#!/usr/bin/env python
"""GenoNet at real cis-window sizes: wall time by stage and peak RSS of the README's run
(`model=genonet data.num_individuals=500 data.max_variants=2000 data.region_length=1000000`)
at --genes N, beside the same run of a peer checkout (--peer DIR, e.g. the main branch's
worktree: the old dosage representation and fit loop), each in its own process.

A script, not a test. The simulation is made once (not timed) and shared by both runs. Stages:
data (read + blocks), elastic_net, elastic_net_annot, genonet (annotated), genonet_noannot,
outputs (scores, genes.csv, TWAS exports); peak RSS per stage (VmHWM reset before each, where
the kernel allows) and overall. Run it niced on a shared machine:

    nice python benchmarks/genonet_scale.py --genes 256 --peer /work/main [--out DIR]

Extrapolating to the README's 1,000 genes: data, elastic nets and GenoNet grow with the number
of 128-gene blocks (2 here, 8 there), so those stages x 4; peak RSS = the windows (4x: every
gene's dosages are held) + the per-block working set (the same at any gene count).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

README_1000 = {"genes": 1000, "total_min": 88.0, "peak_rss_gb": 9.1,
               "note": "README, quiet machine, 2026-12-01: data 1.0, elastic net 14.1, + annotations 12.5, "
                       "GenoNet 80 units 59.4, scores and exports 0.9 min"}


def overrides(genes: int, out: Path) -> list[str]:
    return ["model=genonet", f"data.num_genes={genes}", "data.num_individuals=500",
            "data.max_variants=2000", "data.region_length=1000000", f"data.cache={out / f'sim{genes}'}"]


def compose(genes: int, out: Path):
    from hydra import compose as hydra_compose, initialize_config_dir
    from tfnet_jax.cli import CONFIG_DIR
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides(genes, out))


class Stages:
    """Wall seconds and peak RSS (GB) of named stages, by wrapping the functions that run them."""

    def __init__(self):
        from probes import peak_rss_gb, reset_peak_rss
        self.peak, self.reset = peak_rss_gb, reset_peak_rss
        self.seconds: dict[str, float] = {}
        self.rss: dict[str, float] = {}
        self.before = 0.0
        self.resets = True  # False: the kernel keeps VmHWM, so a stage's peak is the peak so far

    def wrap(self, owner, attr: str, stage) -> None:
        inner = getattr(owner, attr)

        def timed(*args, **kwargs):
            name = stage(*args, **kwargs) if callable(stage) else stage
            self.before = max(self.before, self.peak() or 0.0)
            self.resets = self.reset() and self.resets
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
                self.rss[name] = max(self.rss.get(name, 0.0), self.peak() or 0.0)
        setattr(owner, attr, timed)


def child(genes: int, out: Path, label: str) -> dict:
    """One timed run in this process (the tfnet_jax on sys.path: this tree or the peer's)."""
    from tfnet_jax.run import train_and_evaluate
    from tfnet_jax.tasks.genonet import family, fit

    stages = Stages()
    stages.wrap(family.GenoNetFamily, "load", "data")
    stages.wrap(family.GenoNetFamily, "prepare", "data")
    stages.wrap(fit, "cached_elastic_net", lambda cache, name, *a, **k: name)
    stages.wrap(fit, "fit_genonet", lambda cfg, prepared, annotations, *a, **k:
                "genonet" if annotations else "genonet_noannot")
    stages.wrap(family.GenoNetFamily, "score", "outputs")
    stages.wrap(family.GenoNetFamily, "write_outputs", "outputs")
    run_dir = out / f"run_{label}_{genes}"
    t0 = time.perf_counter()
    metrics = train_and_evaluate(compose(genes, out), run_dir)
    total = time.perf_counter() - t0
    peak = max([stages.before, stages.peak() or 0.0, *stages.rss.values()])
    comparison = metrics["comparison"]["genonet_vs_elastic_net"]
    return {"label": label, "genes": genes, "total_min": total / 60,
            "stages_min": {k: v / 60 for k, v in stages.seconds.items()},
            "stage_peak_rss_gb": stages.rss, "peak_rss_per_stage": stages.resets, "peak_rss_gb": peak,
            "run_dir": str(run_dir),
            "heritable_r2": {"genonet": metrics["model"]["heritable_genes"]["r2_mean"],
                             "elastic_net": metrics["baselines"]["elastic_net"]["heritable_genes"]["r2_mean"],
                             "genonet_better": comparison["frac_better"]}}


def spawn(tree: Path, genes: int, out: Path, label: str) -> dict:
    result = out / f"result_{label}_{genes}.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(ROOT / "benchmarks")])}
    subprocess.run([sys.executable, __file__, "--child", label, "--genes", str(genes), "--out", str(out),
                    "--tree", str(tree)], env=env, check=True)
    return json.loads(result.read_text())


def show(results: list[dict]) -> None:
    stages = sorted({s for r in results for s in r["stages_min"]})
    print(f"\n{'stage (min)':<22}" + "".join(f"{r['label']:>14}" for r in results))
    for s in stages:
        print(f"{s:<22}" + "".join(f"{r['stages_min'].get(s, 0.0):>14.2f}" for r in results))
    print(f"{'total (min)':<22}" + "".join(f"{r['total_min']:>14.2f}" for r in results))
    print(f"{'peak RSS (GB)':<22}" + "".join(f"{r['peak_rss_gb']:>14.2f}" for r in results))
    for s in stages:  # without VmHWM resets: the peak by the end of the stage
        print(f"{'  peak by ' + s:<22}" + "".join(f"{r['stage_peak_rss_gb'].get(s, 0.0):>14.2f}"
                                                  for r in results))
    print(f"{'heritable R2 genonet':<22}" + "".join(f"{r['heritable_r2']['genonet'] or 0:>14.4f}" for r in results))
    print(f"{'heritable R2 en':<22}" + "".join(f"{r['heritable_r2']['elastic_net'] or 0:>14.4f}" for r in results))
    print(f"{'genonet > en':<22}" + "".join(f"{r['heritable_r2']['genonet_better']:>14.1%}" for r in results))
    print(f"(README at 1,000 genes: {README_1000['total_min']} min, {README_1000['peak_rss_gb']} GB; "
          f"{README_1000['note']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genes", type=int, default=256)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "benchmarks" / "genonet_scale")
    parser.add_argument("--peer", type=Path, help="another checkout to run beside this one (e.g. main)")
    parser.add_argument("--only", choices=["this", "peer"], help="run one side only (the other's result "
                        "file is reused when present)")
    parser.add_argument("--show", action="store_true", help="print the finished runs' results only")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out = args.out.resolve()
    if args.child:
        sys.path[:0] = [str(args.tree), str(ROOT / "benchmarks")]
        from tfnet_jax import tune_host_memory
        tune_host_memory()
        result = child(args.genes, args.out, args.child)
        (args.out / f"result_{args.child}_{args.genes}.json").write_text(json.dumps(result, indent=1))
        return
    if args.show:
        show([json.loads((args.out / f"result_{label}_{args.genes}.json").read_text()) for label in ("peer", "this")
              if (args.out / f"result_{label}_{args.genes}.json").exists()])
        return
    args.out.mkdir(parents=True, exist_ok=True)
    sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
    from tfnet_jax.data.load import load_genotype_data
    load_genotype_data(compose(args.genes, args.out).data)  # the shared simulation, untimed
    results = []
    sides = [("peer", args.peer), ("this", ROOT)] if args.peer else [("this", ROOT)]
    for label, tree in sides:
        cached = args.out / f"result_{label}_{args.genes}.json"
        if args.only and args.only != label and cached.exists():
            results.append(json.loads(cached.read_text()))
        elif not args.only or args.only == label:
            results.append(spawn(tree.resolve(), args.genes, args.out, label))
    show(results)


if __name__ == "__main__":
    main()
