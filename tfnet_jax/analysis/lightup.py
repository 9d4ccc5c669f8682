"""Light-up analysis of a trained TFNet: which targets move when one TF is raised.

Background: every TF at its training mean (0 in the model's standardised inputs). Each
TF in turn is raised by `delta` (double it in linear space: + log(2) in the data's log
units, divided by the TF's training sd; or + k sd) and every target's change against the
background is recorded, in the target's own units. All TFs go through one jit-compiled,
vmapped forward pass per chunk, never a Python loop over TFs. Beside it, the Jacobian at
the background scaled by the same deltas: the linearised light-up.
"""
from __future__ import annotations

import logging
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from flax import nnx

from tfnet_jax.analysis import require_family
from tfnet_jax.analysis.validation import read_known_pairs, validate_lightup
from tfnet_jax.atomic import atomic_write_json, atomic_write_with
from tfnet_jax.data.genes import GeneTable
from tfnet_jax.schemas.commands import LIGHTUP_MODES, LightupOptions, make_options

log = logging.getLogger(__name__)


def perturbation_sizes(x_sd: np.ndarray, mode: str = "double", k: float = 1.0,
                       log_base: float = math.e) -> np.ndarray:
    """Per-TF step in standardised input units: 'double' = log_base(2) data units, 'sd' = k sd."""
    if mode == "double":
        return (math.log(2.0) / math.log(log_base)) / np.asarray(x_sd, np.float64)
    if mode == "sd":
        return np.full(len(x_sd), float(k))
    raise ValueError(f"lightup mode={mode!r}; expected one of {LIGHTUP_MODES}")


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


# ---------------------------------------------------------------- a trained run
def planted_pairs(extras: dict) -> pd.DataFrame | None:
    """A synthetic run's true TF -> target edges (source, target, mode)."""
    edges = extras.get("edges")
    if edges is None:
        return None
    edges = edges[edges["kind"] == "tf->target"]
    mode = np.where(edges["sign"] > 0, "Activation", "Repression")
    return pd.DataFrame({"source": edges["tf"].to_numpy(), "target": edges["target"].to_numpy(),
                         "mode": mode})


def _summary(result: dict) -> dict:
    """JSON-ready scalars of a validation result (per-target tables go to CSV)."""
    out = {k: v for k, v in result.items() if not isinstance(v, (pd.DataFrame, dict))}
    for key, part in result.items():
        if isinstance(part, dict):
            out[key] = _summary(part)
    return {k: (float(v) if isinstance(v, (np.floating, np.integer)) else v) for k, v in out.items()}


def run_lightup(run, **options) -> dict:
    """Light-up of a trained TFNet run (`tfnet_jax.load_run`), options as `LightupOptions`.

    Writes RUN/lightup.parquet (decoupler's columns `source` (the TF), `target`, `weight` and,
    with jacobian=True, `jacobian`) and, where known TF -> target pairs exist (`known=FILE` in
    TRRUST format, or a synthetic run's planted edges), RUN/lightup_validation.json (one block
    per scored column, the |Spearman| control inside the `weight` block) and
    RUN/lightup_validation_per_target.csv; returns the validation summary.
    """
    opts = make_options(LightupOptions, options)
    opts.check()
    require_family(run, "tfnet")
    run_dir, prepared, model = run.run_dir, run.prepared, run.trainer.model
    data = prepared.data
    deltas = perturbation_sizes(prepared.x_sd, opts.mode, opts.k, opts.log_base)
    started = time.perf_counter()
    scores = lightup_matrix(model, deltas, prepared.y_sd, chunk=opts.chunk)
    seconds = time.perf_counter() - started
    jacobian = jacobian_matrix(model, deltas, prepared.y_sd) if opts.jacobian else None
    table = lightup_table(scores, data.tf_genes, data.target_genes, jacobian)
    atomic_write_with(run_dir / "lightup.parquet", lambda tmp: table.to_parquet(tmp, index=False))
    log.info(f"light-up of {len(data.tf_genes)} TFs x {len(data.target_genes)} targets in "
             f"{seconds:.2f} s -> {run_dir / 'lightup.parquet'}")

    known = read_known_pairs(opts.known) if opts.known else planted_pairs(data.extras)
    if known is None:
        return {"lightup_seconds": seconds}
    table_path = opts.gene_table or run.config.data.get("gene_table")
    genes = GeneTable.from_file(table_path) if table_path else None
    expression = pd.DataFrame(data.values[prepared.split == "train"], columns=data.genes)
    summary = {"lightup_seconds": seconds, "known": str(opts.known or "planted edges")}
    per_target = []
    for column in ["weight"] + (["jacobian"] if jacobian is not None else []):
        scored = pd.DataFrame({"source": table["source"], "target": table["target"],
                               "weight": table[column]})
        result = validate_lightup(scored, known, expression=expression if column == "weight" else None,
                                  genes=genes, label=summary["known"])
        summary[column] = _summary(result)
        per_target.append(result["per_target"].assign(method=column))
    atomic_write_json(run_dir / "lightup_validation.json", summary)
    frame = pd.concat(per_target, ignore_index=True)
    atomic_write_with(run_dir / "lightup_validation_per_target.csv",
                      lambda tmp: frame.to_csv(tmp, index=False))
    s = summary["weight"]
    log.info(f"vs {summary['known']} ({s['n_known_pairs_used']} known of {s['n_pairs']} scored pairs): "
             f"sign agreement {s['sign_agreement']:.3f} (n={s['sign_n']}, p={s['sign_p']:.2g}), "
             f"targets with p<0.05 {s['frac_targets_p05']:.3f}")
    for name, part in [("light-up", s), ("|Spearman| control", s["correlation"])] + (
            [("Jacobian", summary["jacobian"])] if "jacobian" in summary else []):
        log.info(f"  {name:<18} AUROC {part['auroc']:.3f}  AUPRC ratio {part['auprc_ratio']:.2f}  "
                 f"EPR {part['epr']:.2f}")
    return summary
