"""Light-up analysis of a trained TFNet: which targets move when one TF is raised.

Background: every TF at its training mean (0 in the model's standardised inputs). Each
TF in turn is raised by `delta` (double it in linear space: + log(2) in the data's log
units, divided by the TF's training sd; or + k sd) and every target's change against the
background is recorded, in the target's own units. All TFs go through one jit-compiled,
vmapped forward pass per chunk, never a Python loop over TFs. Beside it, the Jacobian at
the background scaled by the same deltas: the linearised light-up.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from flax import nnx

MODES = ("double", "sd")


def perturbation_sizes(x_sd: np.ndarray, mode: str = "double", k: float = 1.0,
                       log_base: float = math.e) -> np.ndarray:
    """Per-TF step in standardised input units: 'double' = log_base(2) data units, 'sd' = k sd."""
    if mode == "double":
        return (math.log(2.0) / math.log(log_base)) / np.asarray(x_sd, np.float64)
    if mode == "sd":
        return np.full(len(x_sd), float(k))
    raise ValueError(f"lightup mode={mode!r}; expected one of {MODES}")


def pure_forward(model: nnx.Module):
    """(forward(state, x) in inference mode, state): a pure function that jit/vmap accept."""
    graphdef, state = nnx.split(model)

    def forward(state, x):
        return nnx.merge(graphdef, state)(x, deterministic=True)
    return forward, state


def lightup_matrix(model: nnx.Module, deltas: np.ndarray, target_sd: np.ndarray,
                   chunk: int = 256) -> np.ndarray:
    """[tfs, targets]: change of each target (its units) when TF i is raised by deltas[i]."""
    forward, state = pure_forward(model)
    num_tfs = len(deltas)
    background = jnp.zeros((num_tfs,), jnp.float32)

    @jax.jit
    def raised(state, tf_index, delta):
        def one(i, d):  # one TF raised, the rest at background
            return forward(state, background.at[i].set(d)[None])[0]
        base = forward(state, background[None])[0]
        return jax.vmap(one)(tf_index, delta) - base

    out = np.empty((num_tfs, len(target_sd)), np.float32)
    for start in range(0, num_tfs, chunk):  # a fixed chunk (last one padded): one compile
        index = np.arange(start, start + chunk) % num_tfs
        block = raised(state, jnp.asarray(index), jnp.asarray(deltas[index], jnp.float32))
        stop = min(start + chunk, num_tfs)
        out[start:stop] = np.asarray(block)[: stop - start]
    return out * np.asarray(target_sd, np.float32)


def jacobian_matrix(model: nnx.Module, deltas: np.ndarray, target_sd: np.ndarray) -> np.ndarray:
    """[tfs, targets]: d target / d TF at the background, times deltas (linearised light-up)."""
    forward, state = pure_forward(model)
    background = jnp.zeros((len(deltas),), jnp.float32)
    jac = jax.jit(jax.jacfwd(lambda x: forward(state, x[None])[0]))(background)  # [targets, tfs]
    return (np.asarray(jac).T * np.asarray(deltas, np.float32)[:, None]
            * np.asarray(target_sd, np.float32)[None, :])


def lightup_table(scores: np.ndarray, tf_genes, target_genes,
                  jacobian: np.ndarray | None = None) -> pd.DataFrame:
    """Long table `source, target, weight[, jacobian]` (decoupler's network columns; categorical
    names keep it compact): source = the raised TF, weight = the target's change."""
    num_tfs, num_targets = scores.shape
    tf_codes = np.repeat(np.arange(num_tfs, dtype=np.int32), num_targets)
    target_codes = np.tile(np.arange(num_targets, dtype=np.int32), num_tfs)
    frame = pd.DataFrame({
        "source": pd.Categorical.from_codes(tf_codes, categories=pd.Index(np.asarray(tf_genes, str))),
        "target": pd.Categorical.from_codes(target_codes,
                                            categories=pd.Index(np.asarray(target_genes, str))),
        "weight": scores.reshape(-1)})
    if jacobian is not None:
        frame["jacobian"] = jacobian.reshape(-1)
    return frame


def importance(scores: np.ndarray, target_sd: np.ndarray) -> np.ndarray:
    """Per TF: mean |light-up| over targets, each target in its own sd units."""
    return np.abs(scores / np.asarray(target_sd)[None, :]).mean(axis=1)
