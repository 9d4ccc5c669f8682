"""Optimiser and learning-rate schedule from the `train` config."""
from __future__ import annotations

import optax

SCHEDULES = ("constant", "cosine", "warmup_cosine")
OPTIMIZERS = ("adam", "adamw", "sgd")


def make_schedule(name: str, learning_rate: float, max_steps: int, warmup_steps: int):
    if name == "constant":
        return optax.constant_schedule(learning_rate)
    if name == "cosine":
        return optax.cosine_decay_schedule(learning_rate, decay_steps=max(max_steps, 1))
    if name == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, learning_rate, warmup_steps=max(warmup_steps, 1),
            decay_steps=max(max_steps, warmup_steps + 1))
    raise ValueError(f"train.schedule must be one of {SCHEDULES}, got {name!r}")


def make_optimizer(name: str, schedule, weight_decay: float, grad_clip: float | None):
    if name == "adam":
        opt = optax.adam(schedule)
    elif name == "adamw":
        opt = optax.adamw(schedule, weight_decay=weight_decay)
    elif name == "sgd":
        opt = optax.sgd(schedule, momentum=0.9)
    else:
        raise ValueError(f"train.optimizer must be one of {OPTIMIZERS}, got {name!r}")
    if grad_clip:
        opt = optax.chain(optax.clip_by_global_norm(grad_clip), opt)
    return opt
