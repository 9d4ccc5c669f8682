#!/usr/bin/env python
"""TranscriptionNet at genome scale on one machine, side by side with a PyTorch Geometric peer.

A script, not a test: it prints figures and asserts nothing about time. See
benchmarks/README.md (`genome_scale.py`).

Data: the project's synthetic generator at --num-genes (default 27,000) genes with --layers
(7) network layers of about --degree (13) edges per gene each (>= 1,000,000 undirected edges
in all at the defaults) and enough perturbations for about --train-rows (5,000) training
rows over RNAi / CRISPR / OE after the default split.

Each side runs in its own subprocess, so each has its own peak RSS:
- tfnet_jax: composed config -> TranscriptionNetFamily split / prepare / make_trainer ->
  Trainer.step (batch --batch-size, then full batch) -> fam.predict of every gene x 3 types;
- peer: PyTorch Geometric, the same architecture (GATConv stacks with the same ELU /
  residual / LayerNorm wrapping, semantic attention fusion, FunDNN heads, MSE + Pearson
  loss, AdamW) on the same graph (same symmetric, self-looped, receiver-normalised edges)
  and the very same batches (written to disk by the tfnet_jax side);
- per device count k of --devices: XLA's compiled cost analysis (flops and bytes per device)
  of the graph encoder and of the whole train step, with k forced host devices, and the
  loss of the first batch at each k.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from genome_scale_common import (
    ROOT,
    compose_cfg,
    data_overrides,
    median,
    peer_edges,
    synthetic_config,
    write_json,
)
from genome_scale_peer import peer_side
from probes import OtherCPU, peak_rss_gb


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-genes", type=int, default=27000)
    p.add_argument("--layers", type=int, default=7, help="network layers l0..l<n-1>")
    p.add_argument("--degree", type=float, default=13.0,
                   help="mean edges per present gene in each layer (generator's layer_degree)")
    p.add_argument("--coverage", type=float, default=0.9, help="share of genes present in each layer")
    p.add_argument("--train-rows", type=int, default=5000,
                   help="about this many training perturbations over the 3 types after the split")
    p.add_argument("--perts-per-type", type=int, default=None,
                   help="perturbations per type (default: from --train-rows and the split fractions)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=10, help="timed steps (each timed alone; median)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps after the first")
    p.add_argument("--full-steps", type=int, default=3, help="timed full-batch steps (median)")
    p.add_argument("--no-peer", action="store_true", help="skip the PyTorch Geometric peer")
    p.add_argument("--no-full-batch", action="store_true", help="skip the full-batch steps")
    p.add_argument("--no-epoch", action="store_true", help="skip the one-epoch run")
    p.add_argument("--cost-only", action="store_true",
                   help="only the per-device cost (no training, no peer)")
    p.add_argument("--devices", type=int, nargs="*", default=[1, 2, 4],
                   help="forced host device counts for the per-device cost (none: skip)")
    p.add_argument("--cost-genes", type=int, default=0,
                   help="genes of the per-device cost data (0: --num-genes, the same data)")
    p.add_argument("--torch-threads", type=int, default=2)
    p.add_argument("--peer-gat", choices=("logw", "plain"), default="logw",
                   help="logw: GATConv + log edge weight added to the attention logits, as tfnet_jax; "
                        "plain: unmodified GATConv (edge weights unused)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write every figure here")
    p.add_argument("--keep-work", action="store_true", help="keep the temporary work directory")
    # Internal: the subprocesses this script starts.
    p.add_argument("--role", choices=("main", "jax", "peer", "cost"), default="main", help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--cost-k", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ---------------------------------------------------------------- tfnet_jax side
def jax_side(args):
    """Trains and predicts through the project's own path; writes jax.json, peer_inputs.npz and
    the batches it trained on (batches/b<size>_<step>.npz) for the peer."""
    work, out = args.work, {}
    result_path = work / "jax.json"
    import jax
    from flax import nnx

    from tfnet_jax.tasks.base import Fitted
    from tfnet_jax.tasks.transcriptionnet.family import TranscriptionNetFamily
    from tfnet_jax.train.compiles import CompileCounter

    overrides = json.loads((work / "overrides.json").read_text())
    cfg = compose_cfg(overrides)
    run_cfg = typed_config(cfg)  # what the family's hooks take
    with open(work / "data.pkl", "rb") as f:
        data = pickle.load(f)
    out["rss_after_data_gb"] = peak_rss_gb()
    fam = TranscriptionNetFamily()
    data = fam.load(run_cfg, data)  # network.layers / ablation selection (all layers here)
    split = fam.split(run_cfg, data)
    t0 = time.perf_counter()
    prepared = fam.prepare(run_cfg, data, split)
    out["prepare_s"] = time.perf_counter() - t0
    rows = fam.train_rows(prepared)
    n_train = len(rows["target"])
    n_dev = jax.device_count()
    B = args.batch_size
    trainer = fam.make_trainer(run_cfg, prepared, run_dir=None, progress=False, batch_size=B)
    out["parameters"] = int(sum(np.size(x) for x in jax.tree.leaves(nnx.state(trainer.model, nnx.Param))))
    out.update(devices=n_dev, train_rows=n_train, batch_size=B, jax=jax.__version__)
    # The initial parameters, flat ("gat/0/1/proj/kernel"): the peer starts from the same ones.
    flat = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(nnx.state(trainer.model, nnx.Param)))[0]
    np.savez(work / "jax_params.npz", **{"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(v)
                                         for path, v in flat})

    # What the peer needs from this side: node features, target scalers, configs.
    np.savez(work / "peer_inputs.npz", features=np.asarray(prepared.features),
             target_mean=prepared.target_mean, target_sd=prepared.target_sd)
    from omegaconf import OmegaConf
    write_json(work / "configs.json", {"model": OmegaConf.to_container(cfg.model, resolve=True),
                                       "train": OmegaConf.to_container(cfg.train, resolve=True),
                                       "types": list(prepared.types)})

    per_epoch = math.ceil(n_train / B)
    timed = list(range(1 + args.warmup, 1 + args.warmup + args.steps))
    e0 = math.ceil((1 + args.warmup + args.steps) / per_epoch)  # the next whole epoch
    epoch = [] if args.no_epoch else list(range(e0 * per_epoch, (e0 + 1) * per_epoch))
    plan = {"first": [0], "warmup": list(range(1, 1 + args.warmup)), "timed": timed, "epoch": epoch}
    batch_dir = work / "batches"
    batch_dir.mkdir(exist_ok=True)
    for s in [s for steps in plan.values() for s in steps]:  # one at a time: never all in memory
        np.savez(batch_dir / f"b{B}_{s}.npz", lr=np.float32(trainer.schedule(s)),
                 **trainer.train_batch(rows, s))
    out["plan"] = {k: [v[0], v[-1] + 1] if v else [] for k, v in plan.items()}

    def run(step):
        loss, _ = trainer.step(trainer.train_batch(rows, step), step)
        return loss

    compiles = CompileCounter().start()  # jax's own compile log: the step compiles once
    t0 = time.perf_counter()
    loss = jax.block_until_ready(run(0))
    out["compile_s"] = time.perf_counter() - t0
    out["first_loss"] = float(loss)
    for s in plan["warmup"]:
        jax.block_until_ready(run(s))
    times = []
    with OtherCPU() as busy:
        for s in timed:
            t0 = time.perf_counter()
            jax.block_until_ready(run(s))
            times.append(time.perf_counter() - t0)
        if epoch:
            t0 = time.perf_counter()
            for s in epoch:
                loss = run(s)
            jax.block_until_ready(loss)
            out["epoch_s"] = time.perf_counter() - t0
    out.update(step_s=median(times), step_times_s=times, steps_per_epoch=per_epoch,
               other_procs_cores=busy.cores, epoch_loss=float(loss))
    out["train_step_compilations"] = compiles.stop()["train_step"]
    out["rss_after_train_gb"] = peak_rss_gb()
    write_json(result_path, out)

    # Genome-wide prediction: every gene x every type, through the family's predict.
    fitted = Fitted(trainer, {})
    for key in ("predict_first_s", "predict_s"):
        t0, n_rows = time.perf_counter(), 0
        for chunk in fam.predict(run_cfg, prepared, fitted, inputs=None):
            n_rows += len(chunk.values)
        out[key] = time.perf_counter() - t0
        # Back to the initial parameters: the second pass recomputes the graph embedding
        # (once per parameter state), without compiling anything.
        trainer.reset()
    out["predict_rows"] = n_rows
    out["rss_after_predict_gb"] = peak_rss_gb()
    # Same-architecture check: the deterministic (no dropout) loss of batch 0 at the initial
    # parameters (reset above), which the peer computes too from the same parameters.
    from tfnet_jax.train.losses import mse_pearson_loss
    batch = trainer.train_batch(rows, 0)
    pred = trainer.predict({k: batch[k] for k in ("pert_index", "pert_type")})
    out["init_eval_loss"] = float(mse_pearson_loss(pred, batch["target"], batch["mask"],
                                                   float(cfg.model.beta))[0])
    write_json(result_path, out)
    trainer = fitted = None  # free its buffers before the full-batch trainer

    if not args.no_full_batch:
        from dataclasses import fields

        from tfnet_jax.schemas import TrainConfig
        if "full_batch" in {f.name for f in fields(TrainConfig)}:  # the engine's own option
            full = fam.make_trainer(run_cfg, prepared, run_dir=None, progress=False, full_batch=True)
            size = full.train_batch_size(n_train)
        else:  # every training row, padded to a multiple of the device count
            size = math.ceil(n_train / n_dev) * n_dev
            full = fam.make_trainer(run_cfg, prepared, run_dir=None, progress=False, batch_size=size)
        steps = list(range(args.full_steps + 1))
        for s in steps:
            np.savez(batch_dir / f"b{size}_{s}.npz", lr=np.float32(full.schedule(s)),
                     **full.train_batch(rows, s))
        times = []
        with OtherCPU() as busy:
            for s in steps:
                t0 = time.perf_counter()
                loss, _ = full.step(full.train_batch(rows, s), s)
                jax.block_until_ready(loss)
                times.append(time.perf_counter() - t0)
        out.update(full_batch_size=size, full_batch_compile_s=times[0],
                   full_batch_step_s=median(times[1:]), full_batch_other_procs_cores=busy.cores)
    out["peak_rss_gb"] = peak_rss_gb()
    write_json(result_path, out)


# ---------------------------------------------------------------- per-device cost
def cost_of(compiled) -> dict:
    """flops / bytes accessed of a compiled (per-device, SPMD-partitioned) program."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax: one dict per program
        cost = cost[0] if cost else {}
    cost = cost or {}
    out = {"flops": cost.get("flops"), "bytes": cost.get("bytes accessed")}
    # Custom calls (e.g. a fused CPU kernel) are opaque to the cost analysis: their work is not
    # in `flops` / `bytes`. Counted so that a reader knows.
    try:
        out["custom_calls"] = compiled.as_text().count(" custom-call(")
    except Exception:  # noqa: BLE001
        out["custom_calls"] = None
    try:
        memory = compiled.memory_analysis()
        out["temp_bytes"] = int(memory.temp_size_in_bytes)
    except Exception:  # noqa: BLE001 (not every backend / version reports it)
        out["temp_bytes"] = None
    return out


def cost_side(args):
    import jax
    import jax.numpy as jnp

    from tfnet_jax.tasks.transcriptionnet.family import TranscriptionNetFamily

    k, work = args.cost_k, args.work
    # train.num_devices in the config too, so that whatever prepare reads from it matches the mesh.
    run_cfg = typed_config(compose_cfg(json.loads((work / "overrides_cost.json").read_text())
                                       + [f"train.num_devices={k}"]))
    with open(work / "data_cost.pkl", "rb") as f:
        data = pickle.load(f)
    fam = TranscriptionNetFamily()
    data = fam.load(run_cfg, data)
    prepared = fam.prepare(run_cfg, data, fam.split(run_cfg, data))
    rows = fam.train_rows(prepared)
    trainer = fam.make_trainer(run_cfg, prepared, run_dir=None, progress=False,
                               batch_size=args.batch_size, num_devices=k)
    out = {"k": k, "visible_devices": jax.device_count(), "mesh_devices": int(trainer.mesh.devices.size)}
    batch = trainer.train_batch(rows, 0)
    # Traced under the trainer's mesh, as Trainer.step / encoded do (the model may shard_map its
    # graph work over the mesh's data axis only when it sees one).
    mesh = getattr(jax, "set_mesh", None)
    out["traced_under_mesh"] = mesh is not None
    with mesh(trainer.mesh) if mesh is not None else contextlib.nullcontext():
        t0 = time.perf_counter()
        if getattr(trainer, "_encode_step", None) is not None:
            out["encoder"] = cost_of(trainer._encode_step.lower(trainer.state, trainer.context).compile())
        else:
            out["encoder"] = None
        args_ = (trainer.state, trainer._put_batch(batch), trainer.context, trainer.base_key,
                 jnp.int32(0))
        compiled = trainer._train_step.lower(*args_).compile()
        out["compile_s"] = time.perf_counter() - t0
        out["step"] = cost_of(compiled)
        _, loss, _ = compiled(*args_)  # the AOT executable itself: no second compile
        out["loss"] = float(jax.block_until_ready(loss))
    out["peak_rss_gb"] = peak_rss_gb()
    write_json(work / f"cost_{k}.json", out)


# ---------------------------------------------------------------- orchestration
def child(args, role, extra=(), env=None):
    """Run this script as `role` in a subprocess (it writes its figures to the work dir);
    -> (exit status, wall seconds)."""
    argv = [sys.executable, str(Path(__file__).resolve())] + sys.argv[1:] + [
        "--role", role, "--work", str(args.work)] + list(extra)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(f"[{role}{' ' + ' '.join(extra) if extra else ''}] failed: exit status {proc.returncode}"
              f"{' (killed: out of memory?)' if proc.returncode in (-9, 137) else ''}", flush=True)
    return proc.returncode, wall


def make_data(args, num_genes, tag):
    """Compose the config, run the generator (timed), pickle the data; -> (cfg, data, seconds)."""
    from tfnet_jax.data.perturbation.synthetic import make_synthetic
    overrides = data_overrides(args, num_genes)
    cfg = compose_cfg(overrides)
    t0 = time.perf_counter()
    data = make_synthetic(synthetic_config(cfg))
    seconds = time.perf_counter() - t0
    write_json(args.work / f"overrides{tag}.json", overrides)
    with open(args.work / f"data{tag}.pkl", "wb") as f:
        pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
    return cfg, data, seconds


def fmt(value, spec):
    return "-" if value is None else spec.format(value)


def main_side(args):
    args.work = Path(tempfile.mkdtemp(prefix="genome_scale_"))
    result = {"meta": {"cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M"),
                       "argv": sys.argv[1:], "git": git_commit(),
                       "env": {k: os.environ.get(k) for k in ("XLA_FLAGS", "TFNET_JAX_GAT_KERNEL")}}}
    print(f"work dir {args.work}; generating {args.num_genes} genes x {args.layers} layers ...", flush=True)
    cfg, data, gen_s = make_data(args, args.num_genes, "")
    from tfnet_jax.graph.multiplex import multiplex_graphs
    from tfnet_jax.tasks.transcriptionnet.family import TranscriptionNetFamily

    n = data.num_genes
    t0 = time.perf_counter()
    graphs = multiplex_graphs(data.layers, n)
    ours_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    directed = [len(peer_edges(l.senders, l.receivers, l.weights, n)[0]) for l in data.layers]
    peer_build = time.perf_counter() - t0
    padded = [int(np.size(g.senders)) for g in graphs if hasattr(g, "senders")]
    del graphs
    np.savez(args.work / "layers.npz", **{f"{key}_{i}": getattr(l, key) for i, l in enumerate(data.layers)
                                          for key in ("senders", "receivers", "weights")})
    write_json(args.work / "meta.json", {"num_genes": n, "num_layers": len(data.layers)})
    split = TranscriptionNetFamily().split(typed_config(cfg), data)
    counts = {t: {s: int((v == s).sum()) for s in ("train", "valid", "test")} for t, v in split.items()}
    undirected = {l.name: int(len(l.senders)) for l in data.layers}
    result["data"] = {
        "num_genes": n, "layers": len(data.layers), "degree": args.degree, "coverage": args.coverage,
        "perts_per_type": int(cfg.data.perts_per_type), "readouts": len(data.readout_genes),
        "generator_s": gen_s, "graph_build_s": {"tfnet_jax": ours_build, "peer": peer_build},
        "undirected_edges": sum(undirected.values()), "undirected_edges_per_layer": undirected,
        "directed_edges_with_loops": sum(directed), "padded_directed_edges": sum(padded) or None,
        "split_rows": counts, "training_rows": sum(c["train"] for c in counts.values())}
    d = result["data"]
    print(f"data: {n} genes, {d['layers']} layers, {d['undirected_edges']:,} undirected edges "
          f"({', '.join(f'{k} {v:,}' for k, v in undirected.items())}); {d['directed_edges_with_loops']:,} "
          f"directed with self-loops (padded {sum(padded):,}); {d['readouts']} readouts; "
          f"{d['perts_per_type']} perturbations/type -> {d['training_rows']:,} training rows "
          f"(split {counts})", flush=True)
    if d["undirected_edges"] < 1_000_000 and n >= 27000:
        print(f"note: {d['undirected_edges']:,} undirected edges < 1,000,000; raise --degree", flush=True)
    print(f"generator {gen_s:.1f} s; graph build: tfnet_jax multiplex_graphs {ours_build:.2f} s, "
          f"peer numpy edges {peer_build:.2f} s", flush=True)
    del data

    ours = peer = None
    if not args.cost_only:
        print("\n== tfnet_jax (subprocess) ==", flush=True)
        child(args, "jax")
        ours = _read(args.work / "jax.json")
    if args.no_peer or args.cost_only:
        pass
    elif ours is None or "plan" not in ours:
        print("peer skipped: the tfnet_jax side wrote no batches", flush=True)
    elif not _has_module("torch_geometric"):
        print("peer skipped: torch_geometric is not installed (`pip install torch==2.13.0 "
              "torch-geometric`)", flush=True)
    else:
        print("\n== PyTorch Geometric peer (subprocess) ==", flush=True)
        child(args, "peer")
        peer = _read(args.work / "peer.json")
    result["tfnet_jax"], result["peer"] = ours, peer

    per_device = []
    if args.devices:
        cost_genes = args.cost_genes or args.num_genes
        if cost_genes != args.num_genes:
            make_data(args, cost_genes, "_cost")
        else:
            for name in ("overrides", "data"):
                src = args.work / f"{name}{'.json' if name == 'overrides' else '.pkl'}"
                os.link(src, src.with_name(src.stem + "_cost" + src.suffix))
        print(f"\n== per-device cost ({cost_genes} genes, batch {args.batch_size}) ==", flush=True)
        for k in args.devices:
            env = dict(os.environ)
            flag = f"--xla_force_host_platform_device_count={k}"
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + flag).strip()
            child(args, "cost", ["--cost-k", str(k)], env=env)
            found = _read(args.work / f"cost_{k}.json")
            per_device.append(found if found else {"k": k, "failed": True})
        result["cost_genes"] = cost_genes
    base = next((c for c in per_device if c.get("k") == 1 and not c.get("failed")), None)
    for c in per_device:  # ratios to k=1 (flops per device; loss difference)
        for part in ("encoder", "step"):
            mine, ref = (c.get(part) or {}).get("flops"), ((base or {}).get(part) or {}).get("flops")
            c[f"{part}_flops_ratio_to_k1"] = mine / ref if mine and ref else None
        c["loss_minus_k1"] = (c["loss"] - base["loss"]) if base and c.get("loss") is not None else None
    result["per_device"] = per_device

    report(args, result)
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    if not args.keep_work:
        import shutil
        shutil.rmtree(args.work, ignore_errors=True)
    else:
        print(f"kept {args.work}")


def _read(path):
    return json.loads(path.read_text()) if path.exists() else None


def _has_module(name):
    import importlib.util
    return importlib.util.find_spec(name) is not None


def git_commit():
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except OSError:
        return None


def side_by_side(args, ours, peer, d):
    rows = [("parameters", "parameters", "{:,}"), ("graph build (s)", None, "{:.2f}"),
            ("compile / first step (s)", "compile_s", "{:.2f}"),
            (f"step, batch {args.batch_size} (s, median)", "step_s", "{:.3f}"),
            (f"epoch, {ours.get('steps_per_epoch', '?')} steps (s)", "epoch_s", "{:.1f}"),
            ("step, peer with 1 torch thread (s, median)", "step_s_1_thread", "{:.3f}"),
            ("full batch: first step (s)", "full_batch_compile_s", "{:.2f}"),
            (f"full batch {ours.get('full_batch_size', '')}: step (s, median)", "full_batch_step_s",
             "{:.3f}"),
            ("predict all genes x 3 types, first (s)", "predict_first_s", "{:.2f}"),
            ("predict all genes x 3 types (s)", "predict_s", "{:.2f}"),
            ("peak RSS (GB)", "peak_rss_gb", "{:.2f}"),
            ("other procs' CPU, timed steps (cores)", "other_procs_cores", "{:.2f}"),
            ("other procs' CPU, full batch (cores)", "full_batch_other_procs_cores", "{:.2f}")]
    table = [("", "tfnet_jax", "PyG peer", "ratio jax/peer")]
    for label, key, spec in rows:
        if key is None:
            a, b = d["graph_build_s"]["tfnet_jax"], d["graph_build_s"]["peer"]
        else:
            a, b = ours.get(key), peer.get(key)
        cell_b = fmt(b, spec)
        if key == "full_batch_step_s" and peer.get("full_batch_skipped"):
            cell_b = "skipped"
        ratio = "-" if a is None or b is None or not b or "other" in label else f"{a / b:.2f}x"
        table.append((label, fmt(a, spec), cell_b, ratio))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for r in table:
        print("  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]))
    print(f"generator {d['generator_s']:.1f} s. ratio < 1: tfnet_jax takes less. First step: JAX traces, "
          "compiles and runs; the peer runs eagerly. predict: tfnet_jax through fam.predict "
          "(graph encoded once, heads in batches of eval_batch_size, unscaled, with a DataFrame per "
          "chunk); the peer: graph once, heads per type in chunks of 1,024, unscaled. "
          "second pass = after reset (no compile).")
    if peer.get("full_batch_skipped"):
        print(f"peer full batch skipped: {peer['full_batch_skipped']}")
    if ours.get("init_eval_loss") is not None and peer.get("init_eval_loss") is not None:
        same = peer.get("same_init") is True
        print(f"architecture check, batch 0 without dropout at the initial parameters: loss tfnet_jax "
              f"{ours['init_eval_loss']:.6f}, peer {peer['init_eval_loss']:.6f} "
              + ("(same parameters: should agree to float32 rounding)" if same else
                 f"(peer initialised on its own: {peer.get('same_init')})"))
    if ours.get("first_loss") is not None and peer.get("first_loss") is not None:
        print(f"first training step loss (with dropout, different random masks): tfnet_jax "
              f"{ours['first_loss']:.4f}, peer {peer['first_loss']:.4f}")
    if peer.get("gat") == "plain":
        print("peer GATConv: plain (edge weights unused; tfnet_jax adds log weight to the logits)")


def report(args, result):
    ours, peer, d = result["tfnet_jax"] or {}, result["peer"] or {}, result["data"]
    print("\n== genome scale: tfnet_jax vs PyTorch Geometric peer ==")
    versions = (f"; jax {ours.get('jax', '-')}, torch {peer.get('torch', '-')} / torch_geometric "
                f"{peer.get('torch_geometric', '-')} ({peer.get('threads', '-')} threads, GATConv "
                f"{peer.get('gat', '-')})") if ours or peer else ""
    print(f"{d['num_genes']:,} genes, {d['layers']} layers, {d['undirected_edges']:,} undirected edges "
          f"({d['directed_edges_with_loops']:,} directed + self-loops), {d['training_rows']:,} training "
          f"rows, {d['readouts']} readouts; batch {args.batch_size}{versions}; {os.cpu_count()} cpus")
    if ours or peer:
        side_by_side(args, ours, peer, d)

    per_device = result.get("per_device") or []
    if per_device:
        print(f"\nper-device cost (XLA cost analysis of the compiled per-device program; "
              f"{result.get('cost_genes'):,} genes, batch {args.batch_size}):")
        base = next((c for c in per_device if c.get("k") == 1 and not c.get("failed")), None)

        def get(c, part, key):
            return (c.get(part) or {}).get(key) if not c.get("failed") else None

        table = [("k", "encoder flops/device", "encoder bytes/device", "step flops/device",
                  "step bytes/device", "loss", "step flops ratio to k=1", "encoder ratio")]
        for c in per_device:
            sf, ef = get(c, "step", "flops"), get(c, "encoder", "flops")
            table.append((str(c.get("k")), fmt(ef, "{:.3e}"), fmt(get(c, "encoder", "bytes"), "{:.3e}"),
                          fmt(sf, "{:.3e}"), fmt(get(c, "step", "bytes"), "{:.3e}"),
                          fmt(c.get("loss"), "{:.6f}"),
                          fmt(sf / get(base, "step", "flops") if base and sf else None, "{:.3f}"),
                          fmt(ef / get(base, "encoder", "flops") if base and ef else None, "{:.3f}")))
        widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
        for r in table:
            print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
        opaque = max((get(c, "step", "custom_calls") or 0) for c in per_device)
        if opaque:
            print(f"note: the step has {opaque} custom call(s) (e.g. tfnet_jax's fused CPU GAT kernel), "
                  "whose work XLA's cost analysis does not count; TFNET_JAX_GAT_KERNEL=xla runs the "
                  "aggregation as XLA ops, which it does count.")


def typed_config(cfg):
    from tfnet_jax.schemas.typed import typed_config as typed
    return typed(cfg)


def main():
    args = parse_args()
    import tfnet_jax
    tfnet_jax.tune_host_memory()  # every side, as the commands do, before jax starts its threads
    if args.role == "main":
        main_side(args)
    elif args.role == "jax":
        jax_side(args)
    elif args.role == "peer":
        peer_side(args)
    else:
        cost_side(args)


if __name__ == "__main__":
    main()
