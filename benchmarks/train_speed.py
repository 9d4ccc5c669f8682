#!/usr/bin/env python
"""Graph-build time and TranscriptionNet training speed, side by side with a PyTorch peer.

A script, not a test: it prints figures and asserts nothing about time. Both sides train
the same architecture (default model config) on the same padded graph arrays and the same
batches, with AdamW, for the same number of steps. See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as `python benchmarks/train_speed.py` without installing
from probes import busy_cpu_s  # noqa: E402 (benchmarks/, the script's own directory)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default, text in (("--steps", 200, "timed training steps"), ("--batch-size", 64, None),
                                ("--warmup", 5, "untimed steps after the first"),
                                ("--num-genes", 3000, "3000 = the demo data")):
        p.add_argument(flag, type=int, default=default, help=text)
    p.add_argument("--devices", type=int, default=1, help="forced host (CPU) devices for JAX")
    p.add_argument("--no-peer", action="store_true", help="skip the PyTorch peer")
    p.add_argument("--json", type=Path, help="also write the figures here")
    return p.parse_args()


def median_ms(fn, runs=5):
    return 1e3 * statistics.median(timeit.repeat(fn, number=1, repeat=runs))


def load_configs(batch_size, devices):
    """(model, train) of the packaged default config, as plain dicts (the peer reads them too)."""
    import dataclasses

    from tfnet_jax.config import compose
    from tfnet_jax.schemas.typed import typed_config
    cfg = typed_config(compose([f"train.batch_size={batch_size}", f"train.num_devices={devices}",
                                "train.progress=false"]))
    return dataclasses.asdict(cfg.model), dataclasses.asdict(cfg.train)


def time_steps(step_fn, batch_fn, steps, warmup, block):
    """(first-step s, steps/s, cores other processes used meanwhile): step 0 alone, then
    `warmup` untimed, then `steps` timed. Others on the same cores skew the figures."""
    t0 = time.perf_counter()
    block(step_fn(batch_fn(0), 0))
    first = time.perf_counter() - t0
    for s in range(1, warmup + 1):
        block(step_fn(batch_fn(s), s))
    busy0, own0, t0 = busy_cpu_s(), time.process_time(), time.perf_counter()
    for s in range(warmup + 1, warmup + 1 + steps):
        loss = step_fn(batch_fn(s), s)
    block(loss)  # async dispatch: the clock stops only when the last step has finished
    wall, busy1 = time.perf_counter() - t0, busy_cpu_s()
    others = None if busy0 is None else max(0.0, busy1 - busy0 - (time.process_time() - own0)) / wall
    return first, steps / wall, others


# ---------------------------------------------------------------- PyTorch peer
def scipy_graphs(layers, num_nodes):
    """Same symmetric + self-loop + per-receiver-normalised graphs, as scipy CSR matrices."""
    import numpy as np
    import scipy.sparse as sp
    out = []
    for layer in layers:
        s, r, w = layer.senders, layer.receivers, layer.weights
        sym = sp.coo_matrix((np.concatenate([w, w]), (np.concatenate([r, s]), np.concatenate([s, r]))),
                            shape=(num_nodes, num_nodes)).tocsr()  # row = receiver
        strongest = sym.max(axis=1).toarray().ravel()
        adj = (sym + sp.diags(np.where(strongest > 0, strongest, 1.0).astype(np.float32))).tocsr()
        out.append(sp.diags(1.0 / np.asarray(adj.sum(axis=1)).ravel()) @ adj)
    return out


def torch_peer(prepared, model_cfg, train_cfg, batch_fn, args):
    import numpy as np
    import torch
    from torch import nn
    F = nn.functional

    class GAT(nn.Module):
        def __init__(self, dim, heads):
            super().__init__()
            self.heads, self.hd = heads, dim // heads
            self.proj = nn.Linear(dim, dim, bias=False)
            self.att_src = nn.Parameter(torch.randn(heads, self.hd) * 0.3)
            self.att_dst = nn.Parameter(torch.randn(heads, self.hd) * 0.3)
            self.norm, self.drop = nn.LayerNorm(dim), nn.Dropout(model_cfg["dropout"])

        def forward(self, x, g):
            n = x.shape[0]
            h = self.proj(x).view(n, self.heads, self.hd)
            ss, sd = (h * self.att_src).sum(-1), (h * self.att_dst).sum(-1)
            logits = F.leaky_relu(ss[g["s"]] + sd[g["r"]], 0.2) + g["logw"][:, None]
            # Scatter softmax over receivers: the same max-shift / exp / sum as tfnet_jax's.
            idx = g["r"][:, None].expand_as(logits)
            mx = torch.full((n, self.heads), -torch.inf).scatter_reduce(0, idx, logits, "amax")
            e = torch.exp(logits - mx[g["r"]])
            alpha = e / torch.zeros(n, self.heads).index_add_(0, g["r"], e)[g["r"]]
            out = torch.zeros_like(h).index_add_(0, g["r"], h[g["s"]] * alpha[..., None])
            return self.norm(x + self.drop(F.elu(out.reshape(n, -1))))

    class Block(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.norm, self.inner, self.outer = nn.LayerNorm(d), nn.Linear(d, d), nn.Linear(d, d)
            self.drop = nn.Dropout(model_cfg["dropout"])

        def forward(self, x):
            return x + self.outer(self.drop(F.gelu(self.inner(self.norm(x)), approximate="tanh")))

    def head(d_in, d, blocks, d_out):  # FunDNN head: in -> gelu -> residual blocks -> LN -> out
        return nn.Sequential(nn.Linear(d_in, d), nn.GELU(approximate="tanh"),
                             *[Block(d) for _ in range(blocks)], nn.LayerNorm(d), nn.Linear(d, d_out))

    class Net(nn.Module):
        def __init__(self, feat_dim, num_layers, num_types, num_readouts, c):
            super().__init__()
            d = c["hidden"]
            self.feature_proj = nn.Linear(feat_dim, d)
            self.gat = nn.ModuleList([nn.ModuleList([GAT(d, c["heads"]) for _ in range(c["gat_layers"])])
                                      for _ in range(num_layers)])
            self.fusion_proj = nn.Linear(d, c["fusion_dim"])
            self.query = nn.Parameter(torch.randn(c["fusion_dim"]) * 0.1)
            self.heads = nn.ModuleList([head(d, c["head_hidden"], c["head_blocks"], num_readouts)
                                        for _ in range(num_types)])

        def forward(self, feats, graphs, idx, ptype):
            x, per_layer = self.feature_proj(feats), []
            for stack, g in zip(self.gat, graphs):
                h = x
                for layer in stack:
                    h = layer(h, g)
                per_layer.append(h)
            per_layer = torch.stack(per_layer)  # [L, N, D]
            weights = torch.softmax(torch.tanh(self.fusion_proj(per_layer)) @ self.query, dim=0)
            genes = torch.einsum("ln,lnd->nd", weights, per_layer)[idx]
            # Every head on every row, then pick by type: the same work as the JAX model.
            outs = torch.stack([head(genes) for head in self.heads])
            return torch.einsum("bt,tbr->br", F.one_hot(ptype, len(self.heads)).float(), outs)

    def loss_fn(pred, target, mask, beta):
        mse = ((pred - target) ** 2).mean(-1)
        pc, tc = pred - pred.mean(-1, keepdim=True), target - target.mean(-1, keepdim=True)
        r = (pc * tc).sum(-1) / torch.sqrt((pc * pc).sum(-1) * (tc * tc).sum(-1) + 1e-8)
        m = mask / mask.sum().clamp(min=1.0)
        return (1 - beta) * (mse * m).sum() + beta * (1 - (r * m).sum())

    torch.manual_seed(0)
    # The same directed, normalised edges the JAX side trains on, as tensors.
    from tfnet_jax.graph.multiplex import directed_edges
    graphs = []
    for layer in prepared.data.layers:
        s, r, w = directed_edges(layer, prepared.data.num_genes)
        graphs.append({"s": torch.from_numpy(s.astype(np.int64)), "r": torch.from_numpy(r.astype(np.int64)),
                       "logw": torch.from_numpy(np.log(w + np.float32(1e-9)))})
    feats = torch.from_numpy(np.asarray(prepared.features))
    net = Net(feats.shape[1], len(graphs), len(prepared.types), len(prepared.data.readout_genes), model_cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=train_cfg["learning_rate"],
                            weight_decay=train_cfg["weight_decay"])

    def step(batch, _):
        b = {k: torch.from_numpy(v) for k, v in batch.items()}
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(feats, graphs, b["pert_index"].long(), b["pert_type"].long()),
                       b["target"], b["mask"], model_cfg["beta"])
        loss.backward()
        if train_cfg["grad_clip"]:  # the default train config clips, so the peer does too
            nn.utils.clip_grad_norm_(net.parameters(), train_cfg["grad_clip"])
        opt.step()
        return loss

    build = median_ms(lambda: scipy_graphs(prepared.data.layers, prepared.data.num_genes))
    first, rate, others = time_steps(step, batch_fn, args.steps, args.warmup, lambda loss: loss.item())
    return {"version": torch.__version__, "threads": torch.get_num_threads(), "graph_build_ms": build,
            "first_step_s": first, "steps_per_s": rate, "examples_per_s": rate * args.batch_size,
            "other_procs_cores": others}


# ---------------------------------------------------------------- main
def main():
    args = parse_args()
    import tfnet_jax
    tfnet_jax.tune_host_memory()  # as the commands do, before jax starts its threads
    if args.devices > 1:  # must be set before jax is imported anywhere
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={args.devices}").strip()
    import jax

    from tfnet_jax.data.perturbation.synthetic import SyntheticConfig, make_synthetic
    from tfnet_jax.data.splits import assign_splits
    from tfnet_jax.graph.multiplex import multiplex_graphs
    from tfnet_jax.tasks.transcriptionnet import prepare as task
    from tfnet_jax.schemas.typed import typed_group
    from tfnet_jax.train.compiles import CompileCounter
    from tfnet_jax.train.engine import Trainer

    n = args.num_genes
    data = make_synthetic(SyntheticConfig(num_genes=n, num_readouts=min(978, n), perts_per_type=min(420, n)))
    prepared = task.prepare(data, assign_splits(data, seed=0))
    model_cfg, train_cfg = load_configs(args.batch_size, args.devices)
    model = task.build_model(typed_group("model", model_cfg), prepared, seed=0)
    trainer = Trainer(model, typed_group("train", train_cfg), loss_fn=task.make_loss_fn(model_cfg["beta"]),
                      predict_fn=task.predict_fn, context=prepared.context, run_dir=None)
    arrays = prepared.rows("train")
    batch_fn = lambda s: trainer.train_batch(arrays, s)  # noqa: E731  (same batches for both sides)

    build = median_ms(lambda: multiplex_graphs(data.layers, data.num_genes))
    compiles = CompileCounter().start()  # jax's own compile log: the step compiles once
    first, rate, others = time_steps(lambda b, s: trainer.step(b, s)[0], batch_fn, args.steps,
                                     args.warmup, jax.block_until_ready)
    compiles.stop()
    ours = {"graph_build_ms": build, "first_step_s": first, "steps_per_s": rate,
            "examples_per_s": rate * args.batch_size, "other_procs_cores": others,
            "train_step_compilations": compiles["train_step"]}

    peer = None
    if not args.no_peer and importlib.util.find_spec("torch") is None:
        print("PyTorch peer skipped: torch is not installed. Install it with "
              "`pip install torch==2.13.0` (a CPU build is available from local disk here).")
    elif not args.no_peer:
        peer = torch_peer(prepared, model_cfg, train_cfg, batch_fn, args)

    edges = {layer.name: len(layer.senders) for layer in data.layers}
    padded = {layer.name: int(g.senders.shape[0]) for layer, g in zip(data.layers, prepared.graphs)}
    meta = {"jax": jax.__version__, "torch": peer and peer["version"], "devices": jax.device_count(),
            "genes": n, "edges_per_layer": edges, "padded_directed_edges": padded,
            "readouts": len(data.readout_genes), "train_rows": len(arrays["target"]),
            "batch": args.batch_size, "steps": args.steps, "warmup": args.warmup, "cpus": os.cpu_count()}
    print(f"jax {meta['jax']} ({meta['devices']} device(s)), torch {meta['torch'] or '-'}"
          + (f" ({peer['threads']} threads)" if peer else "")
          + f" | genes {n}, undirected edges/layer {edges}, padded directed {padded}, "
          f"readouts {meta['readouts']}, batch {args.batch_size}, steps {args.steps}, cpus {meta['cpus']}")
    rows = [("graph build (ms)", "graph_build_ms", "{:.1f}"),
            ("first step compile (s)", "first_step_s", "{:.2f}"),
            ("train steps/s", "steps_per_s", "{:.2f}"), ("examples/s", "examples_per_s", "{:.0f}"),
            ("other procs' CPU (cores)", "other_procs_cores", "{:.2f}")]  # contention, not speed
    table = [("", "tfnet_jax (JAX)", "peer (PyTorch)", "ratio")]
    for label, key, fmt in rows:
        cells = [fmt.format(side[key]) if side and side[key] is not None else "-" for side in (ours, peer)]
        ratio = f"{ours[key] / peer[key]:.2f}x" if peer and key != "other_procs_cores" else "-"
        table.append((label, *cells, ratio))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for r in table:
        print("  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]))
    print("ratio = tfnet_jax / peer. First step: JAX traces+compiles+runs, PyTorch runs eagerly. "
          f"Train-step compilations (JAX): {ours['train_step_compilations'] or 'n/a'}.")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "tfnet_jax": ours, "peer": peer}, indent=2) + "\n")


if __name__ == "__main__":
    main()
