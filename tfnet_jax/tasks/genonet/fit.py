"""GenoNet's fitting procedure: the fold x gene-block trainer loop (the elastic nets and the
fit cache: `enet_fits.py`).

GenoNet trains one model per outer fold and gene block. Blocks of one variant bucket share
their shapes, so one `Trainer` (one compiled step) per bucket serves them: `fit_genonet`
walks folds x blocks and calls `trainer.reset(context=...)` for each, and `fit_gene_block` is the visible loop that
steps, evaluates every `eval_every` steps and early-stops per gene (a forked trainer in
big_vision's sense: no callback rewrites the training context).

Each fold x block fit is one unit of the run's `FitCache` (enet_fits.py), so a killed run
redoes only its missing units.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from tfnet_jax.train import metrics_log
from tfnet_jax.data.genotype.blocks import fold_targets
from tfnet_jax.errors import ConfigError, TrainingError
from tfnet_jax.maths import per_gene_r2
from tfnet_jax.models.genonet import elastic_net_path, epistasis_path, linear_part
from tfnet_jax.schemas.typed import RunConfig
from tfnet_jax.tasks.genonet import prepare as task
from tfnet_jax.tasks.genonet.enet_fits import FitCache
from tfnet_jax.tasks.genonet.compact import Trainers, compact_size, subset_state, take_genes
from tfnet_jax.train.engine import Trainer

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- the gene-block loop
@dataclass
class BlockFit:
    """One fold x block: the kept per-gene parameters and the loop's summary."""
    snapshot: dict[str, np.ndarray]  # effective parameters [G, ...] at each gene's best evaluation
    best_r2: np.ndarray              # [G] validation R^2 of the kept parameters
    kept_step: np.ndarray            # [G] step of the kept parameters (0: the start, never beaten)
    stop_step: np.ndarray            # [G] step at which each gene left the loss (-1: never)
    step: int                        # steps run
    best_step: int | None            # last step at which some gene improved
    best_score: float | None         # mean kept validation R^2 over the block's real genes then
    evals: int


def fit_gene_block(trainer: Trainer, fold: task.FoldBlock, train_rows: np.ndarray,
                   valid_rows: np.ndarray, score_start: bool = False, margin: float = 0.0,
                   trainers: Trainers | None = None) -> BlockFit:
    """Train one fold x block from the trainer's initial state, with per-gene early stopping.

    Every `eval_every` steps (and at `max_steps`) each gene is scored on the validation rows;
    a gene that improved has its effective parameters kept, a gene `patience` evaluations
    without improvement leaves the loss (context `active` = 0, via `trainer.set_context`).
    The loop ends when no gene is active or at `max_steps`. `score_start`: evaluate step 0
    too, so a gene the network cannot improve keeps its (elastic-net) start; the network then
    replaces the start only where it scores `margin` (validation R^2) above it: the best of many
    evaluations on few rows is optimistic, so a tie would mostly keep noise. `trainers`
    (tasks/genonet/compact.py): once half the genes or fewer are active, go on with only them
    in a smaller block (None: the block keeps its size).
    """
    cfg = trainer.cfg
    context = fold.context
    trainer.reset(context=context)
    train_arrays, valid_arrays = fold.rows(train_rows), fold.rows(valid_rows)
    y_valid = fold.y[valid_rows]
    linear = linear_part(context)
    real = context.active > 0
    genes = np.arange(len(real))  # the block's genes in the trained block, slot by slot
    best_r2 = np.full(len(real), -np.inf)
    kept_step = np.full(len(real), -1)
    bad = np.zeros(len(real), np.int64)
    stop_step = np.full(len(real), -1)
    snapshot: dict[str, np.ndarray] | None = None
    best_score = best_step = None
    evals = step = 0

    def evaluate(step: int) -> None:
        nonlocal context, snapshot, best_r2, bad, best_score, best_step, evals
        # NaN for a constant gene (and padding): it never improves, so it leaves after `patience`.
        r2 = per_gene_r2(trainer.predict(valid_arrays), y_valid[:, genes])
        active = context.active > 0
        bar = best_r2[genes]
        improved = active & (r2 > np.where(kept_step[genes] == 0, bar + margin, bar))
        params = jax.device_get(task.effective_params(trainer.model, context.annotations,
                                                      context.vmask, linear, context.screen))
        if snapshot is None:
            snapshot = {k: np.array(v) for k, v in params.items()}
        for name in snapshot:
            snapshot[name][genes[improved]] = np.asarray(params[name])[improved]
        best_r2[genes[improved]] = r2[improved]
        kept_step[genes[improved]] = step
        bad[genes] = np.where(improved, 0, bad[genes] + 1)
        new_active = (active & (bad[genes] < cfg.patience)).astype(np.float32)
        stop_step[genes[active & (new_active == 0)]] = step
        if (new_active != context.active).any():  # same shapes: nothing recompiles
            context = context.replace(active=new_active)
            trainer.set_context(context)
        evals += 1
        kept = best_r2[real]
        score = float(np.mean(np.where(np.isfinite(kept), kept, 0.0)))
        if step > 0 and (best_score is None or score > best_score):
            best_score, best_step = score, step

    def compact() -> None:
        """Go on with the active genes only (compact.py), when they fill half the block or less."""
        nonlocal trainer, context, genes, linear, train_arrays, valid_arrays
        active = np.flatnonzero(context.active > 0)
        size = compact_size(len(active), len(genes))
        if trainers is None or size is None:
            return
        slots = np.concatenate([active, np.flatnonzero(context.active == 0)[:size - len(active)]])
        context = take_genes(context, slots)
        genes = genes[slots]
        linear = linear_part(context)
        train_arrays, valid_arrays = (take_genes(train_arrays, slots, axis=1),
                                      take_genes(valid_arrays, slots, axis=1))
        state = jax.device_get(trainer.state)
        trainer = trainers.get(fold.block, size, context)
        trainer.reset(subset_state(state, trainer.initial_state, slots), context)

    if score_start:
        evaluate(0)
    losses = []
    while step < cfg.max_steps and context.active.any():
        loss, _ = trainer.step(trainer.train_batch(train_arrays, step), step)
        losses.append(loss)
        step += 1
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            if not np.all(np.isfinite(jax.device_get(losses))):
                raise TrainingError(f"non-finite training loss by step {step}; lower "
                                         f"train.learning_rate or check the data")
            losses = []
            evaluate(step)
            compact()
    if snapshot is None:  # max_steps below eval_every and no start score: keep the last state
        evaluate(step)
    return BlockFit(snapshot, best_r2, kept_step, stop_step, step, best_step, best_score, evals)


def predict_block(unit: dict[str, np.ndarray], dosage: np.ndarray, linear_skip: bool) -> np.ndarray:
    """A fold x block unit's kept parameters on raw dosages [n, G, P] (NaN: the fold's training
    mean) -> predictions [n, G] in data units."""
    dosage = np.where(np.isnan(dosage), unit["dosage_mean"], dosage).astype(np.float32)
    params = {k[len("param_"):]: jnp.asarray(v) for k, v in unit.items() if k.startswith("param_")}
    out = task.predict_snapshot(params, jnp.asarray(dosage), unit["mu"], unit["sd"], unit["vmask"],
                                linear_skip)
    return np.asarray(out, np.float64) * unit["y_sd"] + unit["y_mean"]


def start_predictions(fold: task.FoldBlock, dosage: np.ndarray, coef: np.ndarray,
                      intercept: np.ndarray) -> np.ndarray:
    """The frozen starts without the network on imputed dosages [n, G, P] -> [n, G] in data
    units: what step 0 predicts (the network's output layer is zero there), with the elastic
    net `coef` / `intercept` as the additive part, plus the context's epistasis start."""
    ctx = fold.context
    lin = task.linear_from_enet(fold, coef, intercept)
    out = elastic_net_path(dosage, lin["lin"], ctx.mu, ctx.sd, ctx.vmask) + lin["lin_b"]
    if ctx.epi_w is not None:
        out = out + epistasis_path(dosage, linear_part(ctx))
    return fold.unscale(np.asarray(out, np.float64))


def gate_epistasis(fold: task.FoldBlock, valid: np.ndarray, margin: float) -> dict[str, np.ndarray]:
    """The fold's epistasis start kept only for genes where it adds more than `margin` R^2 to
    the additive start on the early-stopping rows (which neither saw); zero weights elsewhere,
    so a gene with additive genetics keeps its elastic net rather than fitted noise."""
    ctx = fold.context
    dosage, y = fold.dosage[valid], fold.y[valid]
    additive = task.additive_start(fold, dosage)
    both = additive + np.asarray(epistasis_path(dosage, linear_part(ctx)))
    keep = np.nan_to_num(per_gene_r2(both, y) - per_gene_r2(additive, y), nan=-np.inf) > margin  # NaN: constant
    return {"epi_w": np.where(keep[:, None], ctx.epi_w, 0.0).astype(np.float32),
            "epi_b": np.where(keep, ctx.epi_b, 0.0).astype(np.float32)}


def elastic_net_wins(fold: task.FoldBlock, valid: np.ndarray, genonet_r2: np.ndarray,
                     margin: float = 0.0) -> np.ndarray:
    """[G] whether the fold's additive elastic-net start scores at least GenoNet's kept model
    less `margin` on the early-stopping rows (neither was fitted on them): the per-gene choice."""
    enet_r2 = per_gene_r2(task.additive_start(fold, fold.dosage[valid]), fold.y[valid])
    return np.nan_to_num(enet_r2, nan=-np.inf) >= np.nan_to_num(genonet_r2, nan=-np.inf) - margin


def genonet_unit(name: str, fold: int, block: int) -> str:
    return f"{name}/fold{fold}_block{block}"


def fit_genonet(cfg: RunConfig, prepared, annotations: bool, cache: FitCache,
                enet: dict | None, log_file: Path | None) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Held-out predictions [G, n] of GenoNet trained per outer fold x gene block, whether
    the per-gene choice takes the elastic net there [G, n] (`elastic_net_wins` on the fold's
    early-stopping rows), and one record per unit. Units found in `cache` are read, the rest trained on one Trainer.

    enet: fit_elastic_net's output; with model.linear_init=elastic_net each fold starts from
    that fold's elastic-net start (`coef_start`: fitted without the held-out fold and without
    the fold's early-stopping rows), scored at step 0 so a gene the network cannot improve
    keeps it (the unit's `kept_step` is then 0); each unit then also holds `held_starts`, the
    held-out predictions of those starts without the network (`start_predictions`).
    """
    model_cfg, train_cfg = cfg.model, cfg.train
    data, blocks, folds = prepared.data, prepared.blocks, prepared.folds
    name = "genonet" if annotations else "genonet_noannot"
    en_start = model_cfg.linear_init == "elastic_net"
    if en_start and (enet is None or "coef_start" not in enet):
        raise ConfigError("model.linear_init=elastic_net: needs the per-fold elastic-net fits")
    linear_skip = model_cfg.linear_skip
    pred = np.zeros((len(prepared.genes), len(folds)))
    use_enet = np.zeros(pred.shape, bool)
    records = []
    trainers = Trainers(lambda block, size, context: Trainer(  # one compile per block shape and size
        task.build_model(model_cfg, block, annotations, cfg.seed, size), train_cfg,
        loss_fn=task.make_loss_fn(model_cfg.l1, block.size), predict_fn=task.predict_fn, context=context))
    for c in range(folds.max() + 1):
        held = np.flatnonzero(folds == c)
        valid = prepared.valid_rows[c]
        train_mask = (folds != c)
        train_mask[valid] = False
        y_all = None
        start = 0
        for b, block in enumerate(blocks):
            real = slice(start, start + len(block.genes))
            start += len(block.genes)
            unit_name = genonet_unit(name, c, b)
            unit = cache.get(unit_name)
            if unit is None:
                if y_all is None:
                    y_all = fold_targets(data, train_mask)  # covariates fitted on training rows
                cols = [data.expression.columns.get_loc(g) for g in block.genes]
                fold = task.prepare_fold(block, y_all[:, cols], train_mask, annotations)
                if en_start:
                    fold.context = fold.context.replace(**task.linear_from_enet(
                        fold, enet["coef_start"][c][real], enet["intercept_start"][c][real]))
                if en_start and model_cfg.epistasis_variants:
                    fold.context = fold.context.replace(**task.fit_epistasis(
                        fold, train_mask, enet["coef_start"][c][real], model_cfg.epistasis_variants,
                        model_cfg.elastic_net, cfg.seed))
                    fold.context = fold.context.replace(**gate_epistasis(fold, valid, model_cfg.keep_margin))
                width = task.screen_width(model_cfg, block)
                if width is not None:  # chosen on the start's training rows, never the stopping rows
                    fold.context = fold.context.replace(screen=task.screen_variants(
                        fold, train_mask, width, enet["coef_start"][c][real] if en_start else None))
                    if not model_cfg.linear_trainable:  # a trainable path needs every variant
                        task.prescreen(fold)
                trainer = trainers.get(block, block.size, fold.context)
                fit = fit_gene_block(trainer, fold, np.flatnonzero(train_mask), valid, score_start=en_start,
                                     margin=model_cfg.keep_margin, trainers=trainers)
                record = {"fit": f"{name}/fold{c}/block{b}", "step": fit.step, "best_step": fit.best_step,
                          "best_score": fit.best_score, "evals": fit.evals}
                if en_start and not model_cfg.linear_trainable:
                    # Predict with the fold's own elastic net (all its training rows, the stopping
                    # rows included) as the additive part: the start left them out only to judge.
                    fit.snapshot.update(task.linear_from_enet(fold, enet["coef_folds"][c][real],
                                                              enet["intercept_folds"][c][real]))
                ctx = fold.context
                unit = {"mu": ctx.mu, "sd": ctx.sd, "vmask": ctx.vmask, "y_mean": fold.y_mean,
                        "y_sd": fold.y_sd, "dosage_mean": fold.dosage_mean, "kept_step": fit.kept_step,
                        **({"elastic_net_wins": elastic_net_wins(fold, valid, fit.best_r2, model_cfg.keep_margin)}
                           if en_start else {}),
                        **{f"param_{k}": v for k, v in fit.snapshot.items()}}
                unit["held"] = predict_block(unit, fold.dosage[held], linear_skip)[:, :len(block.genes)]
                if en_start:  # the "starts only" arm, with the same additive part as held-out GenoNet
                    unit["held_starts"] = start_predictions(fold, fold.dosage[held], enet["coef_folds"][c][real],
                                                            enet["intercept_folds"][c][real])[:, :len(block.genes)]
                unit["record"] = np.asarray(json.dumps(record))
                cache.put(unit_name, unit)
            pred[real, held] = unit["held"].T
            if "elastic_net_wins" in unit:
                use_enet[np.ix_(np.arange(real.start, real.stop), held)] = \
                    unit["elastic_net_wins"][:len(block.genes)][:, None]
            records.append(json.loads(str(unit["record"])))
            if log_file is not None:  # cached units too: the log was reset when the fit began
                metrics_log.append(log_file, records[-1])
    return pred, use_enet, records
