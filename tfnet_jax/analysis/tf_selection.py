"""Core TFs: how few TFs keep most of the explained variance?

1. Rank every TF once on the trained full model (mean |light-up| over targets, or mean
   |gradient| at training samples).
2. Candidate sets are nested prefixes of that ranking, shrinking geometrically: n, then
   each time the least important `drop_fraction` of the previous set switched off, down
   to `min_tfs` (the sizes backward elimination visits: about log(n / min_tfs) sets).
   An off TF sits at its training mean (0 in the model's standardised inputs), so
   switching TFs off is multiplying the inputs by a 0/1 mask: no shape changes.
3. ONE fine-tune, warm-started from the full model through the shared engine, teaches
   the network to predict from every candidate set: each training example gets one of
   the sets' masks at random (nested dropout), so the model learns to use the kept TFs
   in place of those switched off, as a retrain per set would, at the cost of one.
4. Every set is scored on validation and test samples by one jit-compiled function that
   takes all the masks at once (vmapped), accumulating per-target squared errors.

Row 0 is the trained full model itself (all TFs, its own weights); the smallest sets
keeping 80% and 95% of its validation variance explained are chosen on VALIDATION
samples and reported on test samples. Cost: one importance pass, `steps` training steps
and (number of sets) x (held-out samples) forward passes: linear in the TF count for a
fixed model, with a fixed number of compilations (one fine-tune step, one scorer).
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from flax import nnx

from tfnet_jax.analysis import lightup as lu
from tfnet_jax.analysis import require_family
from tfnet_jax.atomic import atomic_write_json, atomic_write_with
from tfnet_jax.eval.regression import expression_metrics, r2_summary
from tfnet_jax.eval.plots import core_tf_curve
from tfnet_jax.schemas.commands import IMPORTANCE, CoreTFsOptions, make_options
from tfnet_jax.train.compiles import CompileCounter
from tfnet_jax.train.engine import Trainer
from tfnet_jax.train.losses import masked_mean

log = logging.getLogger(__name__)
SCORE_KEYS = ("variance_explained", "r2_median")
MONITOR = "valid/variance_explained"  # mean over the candidate sets, during the fine-tune


# ---------------------------------------------------------------- importance (once)
def gradient_importance(model: nnx.Module, x: np.ndarray, chunk: int | None = None) -> np.ndarray:
    """Per TF: mean over samples and targets of |d target / d TF| (standardised units).

    Samples go through in fixed-size padded chunks (one compile); a chunk's Jacobians
    [chunk, targets, TFs] are kept under ~200M floats, forward- or reverse-mode,
    whichever takes fewer passes."""
    forward, state = lu.pure_forward(model)
    num_tfs = x.shape[1]
    num_targets = int(jax.eval_shape(lambda s, v: forward(s, v), state,
                                     jax.ShapeDtypeStruct((1, num_tfs), jnp.float32)).shape[-1])
    chunk = chunk or int(max(1, min(64, 2e8 // (num_tfs * num_targets))))
    jac = jax.jacfwd if num_tfs <= num_targets else jax.jacrev

    @jax.jit
    def per_chunk(state, x, rows):
        f = lambda v: forward(state, v[None])[0]  # noqa: E731
        return (jnp.abs(jax.vmap(jac(f))(x)).mean(axis=1) * rows[:, None]).sum(axis=0)

    total = np.zeros(num_tfs, np.float64)
    for start in range(0, len(x), chunk):
        index = np.arange(start, start + chunk)
        rows = (index < len(x)).astype(np.float32)
        total += np.asarray(per_chunk(state, jnp.asarray(x[index % len(x)]), jnp.asarray(rows)))
    return total / len(x)


def tf_importance(model: nnx.Module, prepared, method: str, max_samples: int = 512) -> np.ndarray:
    """Importance of every TF on the trained model (light-up at +1 sd, or mean |gradient|)."""
    if method == "lightup":
        deltas = lu.perturbation_sizes(prepared.x_sd, "sd", k=1.0)
        return lu.importance(lu.lightup_matrix(model, deltas, prepared.y_sd), prepared.y_sd)
    if method == "gradient":
        return gradient_importance(model, prepared.inputs("train")[:max_samples])
    raise ValueError(f"importance={method!r}; expected one of {IMPORTANCE}")


# ---------------------------------------------------------------- candidate sets
def nested_sizes(num_tfs: int, drop_fraction: float = 0.2, min_tfs: int = 5) -> list[int]:
    """Set sizes, largest first: each drops round(drop_fraction x size) TFs (at least one)."""
    if not 0 < drop_fraction < 1:
        raise ValueError(f"drop_fraction={drop_fraction} must be in (0, 1)")
    sizes = [int(num_tfs)]
    while sizes[-1] > min_tfs:
        k = sizes[-1]
        sizes.append(k - min(max(1, int(round(drop_fraction * k))), k - min_tfs))
    return sizes


def nested_masks(scores: np.ndarray, sizes: list[int]) -> np.ndarray:
    """[sets, TFs] 0/1 masks: set i keeps the sizes[i] highest-scoring TFs (ties: lower index)."""
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    position = np.empty(len(order), np.int64)
    position[order] = np.arange(len(order))
    return (position[None, :] < np.asarray(sizes)[:, None]).astype(np.float32)


def nested_loss(model, batch, context, key):
    """MSE with every example's TFs masked by one of `context['masks']`, drawn at random."""
    pick, dropout = jax.random.split(key)
    masks = context["masks"]
    chosen = jax.random.randint(pick, (batch["x"].shape[0],), 0, masks.shape[0])
    pred = model(batch["x"] * masks[chosen], deterministic=False, rngs=nnx.Rngs(dropout=dropout))
    mse = masked_mean(jnp.mean((pred - batch["target"]) ** 2, axis=-1), batch["mask"])
    return mse, {"mse": mse}


def _predict(model, batch, context):
    return model(batch["x"], deterministic=True)


# ---------------------------------------------------------------- scoring every set at once
@functools.partial(jax.jit, static_argnums=(0, 6))
def _set_sse(graphdef, state, x, y, rows, masks, nested):
    """[sets, targets]: squared error summed over the real `rows` of one chunk, per mask."""
    model, _ = nnx.merge(graphdef, state)
    linear = None
    if nested and getattr(model, "skip", None) is not None:  # TFNet's linear path, all sets at once
        linear = _nested_linear(x * model.input_mask[...], model.skip[...], masks)
        model.skip = None  # this traced copy runs the MLP alone; its linear path is `linear`

    def one(mask, lin):
        pred = model(x * mask, deterministic=True)
        pred = pred if lin is None else pred + lin
        return (jnp.square(pred - y) * rows[:, None]).sum(axis=0)
    return jax.vmap(one)(masks, linear)


def _nested_linear(x, weight, masks):
    """[sets, rows, outputs]: (x * mask) @ weight for NESTED masks at about the cost of one
    product: the TFs in nesting order, cut into <= 32 blocks; a set is a run of whole blocks
    (a sum of the blocks' products) plus one partial block."""
    n, num_sets = x.shape[1], masks.shape[0]
    size_b = -(-n // 32)
    blocks = -(-n // size_b)
    pad = blocks * size_b - n
    order = jnp.argsort(-masks.sum(axis=0), stable=True)
    xs = jnp.pad(x[:, order], ((0, 0), (0, pad))).reshape(x.shape[0], blocks, size_b)
    ws = jnp.pad(weight[order], ((0, pad), (0, 0))).reshape(blocks, size_b, -1)
    ms = jnp.pad(masks[:, order], ((0, 0), (0, pad))).reshape(num_sets, blocks, size_b)
    whole = jnp.round(masks.sum(axis=1)).astype(jnp.int32) // size_b  # whole blocks per set
    taken = (jnp.arange(blocks)[None, :] < whole[:, None]).astype(x.dtype)
    out = jnp.einsum("kB,BrT->krT", taken, jnp.einsum("rBb,BbT->BrT", xs, ws))
    part = jnp.minimum(whole, blocks - 1)  # the partial block (none when every block is whole)
    scale = ms[jnp.arange(num_sets), part] * (whole < blocks)[:, None].astype(x.dtype)
    return out + jnp.einsum("rkb,kb,kbT->krT", xs[:, part], scale, ws[part])


class SetScorer:
    """Held-out metrics of many TF sets of one trainer's model, in one compiled pass."""

    def __init__(self, prepared, splits=("valid", "test"), chunk: int = 64):
        self.chunk = chunk
        self.y_var = np.square(np.asarray(prepared.y_sd, np.float64))
        self.data = {}
        for split in splits:
            rows = prepared.rows(split)
            truth = np.asarray(prepared.targets(split), np.float64)
            constant = truth.max(axis=0) == truth.min(axis=0)
            sst = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
            self.data[split] = (rows["x"], rows["target"], sst, constant)

    def sse(self, trainer: Trainer, masks: np.ndarray, split: str) -> np.ndarray:
        """[sets, targets] squared error in the data's units."""
        x, y, _, _ = self.data[split]
        by_size = masks[np.argsort(-masks.sum(axis=1), kind="stable")]
        nested = bool(np.all(by_size[:-1] >= by_size[1:]))  # each set inside the next larger
        masks = jnp.asarray(masks, jnp.float32)
        total = np.zeros((len(masks), y.shape[1]), np.float64)
        for start in range(0, len(x), self.chunk):  # fixed chunk, last one padded: one compile
            index = np.arange(start, start + self.chunk)
            rows = (index < len(x)).astype(np.float32)
            index = np.minimum(index, len(x) - 1)
            total += np.asarray(_set_sse(trainer.graphdef, trainer.state, jnp.asarray(x[index]),
                                         jnp.asarray(y[index]), jnp.asarray(rows), masks, nested))
        return total * self.y_var[None, :]

    def metrics(self, trainer: Trainer, masks: np.ndarray, split: str) -> list[dict]:
        """Per set: variance explained and median per-target R^2, as expression_metrics."""
        _, _, sst, constant = self.data[split]
        out = []
        for sse in self.sse(trainer, masks, split):
            with np.errstate(divide="ignore", invalid="ignore"):
                r2 = np.where(constant, np.nan, 1.0 - sse / np.where(constant, 1.0, sst))
            total = sst.sum()
            out.append({"variance_explained": float(1.0 - sse.sum() / total) if total > 0 else math.nan,
                        "r2_median": r2_summary(r2)["r2_median"]})
        return out


# ---------------------------------------------------------------- the selection
def select_core_tfs(trainer: Trainer, prepared, *, steps: int = 600, importance: str = "lightup",
                    drop_fraction: float = 0.2, min_tfs: int = 5, evals: int = 2,
                    scores: np.ndarray | None = None) -> pd.DataFrame:
    """One row per candidate set, largest first: n_tfs, valid/test variance explained and
    R^2 median, the TFs kept. `trainer` holds the trained full model (left untouched);
    `steps`: the one nested fine-tune's training steps (its other settings are the run's:
    batch size, learning rate, schedule, weight decay), evaluated `evals` times on the
    validation samples (mean variance explained over the sets) keeping the best.
    `scores`: precomputed TF importance (default: computed by `importance`).
    `table.attrs` records the fine-tune and the compile counts."""
    tf_genes = np.asarray(prepared.data.tf_genes)
    model = trainer.model
    if not np.all(np.asarray(model.input_mask[...]) == 1):
        raise ValueError("select_core_tfs needs a full model (its input_mask all ones)")
    sizes = nested_sizes(len(tf_genes), drop_fraction, min_tfs)
    if scores is None:
        scores = tf_importance(model, prepared, importance)
    masks = nested_masks(scores, sizes)

    rows = [_full_row(trainer, prepared, tf_genes)]
    attrs = {"importance": importance, "sizes": sizes, "fine_tune_steps": 0}
    if len(sizes) > 1:
        subsets = masks[1:]
        scorer = SetScorer(prepared)
        with CompileCounter() as compiles:
            tuned, valid = _fine_tune(trainer, prepared, subsets, scorer, steps, evals)
            per_split = {"valid": valid, "test": scorer.metrics(tuned, subsets, "test")}
        for i, mask in enumerate(subsets):
            row = {"n_tfs": int(mask.sum())}
            for split in ("valid", "test"):
                row.update({f"{split}_{k}": per_split[split][i][k] for k in SCORE_KEYS})
            row["tfs"] = ",".join(tf_genes[mask > 0].tolist())
            rows.append(row)
        attrs.update(fine_tune_steps=int(steps), compiles={
            "fine_tune_step": compiles["train_step"], "set_scorer": compiles["_set_sse"]})
    table = pd.DataFrame(rows)
    table.attrs.update(attrs)
    for row in rows:
        log.info("core TFs: %d TFs, valid variance explained %.3f", row["n_tfs"],
                 row["valid_variance_explained"])
    return table


def _full_row(trainer, prepared, tf_genes) -> dict:
    row = {"n_tfs": len(tf_genes)}
    for split in ("valid", "test"):
        pred = prepared.unscale(trainer.predict({"x": prepared.inputs(split)}))
        metrics = expression_metrics(pred, prepared.targets(split))
        row.update({f"{split}_{k}": metrics[k] for k in SCORE_KEYS})
    row["tfs"] = ",".join(tf_genes.tolist())
    return row


def _fine_tune(trainer: Trainer, prepared, masks: np.ndarray, scorer: SetScorer, steps: int,
               evals: int) -> tuple[Trainer, list[dict]]:
    """One trainer, warm-started from a copy of the full model, fit on every set at once;
    returns it (holding its best weights) and their per-set validation metrics."""
    if steps < 1:
        raise ValueError(f"steps={steps}: the nested fine-tune needs at least one step")
    start = nnx.merge(trainer.graphdef, jax.device_get(trainer.state))[0]  # a copy: steps donate
    cfg = dataclasses.replace(trainer.cfg, max_steps=int(steps), warmup_steps=0, progress=False,
                              eval_every=max(1, int(steps) // max(1, evals)), monitor=MONITOR,
                              monitor_mode="max")
    tuned = Trainer(start, cfg, loss_fn=nested_loss, predict_fn=_predict,
                    context={"masks": jnp.asarray(masks)})

    seen = []  # (monitor score, per-set metrics) of every evaluation

    def evaluate(tr):
        metrics = scorer.metrics(tr, masks, "valid")
        seen.append((float(np.mean([m["variance_explained"] for m in metrics])), metrics))
        return {MONITOR: seen[-1][0]}
    meta = tuned.fit(prepared.rows("train"), evaluate)
    best = [metrics for score, metrics in seen if score == meta["best_score"]]
    return tuned, (best[0] if best else scorer.metrics(tuned, masks, "valid"))


def smallest_sets(table: pd.DataFrame, keep=(0.8, 0.95)) -> dict:
    """For each share in `keep`: the smallest set whose VALIDATION variance explained keeps
    that share of the full model's, with its test figures."""
    full = table.iloc[0]
    out = {}
    for share in keep:
        ok = table[table["valid_variance_explained"] >= share * full["valid_variance_explained"]]
        best = ok.loc[ok["n_tfs"].idxmin()]
        out[f"{int(round(share * 100))}%"] = {
            "n_tfs": int(best["n_tfs"]),
            "valid_share_of_full": float(best["valid_variance_explained"] / full["valid_variance_explained"]),
            "test_share_of_full": float(best["test_variance_explained"] / full["test_variance_explained"]),
            "tfs": best["tfs"].split(",")}
    return out


def run_core_tfs(run, **options) -> dict:
    """Core TFs of a trained TFNet run (`tfnet_jax.load_run`), options as `CoreTFsOptions`.

    Writes RUN/core_tfs.csv (one row per set: number of TFs, valid/test variance explained, the
    TFs kept), RUN/core_tfs.json (the smallest sets keeping the `keep` shares of the full
    model's fit; on synthetic data, the share of planted master TFs each holds) and
    RUN/figures/core_tfs.png; returns the smallest sets.
    """
    opts = make_options(CoreTFsOptions, options)
    opts.check()
    require_family(run, "tfnet")
    run_dir, prepared = run.run_dir, run.prepared
    table = select_core_tfs(run.trainer, prepared, steps=opts.retrain_steps, importance=opts.importance,
                            drop_fraction=opts.drop_fraction, min_tfs=opts.min_tfs)
    sets = smallest_sets(table, tuple(opts.keep))
    core = prepared.data.extras.get("core_tfs")
    if core is not None:  # synthetic: recall of the planted masters
        for chosen in sets.values():
            chosen["planted_core_recall"] = len(set(core) & set(chosen["tfs"])) / len(core)
    atomic_write_with(run_dir / "core_tfs.csv", lambda tmp: table.to_csv(tmp, index=False))
    atomic_write_json(run_dir / "core_tfs.json", {"importance": opts.importance, "sets": sets})
    core_tf_curve(table, run_dir / "figures" / "core_tfs.png")
    for share, chosen in sets.items():
        recall = (f", planted core recall {chosen['planted_core_recall']:.2f}"
                  if "planted_core_recall" in chosen else "")
        log.info(f"smallest set keeping {share} of validation variance explained: {chosen['n_tfs']} TFs "
                 f"(test share {chosen['test_share_of_full']:.3f}{recall})")
    return sets
