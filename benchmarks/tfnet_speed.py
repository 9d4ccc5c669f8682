#!/usr/bin/env python
"""TFNet at the paper's scale, end to end: data, training, light-up, core TFs, beside a PyTorch peer.

A script, not a test: it prints figures and asserts nothing about time. One command runs
  1. data: the project's synthetic GRN (`make_grn`: --tfs TFs of which --masters planted
     masters, --targets targets, --samples samples, with the planted truth);
  2. training through the public path, `tfnet_jax.fit("tfnet", data=...)`: split, scalers,
     the ridge start of the linear path, --train-steps engine steps with validation and
     checkpoints, the baselines and the test tables, written to a run dir. Every engine
     step is timed (a wrapper around `Trainer.step` that waits for the step's result):
     compile = first step minus a typical one; steps/s from the median interval between
     consecutive step starts without an evaluation between them (batch assembly included);
  3. light-up of every TF (two-fold raise, as `tfnet-lightup`) and the Jacobian at the
     background, each timed on its first call (compile included);
  4. core-TF selection (`select_core_tfs`: one ranking, one nested fine-tune of
     --select-steps steps, every candidate set scored in one compiled pass);
  5. the PyTorch peer: the same network (2 x 250 ELU, frozen linear path) trained with
     AdamW on the same batches, steps/s (`pip install torch==2.13.0`; skip with --no-peer),
     timed in alternating rounds with the tfnet_jax engine's step on those batches (the
     trained run's compiled step, after every analysis is done), so that both sides see
     the same load from other jobs.
Peak RSS is the process's VmHWM (/proc/self/status), read before the peer is imported.
`--json PATH` writes every figure.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from probes import busy_cpu_s  # noqa: E402 (benchmarks/, the script's own directory)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tfs", type=int, default=1600)
    p.add_argument("--targets", type=int, default=25000)
    p.add_argument("--samples", type=int, default=5000)
    p.add_argument("--masters", type=int, default=None, help="planted master TFs (default tfs/20)")
    p.add_argument("--train-steps", type=int, default=300)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--chunk", type=int, default=256, help="TFs per light-up forward pass")
    p.add_argument("--select-steps", type=int, default=300, help="core-TF nested fine-tune steps")
    p.add_argument("--select-evals", type=int, default=2, help="validations during that fine-tune")
    p.add_argument("--drop-fraction", type=float, default=0.2)
    p.add_argument("--min-tfs", type=int, default=5)
    p.add_argument("--peer-steps", type=int, default=10, help="timed steps per side per round")
    p.add_argument("--peer-rounds", type=int, default=3)
    p.add_argument("--no-peer", action="store_true", help="skip the PyTorch peer")
    p.add_argument("--run-dir", type=Path, default=None, help="keep the run here (default: a temp dir)")
    p.add_argument("--json", type=Path, default=None, help="write the figures to this JSON file")
    return p.parse_args(argv)


def peak_rss_gb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2 ** 20
    return float("nan")


def own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


class MethodTimer:
    """Wall seconds spent in some methods (class attributes patched while installed)."""

    def __init__(self, *targets):
        self.targets, self.seconds, self._saved = targets, {}, []

    def __enter__(self):
        for cls, name in self.targets:
            original = getattr(cls, name)
            self._saved.append((cls, name, original))

            def timed(*a, _original=original, _name=name, **k):
                start = time.perf_counter()
                try:
                    return _original(*a, **k)
                finally:
                    self.seconds[_name] = self.seconds.get(_name, 0.0) + time.perf_counter() - start
            setattr(cls, name, timed)
        return self

    def __exit__(self, *exc):
        for cls, name, original in reversed(self._saved):
            setattr(cls, name, original)


class StepClock:
    """Times every `Trainer.step` call (waiting for its loss) while installed."""

    def __init__(self):
        self.records = []  # (step index, start, end)

    def __enter__(self):
        import jax

        from tfnet_jax.train.engine import Trainer
        self._original = original = Trainer.step
        records = self.records

        def step(trainer, batch, index):
            start = time.perf_counter()
            out = original(trainer, batch, index)
            jax.block_until_ready(out[0])
            records.append((int(index), start, time.perf_counter()))
            return out
        Trainer.step = step
        return self

    def __exit__(self, *exc):
        from tfnet_jax.train.engine import Trainer
        Trainer.step = self._original

    def summary(self, eval_every: int) -> dict:
        if len(self.records) < 3:
            return {}
        durations = [end - start for _, start, end in self.records]
        typical = statistics.median(durations[1:])
        intervals = [b[1] - a[1] for a, b in zip(self.records, self.records[1:])
                     if b[0] == a[0] + 1 and (a[0] + 1) % eval_every]
        per_step = statistics.median(intervals) if intervals else typical
        return {"steps": len(self.records), "compile_s": durations[0] - typical,
                "step_s": per_step, "steps_per_s": 1.0 / per_step,
                "in_steps_s": sum(durations)}


def main(argv=None):
    args = parse_args(argv)
    import tfnet_jax
    tfnet_jax.tune_host_memory()  # as the commands do, before jax starts its threads
    import jax

    from tfnet_jax.analysis import lightup as lu
    from tfnet_jax.analysis.tf_selection import select_core_tfs, smallest_sets
    from tfnet_jax.data.expression.synthetic import GRNConfig, make_grn
    from tfnet_jax.tasks.tfnet.family import TFNetFamily

    masters = args.masters or max(3, args.tfs // 20)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPU(s); "
          f"{args.tfs} TFs ({masters} planted masters) -> {args.targets} targets, {args.samples} samples")
    figures = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "masters": masters, "jax": jax.__version__, "cpus": os.cpu_count()}
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="tfnet_speed_")) / "run"
    stage = {}
    begin, busy0, own0 = time.perf_counter(), busy_cpu_s(), own_cpu_s()

    started = time.perf_counter()
    data = make_grn(GRNConfig(num_samples=args.samples, num_tfs=args.tfs, num_masters=masters,
                              num_targets=args.targets))
    stage["data_s"] = time.perf_counter() - started

    train = {"max_steps": args.train_steps, "batch_size": args.batch_size, "progress": False,
             "eval_every": args.eval_every, "log_every": min(25, args.eval_every)}
    started = time.perf_counter()
    parts = MethodTimer(*[(TFNetFamily, m) for m in ("prepare", "fit", "score", "write_outputs")])
    with StepClock() as clock, parts:
        run = tfnet_jax.fit("tfnet", data=data, run_dir=run_dir, train=train)
    stage["train_pipeline_s"] = time.perf_counter() - started
    steps = clock.summary(args.eval_every)
    figures["pipeline_parts_s"] = parts.seconds
    prepared, trainer = run.prepared, run.trainer
    n_train = int((prepared.split == "train").sum())
    steps["epoch_s"] = math.ceil(n_train / args.batch_size) * steps["step_s"]
    figures["train"] = steps
    metrics = run.metrics_json
    figures["test"] = {"model": metrics["model"]["targets"]["variance_explained"],
                       "ridge": metrics["baselines"]["ridge"]["targets"]["variance_explained"],
                       "oracle": metrics["oracle"]["targets"]["variance_explained"]}

    model = trainer.model
    deltas = lu.perturbation_sizes(prepared.x_sd, "double")
    started = time.perf_counter()
    scores = lu.lightup_matrix(model, deltas, prepared.y_sd, chunk=args.chunk)
    stage["lightup_s"] = time.perf_counter() - started
    started = time.perf_counter()
    lu.jacobian_matrix(model, deltas, prepared.y_sd)
    stage["jacobian_s"] = time.perf_counter() - started
    figures["lightup_auroc"] = planted_auroc(scores, data)
    del scores

    started = time.perf_counter()
    with StepClock() as select_clock:
        table = select_core_tfs(trainer, prepared, steps=args.select_steps, evals=args.select_evals,
                                drop_fraction=args.drop_fraction, min_tfs=args.min_tfs)
    stage["select_s"] = time.perf_counter() - started
    stage["total_s"] = time.perf_counter() - begin
    busy = busy_cpu_s()
    figures["other_procs_cores"] = (None if busy is None else  # contention from other jobs
                                    (busy - busy0 - (own_cpu_s() - own0)) / stage["total_s"])
    sets = smallest_sets(table)
    core = set(data.extras["core_tfs"])
    figures["select"] = {
        "sets": len(table),
        "fine_tune": select_clock.summary(max(1, args.select_steps // max(1, args.select_evals))),
        "compiles": table.attrs.get("compiles"),
        "curve": table[["n_tfs", "valid_variance_explained", "test_variance_explained"]].to_dict("list"),
        **{share: {"n_tfs": s["n_tfs"], "test_share_of_full": s["test_share_of_full"],
                   "planted_recall": len(core & set(s["tfs"])) / len(core)} for share, s in sets.items()}}
    figures["stages"] = stage
    figures["peak_rss_gb"] = peak_rss_gb()
    if not args.no_peer:
        rows = prepared.rows("train")
        batches = [trainer.train_batch(rows, s) for s in range(args.peer_steps + 3)]
        figures["peer"] = side_by_side(args, trainer, batches, run.config)
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if args.run_dir is None:
        shutil.rmtree(run_dir.parent, ignore_errors=True)


def planted_auroc(scores, data) -> float:
    """AUROC of |light-up| for the planted TF -> target edges among all TF x target pairs."""
    import numpy as np
    edges = data.extras["edges"]
    edges = edges[edges["kind"] == "tf->target"]
    tf_pos = {g: i for i, g in enumerate(data.tf_genes)}
    target_pos = {g: i for i, g in enumerate(data.target_genes)}
    positive = np.zeros(scores.shape, bool)
    positive[edges["tf"].map(tf_pos).to_numpy(), edges["target"].map(target_pos).to_numpy()] = True
    ranks = np.empty(scores.size, np.float64)
    ranks[np.argsort(np.abs(scores).ravel(), kind="stable")] = np.arange(1, scores.size + 1)
    n_pos = int(positive.sum())
    n_neg = scores.size - n_pos
    return float((ranks[positive.ravel()].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def side_by_side(args, trainer, batches, cfg) -> dict:
    """steps/s of the tfnet_jax engine and of the PyTorch peer on the same batches, in
    alternating rounds (median over rounds of each side)."""
    import jax
    torch_step = torch_peer(args, cfg)
    if torch_step is None:
        return {}
    import torch

    def jax_step(batch, index):
        jax.block_until_ready(trainer.step(batch, 10 ** 6 + index)[0])
    for i, batch in enumerate(batches[:3]):  # warm-up (the engine's step is already compiled)
        jax_step(batch, i)
        torch_step(batch)
    rates = {"tfnet_jax": [], "peer": []}
    for _ in range(args.peer_rounds):
        for side, step in (("tfnet_jax", jax_step), ("peer", lambda b, i: torch_step(b))):
            start = time.perf_counter()
            for i, batch in enumerate(batches[3:]):
                step(batch, i)
            rates[side].append((len(batches) - 3) / (time.perf_counter() - start))
    return {"torch": torch.__version__, "rounds": rates,
            **{f"{side}_steps_per_s": statistics.median(r) for side, r in rates.items()}}


def torch_peer(args, cfg):
    """A step function for the same network (hidden layers, ELU, dropout, frozen linear
    path), MSE, AdamW and gradient clipping, on the engine's padded batches."""
    try:
        import torch
    except ImportError:
        print("(PyTorch not installed: pip install torch==2.13.0 for the peer column)")
        return None
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    sizes = [args.tfs, *cfg.model.hidden]
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ELU(), torch.nn.Dropout(cfg.model.dropout)]
    mlp = torch.nn.Sequential(*layers, torch.nn.Linear(sizes[-1], args.targets))
    skip = torch.randn(args.tfs, args.targets) * 0.01 if cfg.model.linear_skip else None  # frozen
    opt = torch.optim.AdamW(mlp.parameters(), lr=cfg.train.learning_rate,
                            weight_decay=cfg.train.weight_decay)

    def step(batch):
        batch = {k: torch.from_numpy(v) for k, v in batch.items()}
        opt.zero_grad(set_to_none=True)
        pred = mlp(batch["x"]) if skip is None else mlp(batch["x"]) + batch["x"] @ skip
        per_row = ((pred - batch["target"]) ** 2).mean(dim=1)
        loss = (per_row * batch["mask"]).sum() / batch["mask"].sum().clamp(min=1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(mlp.parameters(), 1.0)  # the engine clips too
        opt.step()
        return loss
    return step


def report(f: dict) -> None:
    s, t, p = f["stages"], f["train"], f.get("pipeline_parts_s", {})
    ft = f["select"].get("fine_tune") or {}
    peer = f.get("peer") or {}
    rows = [
        ("data: synthetic GRN (make_grn)", f"{s['data_s']:.1f} s", ""),
        ("training: tfnet_jax.fit, whole pipeline", f"{s['train_pipeline_s']:.1f} s",
         f"{t['steps']} steps, evals, checkpoints, baselines, test tables"),
        ("  split + scalers", f"{p.get('prepare', 0):.1f} s", "fitted on training samples"),
        ("  engine fit", f"{p.get('fit', 0):.1f} s",
         f"ridge start, steps ({t['in_steps_s']:.0f} s), evals, checkpoints"),
        ("  test scoring + baselines", f"{p.get('score', 0):.1f} s", "model, mean, ridge, pcr, oracle"),
        ("  outputs", f"{p.get('write_outputs', 0):.1f} s", "splits, per-gene R^2, test predictions"),
        ("  train-step compile", f"{t['compile_s']:.1f} s", "first step minus a typical one"),
        ("  training speed", f"{t['steps_per_s']:.2f} steps/s", f"batch {f['config']['batch_size']}"),
        ("  one epoch", f"{t['epoch_s']:.1f} s", "training samples / batch x step time"),
        ("light-up, all TFs", f"{s['lightup_s']:.1f} s",
         f"first call incl. compile; AUROC vs planted edges {f['lightup_auroc']:.3f}"),
        ("Jacobian at background", f"{s['jacobian_s']:.1f} s", "first call incl. compile"),
        ("core-TF selection", f"{s['select_s']:.1f} s",
         f"{f['select']['sets']} sets, one nested fine-tune of {f['config']['select_steps']} steps"),
        ("  fine-tune steps", f"{ft.get('in_steps_s', 0):.1f} s",
         f"{ft.get('steps_per_s', float('nan')):.2f} steps/s; the rest: ranking + scoring every set"),
        ("total (data to core TFs)", f"{s['total_s']:.1f} s", f"{s['total_s'] / 60:.1f} min"),
        ("peak RSS", f"{f['peak_rss_gb']:.2f} GB", "VmHWM, before the peer"),
    ]
    if f.get("other_procs_cores") is not None:
        rows.append(("other processes' CPU", f"{f['other_procs_cores']:.2f} cores",
                     "mean over the run: contention from other jobs, not speed"))
    if peer:
        rows.append(("training speed, same batches: tfnet_jax",
                     f"{peer['tfnet_jax_steps_per_s']:.2f} steps/s",
                     f"median of {len(peer['rounds']['peer'])} rounds alternating with the peer"))
        rows.append(("training speed, same batches: PyTorch", f"{peer['peer_steps_per_s']:.2f} steps/s",
                     f"torch {peer['torch']}; tfnet_jax / peer "
                     f"{peer['tfnet_jax_steps_per_s'] / peer['peer_steps_per_s']:.2f}x"))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'stage':<{width}}  {'figure':>14}  note")
    for what, figure, note in rows:
        print(f"{what:<{width}}  {figure:>14}  {note}")
    test = f["test"]
    print(f"\ntest variance explained: model {test['model']:.3f}, ridge {test['ridge']:.3f}, "
          f"oracle {test['oracle']:.3f}")
    for share in ("80%", "95%"):
        c = f["select"][share]
        print(f"smallest set keeping {share} of validation variance explained: {c['n_tfs']} TFs, "
              f"test share {c['test_share_of_full']:.3f}, planted masters recalled {c['planted_recall']:.2f}")


if __name__ == "__main__":
    main()
