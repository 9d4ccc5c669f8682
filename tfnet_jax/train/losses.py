"""Masked losses. `mask` [B] is 0 for padding rows, which must not count."""
from __future__ import annotations

import jax.numpy as jnp


def masked_mean(values, mask):
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def row_pearson(pred, target, eps: float = 1e-8):
    """Pearson r of each row pair [B, R] -> [B]."""
    pc = pred - pred.mean(axis=-1, keepdims=True)
    tc = target - target.mean(axis=-1, keepdims=True)
    num = jnp.sum(pc * tc, axis=-1)
    den = jnp.sqrt(jnp.sum(pc * pc, axis=-1) * jnp.sum(tc * tc, axis=-1) + eps)
    return num / den


def mse_pearson_loss(pred, target, mask, beta: float):
    """(1 - beta) * MSE + beta * (1 - Pearson r), both averaged over real rows."""
    mse = masked_mean(jnp.mean((pred - target) ** 2, axis=-1), mask)
    pearson = masked_mean(row_pearson(pred, target), mask)
    loss = (1.0 - beta) * mse + beta * (1.0 - pearson)
    return loss, {"mse": mse, "pearson": pearson}
