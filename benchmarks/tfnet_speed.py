#!/usr/bin/env python
"""TFNet at the paper's scale: light-up time, and training speed beside a PyTorch peer.

A script, not a test: it prints figures and asserts nothing about time.
- Light-up of --tfs TFs x --targets targets through a 2 x 250 ELU TFNet (the paper's
  shape): one vmapped, jit-compiled forward pass per chunk of TFs, plus the Jacobian at
  the background. Compile time is reported apart from the timed run.
- Training steps per second of the same model (MSE, AdamW, batch --batch-size) through
  the shared engine, and of a PyTorch model of the same shape on the same batches, in
  the same process.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tfs", type=int, default=1600)
    p.add_argument("--targets", type=int, default=25000)
    p.add_argument("--samples", type=int, default=2048, help="training samples (random data)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=100, help="timed training steps")
    p.add_argument("--chunk", type=int, default=256, help="TFs per light-up forward pass")
    p.add_argument("--no-peer", action="store_true", help="skip the PyTorch peer")
    return p.parse_args()


def timed(fn, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    args = parse_args()
    import jax
    import numpy as np
    from flax import nnx

    from tfnet_jax.analysis.lightup import jacobian_matrix, lightup_matrix
    from tfnet_jax.models.tfnet import TFNet
    from tfnet_jax.tasks.expression import loss_fn, predict_fn
    from tfnet_jax.train.engine import Trainer, TrainConfig

    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPU(s); "
          f"model {args.tfs} -> 250 -> 250 -> {args.targets} (ELU)")
    model = TFNet(args.tfs, args.targets, hidden=(250, 250), rngs=nnx.Rngs(0))
    deltas = np.full(args.tfs, 1.0)
    sd = np.ones(args.targets)

    start = time.perf_counter()
    lightup_matrix(model, deltas, sd, chunk=args.chunk)  # includes the one compile
    first = time.perf_counter() - start
    lightup_s = timed(lambda: lightup_matrix(model, deltas, sd, chunk=args.chunk))
    start = time.perf_counter()
    jacobian_matrix(model, deltas, sd)
    jac_first = time.perf_counter() - start
    jac_s = timed(lambda: jacobian_matrix(model, deltas, sd), repeats=2)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.samples, args.tfs)).astype(np.float32)
    y = rng.normal(size=(args.samples, args.targets)).astype(np.float32)
    cfg = TrainConfig(max_steps=10 ** 6, batch_size=args.batch_size, num_devices=1, progress=False,
                      weight_decay=1e-4, warmup_steps=0, schedule="constant")
    trainer = Trainer(model, cfg, loss_fn=loss_fn, predict_fn=predict_fn, context={})
    arrays = {"x": x, "target": y}
    batches = [trainer.train_batch(arrays, s) for s in range(args.steps + 3)]
    for s in range(3):  # compile + warm-up
        loss, _ = trainer.step(batches[s], s)
    jax.block_until_ready(loss)
    start = time.perf_counter()
    for s in range(3, args.steps + 3):
        loss, _ = trainer.step(batches[s], s)
    jax.block_until_ready(loss)
    jax_sps = args.steps / (time.perf_counter() - start)

    rows = [("light-up, all TFs (tfnet_jax)", f"{lightup_s:.2f} s", f"first call with compile {first:.2f} s"),
            ("Jacobian at background (tfnet_jax)", f"{jac_s:.2f} s", f"first call with compile {jac_first:.2f} s"),
            ("training (tfnet_jax engine)", f"{jax_sps:.1f} steps/s", f"batch {args.batch_size}")]
    if not args.no_peer:
        rows.append(("training (PyTorch peer)", f"{torch_steps_per_second(args, batches):.1f} steps/s",
                     f"batch {args.batch_size}"))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'what':<{width}}  {'figure':>14}  note")
    for what, figure, note in rows:
        print(f"{what:<{width}}  {figure:>14}  {note}")


def torch_steps_per_second(args, batches) -> float:
    """The same 2 x 250 ELU model, MSE loss, AdamW, on the same padded batches."""
    import torch
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    model = torch.nn.Sequential(torch.nn.Linear(args.tfs, 250), torch.nn.ELU(), torch.nn.Linear(250, 250),
                                torch.nn.ELU(), torch.nn.Linear(250, args.targets))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    tensors = [{k: torch.from_numpy(v) for k, v in b.items()} for b in batches]

    def step(batch):
        opt.zero_grad(set_to_none=True)
        per_row = ((model(batch["x"]) - batch["target"]) ** 2).mean(dim=1)
        loss = (per_row * batch["mask"]).sum() / batch["mask"].sum().clamp(min=1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # the engine clips too
        opt.step()
        return loss
    for b in tensors[:3]:
        step(b)
    start = time.perf_counter()
    for b in tensors[3:]:
        step(b)
    return (len(tensors) - 3) / (time.perf_counter() - start)


if __name__ == "__main__":
    main()
