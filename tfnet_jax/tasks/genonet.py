"""GenoNet family run: cis genotypes -> expression per gene, against elastic net (TWAS stage 1).

Every method is scored on the same outer folds (split by individual): each individual's
held-out prediction comes from the model of the fold that held it out, and a gene's
held-out R^2 is the squared Pearson r (and 1 - SSE/SST, `r2sse_*`) of those predictions.
Writes in the run dir: `genes.csv` (one row per gene), `weights.csv` (elastic net refit on
all individuals: the stage-2 weights), `folds.csv`, `fits/*.npz` (finished fits, so a
re-run resumes), `metrics.jsonl` (one record per GenoNet fit) and `metrics.json` (last).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from scipy import stats

from tfnet_jax.atomic import atomic_write_json, atomic_write_with
from tfnet_jax.data.dataset import DataError
from tfnet_jax.data.genotypes import GenotypeData, load_genotype_data
from tfnet_jax.models.elastic_net import cv_r2, enet_path, fit_nested_cv, heritable_filter
from tfnet_jax.tasks import genotype as task
from tfnet_jax.train.engine import Trainer, TrainConfig

log = logging.getLogger(__name__)
METHODS = ("genonet", "genonet_noannot", "elastic_net", "elastic_net_annot")
GENE_COLUMNS = ["gene", "n_variants", "heritable", *(f"r2_{m}" for m in METHODS)]
EN_KEYS = ("alpha", "inner_folds", "n_lambdas", "max_iter", "tol", "block")


# ---------------------------------------------------------------- data
def load_data(data_cfg: dict, run_dir: Path | None) -> GenotypeData:
    name = data_cfg.get("name")
    rest = {k: v for k, v in data_cfg.items() if k != "name"}
    if name == "genosim":
        return load_genosim(rest, run_dir)
    if name == "genotypes":
        for key in ("bed", "expression", "genes"):
            if rest.get(key) in (None, "???"):
                raise DataError(f"data.{key}: required for data=genotypes (data.bed=PREFIX "
                                f"data.expression=FILE data.genes=FILE [data.annotations=FILE])")
        return load_genotype_data(rest)
    raise DataError(f"data.name={name!r}: model=genonet reads data=genosim or data=genotypes")


def load_genosim(values: dict, run_dir: Path | None) -> GenotypeData:
    """Simulate (or reuse a cache with the same config), then read through the PLINK loader."""
    from tfnet_jax.data.genosim import GenoSimConfig, load_simulated

    values = dict(values)
    cache = values.pop("cache", None)
    sim_cfg = GenoSimConfig(**values)
    out = Path(cache) if cache else (Path(run_dir) / "sim" if run_dir else None)
    if out is None:
        raise DataError("data=genosim needs data.cache=DIR or a run dir")
    truth_file = out / "truth.json"
    if truth_file.exists():
        import dataclasses
        truth = json.loads(truth_file.read_text())
        if truth.get("config") == json.loads(json.dumps(dataclasses.asdict(sim_cfg))):
            data = load_genotype_data({"bed": str(out / "geno"), "expression": str(out / "expression.csv"),
                                       "genes": str(out / "genes.csv"),
                                       "annotations": str(out / "annotations.csv"),
                                       "window": sim_cfg.region_length})
            data.source = f"genosim:{out}"
            data.extras = {"truth": truth, "trait": str(out / "trait.csv")}
            return data
    return load_simulated(sim_cfg, out)


# ---------------------------------------------------------------- elastic net
def annotation_penalty(blocks, coef: np.ndarray, genes_half: np.ndarray) -> np.ndarray | None:
    """Penalty factors [G, P] from annotations, learned on the OTHER half of the genes.

    A logistic model of 'variant has a non-zero elastic-net weight' on the annotations is
    fitted on one half of the genes and applied to the other (and vice versa), so no gene's
    own expression shapes its penalties. Factor = 1 / predicted probability (glmnet then
    rescales the factors to mean 1 per gene).
    """
    if blocks[0].annotations is None:
        return None
    from sklearn.linear_model import LogisticRegression

    annot = np.concatenate([b.annotations[:len(b.genes)] for b in blocks])  # [G, P, k]
    vmask = np.concatenate([b.vmask[:len(b.genes)] for b in blocks])
    pf = np.ones(vmask.shape, np.float64)
    for half in (0, 1):
        fit_genes, apply_genes = genes_half != half, genes_half == half
        a = annot[fit_genes][vmask[fit_genes]]
        label = (coef[fit_genes][vmask[fit_genes]] != 0).astype(int)
        if label.min() == label.max():
            continue  # nothing to learn from: flat penalties
        prob = LogisticRegression(C=1.0).fit(a, label).predict_proba(
            annot[apply_genes].reshape(-1, annot.shape[-1]))[:, 1]
        pf[apply_genes] = 1.0 / np.maximum(prob.reshape(-1, annot.shape[1]), 1e-3)
    return np.where(vmask, pf, 1.0)


def run_elastic_net(data: GenotypeData, blocks, folds: np.ndarray, en_cfg: dict, seed: int,
                    penalty=None) -> dict:
    """Held-out predictions [G, n], final weights [G, P] and per-outer-fold weights on the shared folds.

    Without missing dosages or covariates one nested-CV call serves every fold; otherwise one
    call per outer fold (imputation / covariates fitted on that fold's training rows) plus
    one on all rows for the final weights. `coef_folds` [K, G, P] / `intercept_folds` [K, G]
    are each outer fold's model (its training rows only, its inner-CV lambda): GenoNet's
    frozen linear start on that fold.
    """
    x = np.concatenate([b.dosage[:, :len(b.genes)] for b in blocks], axis=1).transpose(1, 0, 2)
    vmask = np.concatenate([b.vmask[:len(b.genes)] for b in blocks])
    opts = dict(inner_k=int(en_cfg["inner_folds"]), alpha=float(en_cfg["alpha"]),
                n_lambdas=int(en_cfg["n_lambdas"]), max_iter=int(en_cfg["max_iter"]),
                tol=float(en_cfg["tol"]), block=int(en_cfg["block"]), seed=seed, penalty_factor=penalty)
    fold_dependent = bool(np.isnan(x).any()) or data.covariates is not None
    everyone = np.ones(len(folds), bool)

    def call(train):
        xi = np.where(vmask[:, None, :], task.impute_train_mean(x.transpose(1, 0, 2).reshape(len(folds), -1),
                                                                train).reshape(len(folds), *vmask.shape)
                      .transpose(1, 0, 2), 0.0)
        return fit_nested_cv(xi, vmask, task.fold_targets(data, train).T, folds, **opts)

    final = call(everyone)
    pred = final["pred"]
    k = folds.max() + 1
    coef_folds = np.zeros((k, *vmask.shape), np.float32)
    icpt_folds = np.zeros((k, len(vmask)), np.float32)
    if fold_dependent:
        pred = np.empty_like(pred)
        for c in range(k):
            fit = call(folds != c)
            pred[:, folds == c] = fit["pred"][:, folds == c]
            coef_folds[c], icpt_folds[c] = fit["coef"], fit["intercept"]
    else:
        # fit_nested_cv keeps only the final model's weights: refit each outer fold's training
        # rows at the lambda its inner CV chose (a short warm-started path ending there).
        xi = np.where(vmask[:, None, :], x, 0.0)
        y = task.fold_targets(data, everyone).T
        for c in range(k):
            lam = final["lambda_outer"][:, c:c + 1] * np.asarray([8.0, 4.0, 2.0, 1.0], np.float32)
            coef, icpt = enet_path(xi, vmask, y, lam, alpha=opts["alpha"], penalty_factor=penalty,
                                   rows=folds != c, tol=1e-5, max_iter=1000)
            coef_folds[c], icpt_folds[c] = coef[:, -1], icpt[:, -1]
    return {"pred": pred, "coef": final["coef"], "intercept": final["intercept"],
            "coef_folds": coef_folds, "intercept_folds": icpt_folds}


# ---------------------------------------------------------------- GenoNet
def run_genonet(cfg: DictConfig, data: GenotypeData, blocks, folds, annotations: bool,
                run_dir: Path, enet: dict | None = None) -> tuple[np.ndarray, list[dict]]:
    """Held-out predictions [G, n] of GenoNet trained per outer fold, and one record per fit.

    enet: run_elastic_net's output; with model.linear_init=elastic_net each fold starts from
    that fold's elastic net (`coef_folds`, fitted without the held-out fold).
    """
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    train_cfg = TrainConfig.from_dict(OmegaConf.to_container(cfg.train, resolve=True))
    n = len(folds)
    pred = np.zeros((sum(len(b.genes) for b in blocks), n))
    records = []
    rng = np.random.default_rng(cfg.seed)
    loss_fn = task.make_loss_fn(float(model_cfg["l1"]))
    trainer = fresh = None
    name = "genonet" if annotations else "genonet_noannot"
    en_start = model_cfg.get("linear_init", "zeros") == "elastic_net"
    if en_start and (enet is None or "coef_folds" not in enet):
        raise ValueError("model.linear_init=elastic_net needs the per-fold elastic-net fits")
    for c in range(folds.max() + 1):
        cache = run_dir / "fits" / f"{name}_fold{c}.npz"
        if cache.exists():  # a killed run resumes at the next unfinished fold
            with np.load(cache) as f:
                pred[:, folds == c] = f["pred"]
                records += json.loads(str(f["records"]))
            continue
        fold_records = []
        fit_rows = np.flatnonzero(folds != c)
        valid = rng.permutation(fit_rows)[: max(2, int(round(model_cfg["valid_frac"] * len(fit_rows))))]
        train = np.setdiff1d(fit_rows, valid)
        train_mask = np.zeros(n, bool)
        train_mask[train] = True
        y_all = task.fold_targets(data, train_mask)  # covariates fitted on training rows only
        start = 0
        for b, block in enumerate(blocks):
            cols = [data.expression.columns.get_loc(g) for g in block.genes]
            fold = task.prepare_fold(block, y_all[:, cols], train_mask, annotations)
            if en_start:
                real = slice(start, start + len(block.genes))
                fold.context.update(task.linear_from_enet(fold, enet["coef_folds"][c][real],
                                                          enet["intercept_folds"][c][real]))
            if trainer is None:
                model = task.build_model(model_cfg, block, annotations, cfg.seed)
                trainer = Trainer(model, train_cfg, loss_fn=loss_fn, predict_fn=task.predict_fn,
                                  context=fold.context, run_dir=None)
                fresh = jax.device_get(trainer.state)
            else:
                # Every fold and block has the same shapes: restart from the initial state with
                # the new context instead of building a Trainer whose steps would recompile.
                trainer.state = jax.device_put(fresh, trainer.replicated)
                trainer.context = jax.device_put(fold.context, trainer.replicated)
            stopper = task.GeneStopper(fold, valid, train_cfg.patience)
            if en_start:  # score the start: a gene the network cannot improve keeps the elastic net
                stopper.evaluate(trainer)
            meta = trainer.fit(fold.rows(train), stopper.evaluate)
            held = np.flatnonzero(folds == c)
            out = stopper.predict(held, bool(model_cfg["linear_skip"]))
            pred[start:start + len(block.genes), held] = out[:, :len(block.genes)].T
            start += len(block.genes)
            fold_records.append({"fit": f"{name}/fold{c}/block{b}", "step": meta["step"],
                                 "best_step": meta["best_step"], "best_score": meta["best_score"],
                                 "evals": stopper.evals})
            with (run_dir / "metrics.jsonl").open("a") as handle:
                handle.write(json.dumps(fold_records[-1]) + "\n")
        records += fold_records
        out = {"pred": pred[:, folds == c], "records": np.asarray(json.dumps(fold_records))}
        atomic_write_with(cache, lambda tmp, out=out: np.savez(tmp, **out))
    return pred, records


# ---------------------------------------------------------------- evaluation
def summary(r2: np.ndarray, r2sse: np.ndarray) -> dict[str, float]:
    ok = np.isfinite(r2)
    return {"r2_mean": float(np.mean(r2[ok])) if ok.any() else float("nan"),
            "r2_median": float(np.median(r2[ok])) if ok.any() else float("nan"),
            "r2sse_mean": float(np.nanmean(r2sse)) if ok.any() else float("nan"),
            "n_genes": int(ok.sum())}


def paired(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """a vs b per gene: fraction a > b, mean difference, Wilcoxon signed-rank p (two-sided)."""
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < 2 or np.all(a == b):
        return {"frac_better": float("nan"), "mean_diff": float("nan"), "wilcoxon_p": float("nan"), "n": int(len(a))}
    return {"frac_better": float(np.mean(a > b)), "mean_diff": float(np.mean(a - b)),
            "wilcoxon_p": float(stats.wilcoxon(a, b).pvalue), "n": int(len(a))}


def evaluate(genes: pd.DataFrame) -> dict:
    her = genes["heritable"].to_numpy(bool)
    tables = {}
    for m in METHODS:
        r2, r2sse = genes[f"r2_{m}"].to_numpy(float), genes[f"r2sse_{m}"].to_numpy(float)
        tables[m] = {"heritable_genes": summary(r2[her], r2sse[her]), "all_genes": summary(r2, r2sse)}
    col = {m: genes[f"r2_{m}"].to_numpy(float)[her] for m in METHODS}
    comparison = {"heritable_genes": int(her.sum()),
                  "genonet_vs_elastic_net": paired(col["genonet"], col["elastic_net"]),
                  "genonet_noannot_vs_elastic_net": paired(col["genonet_noannot"], col["elastic_net"]),
                  "annotation_gain_genonet": paired(col["genonet"], col["genonet_noannot"]),
                  "annotation_gain_elastic_net": paired(col["elastic_net_annot"], col["elastic_net"])}
    return {"model": tables["genonet"],
            "baselines": {m: tables[m] for m in METHODS if m != "genonet"},
            "comparison": comparison}


def format_table(metrics: dict) -> str:
    rows = [("genonet", metrics["model"])] + list(metrics["baselines"].items())
    lines = [f"{'method':<20}{'herit. r2 mean':>15}{'median':>9}{'all r2 mean':>13}{'median':>9}{'n herit.':>9}"]
    for name, t in rows:
        h, a = t["heritable_genes"], t["all_genes"]
        lines.append(f"{name:<20}{h['r2_mean']:>15.4f}{h['r2_median']:>9.4f}{a['r2_mean']:>13.4f}"
                     f"{a['r2_median']:>9.4f}{h['n_genes']:>9d}")
    comp = metrics["comparison"]
    g = comp["genonet_vs_elastic_net"]
    lines.append(f"GenoNet > elastic net on {g['frac_better']:.1%} of {comp['heritable_genes']} heritable "
                 f"genes (Wilcoxon p = {g['wilcoxon_p']:.3g}, mean diff {g['mean_diff']:+.4f})")
    for key, label in (("annotation_gain_genonet", "GenoNet"), ("annotation_gain_elastic_net", "elastic net")):
        a = comp[key]
        lines.append(f"annotation gain, {label}: mean {a['mean_diff']:+.4f} (Wilcoxon p = {a['wilcoxon_p']:.3g})")
    return "\n".join(lines)


# ---------------------------------------------------------------- run
def _cached(path: Path, compute):
    """Finished fits live in fits/*.npz, so an interrupted run redoes only what is missing."""
    if path.exists():
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    out = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_with(path, lambda tmp: np.savez(tmp, **out))
    return out


def run(cfg: DictConfig, run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    logging.getLogger("msprime").setLevel(logging.WARNING)  # one INFO line per simulated region
    data = load_data(OmegaConf.to_container(cfg.data, resolve=True), run_dir)
    model_cfg = cfg.model
    use_annot = bool(model_cfg.annotations) and data.annotation_names is not None
    blocks = task.make_blocks(data, int(model_cfg.genes_per_block))
    folds = task.outer_folds(data.individuals, int(model_cfg.outer_folds), int(cfg.seed))
    genes = [g for b in blocks for g in b.genes]
    log.info("data %s: %d individuals, %d genes (%d skipped), up to %d variants, %d block(s)",
             data.source, len(data.individuals), len(genes), len(data.skipped), blocks[0].vmask.shape[1],
             len(blocks))
    atomic_write_with(run_dir / "folds.csv", lambda tmp: pd.DataFrame(
        {"individual": data.individuals, "fold": folds}).to_csv(tmp, index=False))
    y = np.stack([task.fold_targets(data, folds != c)[:, :].T for c in range(folds.max() + 1)])
    truth = np.zeros((len(genes), len(folds)))  # each row held out with its fold's covariate fit
    for c in range(folds.max() + 1):
        truth[:, folds == c] = y[c][[data.expression.columns.get_loc(g) for g in genes]][:, folds == c]

    en_cfg = {k: model_cfg.elastic_net[k] for k in EN_KEYS}
    fits = run_dir / "fits"
    en = _cached(fits / "elastic_net.npz", lambda: run_elastic_net(data, blocks, folds, en_cfg, cfg.seed))
    pred = {"elastic_net": en["pred"]}
    if use_annot:
        half = np.asarray([i % 2 for i in range(len(genes))])
        pf = annotation_penalty(blocks, en["coef"], half)
        pred["elastic_net_annot"] = _cached(fits / "elastic_net_annot.npz", lambda: run_elastic_net(
            data, blocks, folds, en_cfg, cfg.seed, penalty=pf))["pred"]
    records = []
    for flag in ([True, False] if use_annot else [False]):
        name = "genonet" if flag else "genonet_noannot"

        def fit(flag=flag):
            p, recs = run_genonet(cfg, data, blocks, folds, flag, run_dir, en)
            return {"pred": p, "records": np.asarray(json.dumps(recs))}
        out = _cached(fits / f"{name}.npz", fit)
        pred[name] = out["pred"]
        records += json.loads(str(out["records"]))
    if not use_annot:
        pred["genonet"] = pred["genonet_noannot"]

    table = {"gene": genes, "n_variants": [int(m.sum()) for b in blocks for m in b.vmask[:len(b.genes)]]}
    rho, pval, heritable = heritable_filter(truth, en["pred"])
    table["heritable"] = heritable
    for m in METHODS:
        r2, r2sse = cv_r2(truth, pred[m]) if m in pred else (np.full(len(genes), np.nan),) * 2
        table[f"r2_{m}"], table[f"r2sse_{m}"] = r2, r2sse
    table["elastic_net_rho"], table["elastic_net_p"] = rho, pval
    frame = pd.DataFrame(table)
    frame = frame[GENE_COLUMNS + [c for c in frame.columns if c not in GENE_COLUMNS]]
    atomic_write_with(run_dir / "genes.csv", lambda tmp: frame.to_csv(tmp, index=False))
    write_weights(run_dir / "weights.csv", data, blocks, en["coef"])

    metrics = evaluate(frame)
    scores = [r["best_score"] for r in records if r["fit"].startswith("genonet/" if use_annot else "genonet_noannot/")]
    metrics["train"] = {"step": int(max(r["step"] for r in records)),
                        "best_step": int(np.median([r["best_step"] for r in records])),
                        "best_score": float(np.mean(scores)), "fits": len(records)}
    metrics["skipped"] = data.skipped
    metrics["settings"] = {"individuals": len(data.individuals), "genes": len(genes),
                           "outer_folds": int(model_cfg.outer_folds), "annotations": use_annot}
    atomic_write_json(run_dir / "metrics.json", metrics)  # last: marks the run done
    print(f"\nHeld-out R^2 (nested CV, {model_cfg.outer_folds} outer folds) in {run_dir}:")
    print(format_table(metrics))
    return metrics


def write_weights(path: Path, data: GenotypeData, blocks, coef: np.ndarray) -> None:
    rows = []
    windows = {w.gene: w for w in data.windows}
    i = 0
    for b in blocks:
        for gene in b.genes:
            w = windows[gene]
            v = len(w.variant_ids)
            nz = np.flatnonzero(coef[i, :v])
            rows.append(pd.DataFrame({"gene": gene, "variant": w.variant_ids[nz], "chrom": w.chrom,
                                      "position": w.positions[nz], "weight": coef[i, nz]}))
            i += 1
    frame = pd.concat(rows, ignore_index=True)
    atomic_write_with(path, lambda tmp: frame.to_csv(tmp, index=False))
