"""The GenoNet family: cis genotypes -> expression per gene, against the elastic net (TWAS stage 1).

Every method is scored on the same outer folds (split by individual): each individual's
held-out prediction comes from the model of the fold that held it out, and a gene's
held-out R^2 is the squared Pearson r (and 1 - SSE/SST, `r2sse_*`) of those predictions.
The fitting procedure (the fold x gene-block loop, the elastic nets, the one fit cache
RUN/fits/) is `tasks/genonet/fit.py`. Writes in the run dir: `folds.csv`, `genes.csv` (one
row per gene), the TWAS exports (`weights.csv`: the elastic net refit on all individuals,
with alleles; `predictdb.db`; `covariances.txt.gz`: `tasks/genonet/export.py`),
`metrics.jsonl` (one record per GenoNet fit); the orchestration writes `metrics.json` last.

Predictions for new genotypes (`predict`) are residual expression (covariates regressed
out, as in training): the elastic net's final weights, or GenoNet as the mean of its K
outer-fold models. Every variant of the run's gene windows must be present (matched by
variant id); a file input's dosages are aligned to the run's counted allele (alleles swapped
there, e.g. A1/A2 in a .bim: 2 - d; other alleles: an error), a missing variant is an error
naming it, a missing dosage gets the training mean.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tfnet_jax.train import metrics_log
from tfnet_jax.atomic import atomic_write_with
from tfnet_jax.data import splits
from tfnet_jax.data.genotype.blocks import (
    Block,
    block_dosages,
    concat_genes,
    fold_targets,
    make_blocks,
    real_genes,
)
from tfnet_jax.data.genotype.container import GenotypeData
from tfnet_jax.data.genotype.readers import read_dosages
from tfnet_jax.data.load import GENOTYPE_SOURCES, load_genotype_data
from tfnet_jax.errors import ConfigError, DataError, RunDirError
from tfnet_jax.schemas.typed import RunConfig
from tfnet_jax.tasks.genonet import enet_fits
from tfnet_jax.tasks.genonet import fit as fitting
from tfnet_jax.tasks.base import Fitted
from tfnet_jax.tasks.genonet.export import write_twas_exports
from tfnet_jax.tasks.genonet.scores import METHODS, evaluate, format_table, gene_table

# Scored on held-out rows only: per fold choices / arms with no model for new genotypes.
HELD_OUT_ONLY = ("genonet_choice", "genonet_starts")

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- split and prepared arrays
def split_settings(cfg: RunConfig) -> tuple[int, int]:
    """(outer folds, seed) from `split`."""
    split_cfg = cfg.split
    if split_cfg.folds is None:
        raise ConfigError("split.folds: model=genonet needs outer folds (split=genonet sets 5)")
    return split_cfg.folds, split_cfg.seed


@dataclass
class GenoNetSplit:
    folds: np.ndarray            # outer fold per individual
    valid_rows: list[np.ndarray]  # per fold: its early-stopping rows (the elastic net's inner fold 0)


@dataclass
class GenoNetPrepared:
    data: GenotypeData
    blocks: list[Block]
    folds: np.ndarray
    valid_rows: list[np.ndarray]
    genes: list[str]
    truth: np.ndarray  # [G, n] targets, each row as held out (its fold's covariate fit)
    use_annotations: bool


@dataclass
class GenoNetModels:
    """Held-out predictions per method, the fit records, and the fit cache (for new inputs)."""
    pred: dict[str, np.ndarray]
    records: list[dict]
    cache: enet_fits.FitCache
    linear_skip: bool
    network_folds: np.ndarray | None = None  # [G] folds whose kept GenoNet uses the network


class GenoNetFamily:
    name = "genonet"
    data_sources = GENOTYPE_SOURCES
    split_fields = ("seed", "folds")

    def check_config(self, groups: dict) -> None:
        from tfnet_jax.schemas.checks import check_monitor, fail, number_in, one_of, optional_positive_int, positive_int, positive_number
        model = groups.get("model") or {}
        positive_int(model, "model", "genes_per_block", "channels", "kernel", "hidden", "gate_hidden")
        positive_number(model, "model", "init_scale")
        optional_positive_int(model, "model", "screen_variants")
        positive_int(model, "model", "epistasis_variants", minimum=0)
        positive_number(model, "model", "l1", "keep_margin", allow_zero=True)
        one_of(model, "model", "linear_init", ("zeros", "elastic_net"))
        net = model.get("elastic_net") or {}
        number_in(net, "model.elastic_net", "alpha", 0.0, 1.0)
        positive_int(net, "model.elastic_net", "inner_folds", minimum=2)
        positive_int(net, "model.elastic_net", "n_lambdas", "max_iter", "block")
        positive_number(net, "model.elastic_net", "tol")
        if (groups.get("split") or {}).get("folds") is None:
            fail("split.folds", None, "GenoNet needs outer cross-validation folds (an integer >= 2)")
        train = groups.get("train")
        if train is not None:
            check_monitor(train, ["valid/r2_mean"], self.name)  # per-gene stopping's summary
            if train.get("monitor_mode") != "max":
                fail("train.monitor_mode", train.get("monitor_mode"), "GenoNet keeps each gene's "
                     "highest validation R^2: only max")

    def load(self, cfg: RunConfig, data: Any = None) -> GenotypeData:
        if data is not None:
            if not isinstance(data, GenotypeData):
                raise DataError(f"data: model=genonet takes a GenotypeData, not {type(data).__name__}")
            return data
        logging.getLogger("msprime").setLevel(logging.WARNING)  # one INFO line per simulated region
        return load_genotype_data(cfg.data)

    def split(self, cfg: RunConfig, data: GenotypeData) -> GenoNetSplit:
        k, seed = split_settings(cfg)
        if len(data.individuals) < 2 * k:
            raise DataError(f"{len(data.individuals)} individuals are too few for split.folds={k}")
        folds = splits.kfold(data.individuals, k, seed)
        # The elastic net's inner fold 0 of each outer fold (its seed is cfg.seed): so the
        # elastic-net start GenoNet trains from never saw GenoNet's early-stopping rows.
        valid = enet_fits.early_stopping_rows(folds, cfg.model.elastic_net.inner_folds, cfg.seed)
        return GenoNetSplit(folds, valid)

    def prepare(self, cfg: RunConfig, data: GenotypeData, split: GenoNetSplit) -> GenoNetPrepared:
        blocks = make_blocks(data, cfg.model.genes_per_block)
        genes = [g for b in blocks for g in b.genes]
        folds = split.folds
        columns = [data.expression.columns.get_loc(g) for g in genes]
        truth = np.zeros((len(genes), len(folds)))
        for c in range(folds.max() + 1):  # covariates regressed out on each fold's training rows
            truth[:, folds == c] = fold_targets(data, folds != c)[folds == c][:, columns].T
        use_annot = cfg.model.annotations and data.annotation_names is not None
        log.info("data %s: %d individuals, %d genes (%d skipped), up to %d variants, %d block(s)",
                 data.source, len(data.individuals), len(genes), len(data.skipped),
                 blocks[0].vmask.shape[1], len(blocks))
        return GenoNetPrepared(data, blocks, folds, split.valid_rows, genes, truth, use_annot)

    def fit(self, cfg: RunConfig, prepared: GenoNetPrepared, run_dir: Path | None,
            on_eval=None) -> Fitted:
        if on_eval is not None:  # early stopping is per gene: there is no one curve to report
            raise ConfigError("GenoNet fits one model per gene and has no single validation curve "
                              "to prune on; set sweep.pruner=null")
        cache = enet_fits.FitCache(None if run_dir is None else Path(run_dir) / "fits")
        log_file = None
        if run_dir is not None:  # rewritten from the start: a resumed fit logs its cached units again
            log_file = Path(run_dir) / metrics_log.FILE_NAME
            metrics_log.reset(log_file)
        return self._fit(cfg, prepared, cache, log_file)

    def restore(self, cfg: RunConfig, prepared: GenoNetPrepared, run_dir: Path,
                which: str = "best") -> Fitted:
        """The finished fits from RUN/fits; each holds every gene's kept (best) parameters."""
        if which != "best":
            raise ConfigError(f"which={which!r}: a GenoNet run keeps only each gene's best parameters")
        cache = enet_fits.FitCache(Path(run_dir) / "fits")
        missing = [u for u in self._units(cfg, prepared) if cache.get(u) is None]
        if missing:
            raise RunDirError(f"run dir {run_dir}: fits/ lacks {len(missing)} finished fit(s), e.g. "
                              f"{missing[:3]}; re-run the training command to finish them")
        return self._fit(cfg, prepared, cache, None)

    def _units(self, cfg: RunConfig, prepared: GenoNetPrepared) -> list[str]:
        """Every fit unit of a finished run, named as in fits/."""
        annotated = prepared.use_annotations
        genonets = ["genonet", "genonet_noannot"] if annotated else ["genonet_noannot"]
        return (["elastic_net"] + (["elastic_net_annot"] if annotated else [])
                + [fitting.genonet_unit(n, c, b) for n in genonets
                   for c in range(prepared.folds.max() + 1) for b in range(len(prepared.blocks))])

    def _fit(self, cfg: RunConfig, prepared: GenoNetPrepared, cache: enet_fits.FitCache,
             log_file: Path | None) -> Fitted:
        data, blocks, folds = prepared.data, prepared.blocks, prepared.folds
        en_cfg = cfg.model.elastic_net
        en = enet_fits.cached_elastic_net(cache, "elastic_net", data, blocks, folds, en_cfg, cfg.seed)
        pred = {"elastic_net": en["pred"]}
        if prepared.use_annotations:
            half = np.arange(len(prepared.genes)) % 2
            penalty = enet_fits.annotation_penalty(blocks, en["coef"], half)
            en_annot = enet_fits.cached_elastic_net(
                cache, "elastic_net_annot", data, blocks, folds, en_cfg, cfg.seed, penalty=penalty)
            pred["elastic_net_annot"] = en_annot["pred"]
        records = []
        for flag in ([True, False] if prepared.use_annotations else [False]):
            name = "genonet" if flag else "genonet_noannot"
            start = en_annot if flag and cfg.model.annotated_start else en
            pred[name], use_enet, recs = fitting.fit_genonet(cfg, prepared, flag, cache, start, log_file)
            records += recs
            if flag == prepared.use_annotations:
                en_start = cfg.model.linear_init == "elastic_net"
                starts, network_folds = starts_and_network_folds(prepared, cache, name, en_start)
                if en_start:
                    pred["genonet_choice"] = np.where(use_enet, start["pred"], pred[name])
                    pred["genonet_starts"] = starts
        if not prepared.use_annotations:
            pred["genonet"] = pred["genonet_noannot"]
        own = [r for r in records if r["fit"].startswith(
            "genonet/" if prepared.use_annotations else "genonet_noannot/")]
        scores = [r["best_score"] for r in own if r["best_score"] is not None]
        train = {"step": int(max(r["step"] for r in records)),
                 "best_step": int(np.median([r["best_step"] or 0 for r in records])),
                 "best_score": float(np.mean(scores)) if scores else float("nan"), "fits": len(records)}
        return Fitted(GenoNetModels(pred, records, cache, cfg.model.linear_skip, network_folds), train)

    def score(self, cfg: RunConfig, prepared: GenoNetPrepared, fitted: Fitted) -> dict:
        models = fitted.predictor
        metrics = evaluate(gene_table(prepared, models.pred, models.network_folds),
                           outer_folds=int(prepared.folds.max() + 1))
        metrics["skipped"] = prepared.data.skipped
        if "genotypes" in prepared.data.extras:  # the format read and its records left out
            metrics["genotypes"] = prepared.data.extras["genotypes"]
        metrics["settings"] = {"individuals": len(prepared.data.individuals), "genes": len(prepared.genes),
                               "outer_folds": int(prepared.folds.max() + 1),
                               "annotations": prepared.use_annotations}
        return metrics

    def write_outputs(self, cfg: RunConfig, prepared: GenoNetPrepared, fitted: Fitted, metrics: dict,
                      run_dir: Path) -> None:
        run_dir = Path(run_dir)
        folds = pd.DataFrame({"individual": prepared.data.individuals, "fold": prepared.folds})
        atomic_write_with(run_dir / "folds.csv", lambda tmp: folds.to_csv(tmp, index=False))
        genes = gene_table(prepared, fitted.predictor.pred, fitted.predictor.network_folds)
        atomic_write_with(run_dir / "genes.csv", lambda tmp: genes.to_csv(tmp, index=False))
        write_twas_exports(run_dir, prepared.data, prepared.blocks,
                           fitted.predictor.cache.get("elastic_net"), genes)

    def predict(self, cfg: RunConfig, prepared: GenoNetPrepared, fitted: Fitted, inputs: Any = None,
                method: str = "genonet", **_):
        """Predicted expression (individual, split, one column per gene) of `method`; see
        predict_expression. Options of other families (chunk_size, ...) do not apply.
        `split`: train for the run's individuals (every final model saw them: the elastic
        net fits them all, GenoNet averages fold models that all but one trained on), unseen
        for new ones."""
        from tfnet_jax.data.splits import UNSEEN
        from tfnet_jax.tasks.base import PredictionChunk

        frame = predict_expression(prepared, fitted.predictor, inputs, method=method)
        individuals = frame.index.to_numpy(str)
        cohort = np.isin(individuals, np.asarray(prepared.data.individuals, dtype=str))
        meta = pd.DataFrame({"individual": individuals,
                             "split": np.where(cohort, "train", UNSEEN).astype(object)})
        yield PredictionChunk(meta, frame.to_numpy(), list(frame.columns), id_columns=["individual"])

    def summary_lines(self, metrics: dict) -> list[str]:
        return format_table(metrics).splitlines()


# ---------------------------------------------------------------- outputs and prediction
def starts_and_network_folds(prepared: GenoNetPrepared, cache: enet_fits.FitCache, name: str,
                             with_starts: bool) -> tuple[np.ndarray | None, np.ndarray]:
    """From GenoNet `name`'s finished units: with_starts (an elastic-net start), the
    starts-only held-out predictions [G, n] (NaN for a unit written before they were stored),
    else None; and per gene, the outer folds whose kept model uses the network (`kept_step` >
    0; 0 or -1: the frozen starts, never beaten)."""
    folds = prepared.folds
    starts = np.full((len(prepared.genes), len(folds)), np.nan)
    network_folds = np.zeros(len(prepared.genes), int)
    older = first = 0
    for b, block in enumerate(prepared.blocks):
        genes = slice(first, first + len(block.genes))
        first += len(block.genes)
        for c in range(folds.max() + 1):
            unit = cache.get(fitting.genonet_unit(name, c, b))
            network_folds[genes] += unit["kept_step"][:len(block.genes)] > 0
            if "held_starts" in unit:
                starts[genes, folds == c] = unit["held_starts"].T
            else:
                older += with_starts
    if older:
        log.warning("%d %s fit(s) from an older version lack the starts-only predictions: "
                    "r2_genonet_starts is NaN for their genes", older, name)
    return starts if with_starts else None, network_folds


def run_variants(data: GenotypeData) -> pd.DataFrame:
    """The run's variants once each: id, chrom, position, a1 (the counted allele), a2 (None
    where the windows carry no alleles: data built in memory)."""
    frames = [pd.DataFrame({"id": w.variant_ids, "chrom": w.chrom, "position": w.positions,
                            "a1": None if w.alleles is None else w.alleles[:, 0],
                            "a2": None if w.alleles is None else w.alleles[:, 1]}) for w in data.windows]
    return pd.concat(frames, ignore_index=True).drop_duplicates("id", ignore_index=True)


def predict_expression(prepared: GenoNetPrepared, models: GenoNetModels, inputs=None,
                       method: str = "genonet") -> pd.DataFrame:
    """Predicted (residual) expression, individuals x genes, for new genotypes.

    inputs: genotype files (a PLINK prefix, a .vcf.gz, or a genotype config dict: see
    `open_genotypes`) or an individuals x variant-id dosage table (None: the training
    genotypes). method: one of METHODS; elastic nets use their final weights (all
    individuals), GenoNet the mean of its outer-fold models' kept per-gene parameters.
    """
    choices = [m for m in METHODS if m in models.pred and m not in HELD_OUT_ONLY]
    if method not in choices:
        raise DataError(f"method={method!r}: expected one of {choices}")
    if method == "genonet" and not prepared.use_annotations:
        method = "genonet_noannot"  # the model is the annotation-free GenoNet then
    data, blocks = prepared.data, prepared.blocks
    if inputs is None:
        table = pd.DataFrame(np.concatenate([w.float_dosages() for w in data.windows], axis=1),
                             index=data.individuals,
                             columns=np.concatenate([w.variant_ids for w in data.windows]))
        table = table.loc[:, ~table.columns.duplicated()]
    else:
        table = read_dosages(inputs, run_variants(data), data.extras.get("genome_build"))
    x = [block_dosages(data, b, table) for b in blocks]
    if method.startswith("elastic_net"):
        unit = models.cache.get(method)
        dosage = concat_genes([xb[:, :len(b.genes)] for xb, b in zip(x, blocks)], 1, 2)  # [n, G, P]
        train = real_genes(blocks, "dosage")
        observed = (~np.isnan(train)).sum(0)  # impute_train_mean's fill over all individuals
        fill = np.where(observed > 0, np.nansum(train, 0) / np.maximum(observed, 1), 0.0)
        dosage = np.where(np.isnan(dosage), fill, dosage)
        values = np.einsum("ngp,gp->ng", dosage.astype(np.float64), unit["coef"]) + unit["intercept"]
    else:
        k = prepared.folds.max() + 1
        per_block = []
        for b, (block, xb) in enumerate(zip(blocks, x)):
            units = [models.cache.get(fitting.genonet_unit(method, c, b)) for c in range(k)]
            per_block.append(np.mean([fitting.predict_block(u, xb, models.linear_skip) for u in units],
                                     axis=0)[:, :len(block.genes)])
        values = np.concatenate(per_block, axis=1)
    return pd.DataFrame(values, index=pd.Index(table.index.astype(str), name="individual"),
                        columns=prepared.genes)
