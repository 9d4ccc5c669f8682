"""TWAS stage 2: predicted expression of each gene = the stage-1 weights table (`RUN/weights.csv`,
the elastic net refit on all individuals) applied to the genotypes, then its association with a
trait (a table IID, trait): per gene Pearson r, z = t-statistic of r, two-sided p. `associate`
writes `RUN/twas.csv` sorted by |z|. With simulated data the trait defaults to the simulation's
`trait.csv`, and `is_trait_gene` marks the genes that truly drive it.

The demo scores the trait on the same individuals as stage 1 (a real TWAS applies the
weights to a separate GWAS cohort); the weights never saw the trait.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from scipy import stats

from tfnet_jax.atomic import atomic_write_with
from tfnet_jax.data.load import load_genotype_data
from tfnet_jax.errors import DataError, RunDirError


def predicted_expression(data, weights: pd.DataFrame) -> pd.DataFrame:
    """Individuals x genes: sum of weight x dosage (missing dosages at the variant mean)."""
    out = {}
    by_gene = dict(tuple(weights.groupby("gene")))
    for w in data.windows:
        table = by_gene.get(w.gene)
        if table is None:
            continue  # an all-zero elastic net: no prediction, no test
        col = pd.Index(w.variant_ids).get_indexer(table["variant"].astype(str))
        if (col < 0).any():
            raise DataError(f"weights for {w.gene} name variants not in its window, e.g. "
                            f"{table['variant'].iloc[int(np.argmax(col < 0))]}")
        x = w.float_dosages(col).astype(np.float64)
        x = np.where(np.isnan(x), np.nanmean(x, axis=0), x)
        out[w.gene] = x @ table["weight"].to_numpy(np.float64)
    return pd.DataFrame(out, index=pd.Index(data.individuals, name="IID"))


def association(expr: pd.DataFrame, trait: pd.Series) -> pd.DataFrame:
    """Per-gene Pearson r with the trait, z (t statistic) and two-sided p, sorted by |z|."""
    common = expr.index.intersection(trait.index)
    if len(common) < 3:
        raise DataError(f"only {len(common)} individuals have both predicted expression and a trait value")
    x, t = expr.loc[common].to_numpy(np.float64), trait.loc[common].to_numpy(np.float64)
    xc, tc = x - x.mean(0), t - t.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.nan_to_num(xc.T @ tc / np.sqrt((xc ** 2).sum(0) * (tc ** 2).sum()))
    n = len(common)
    z = r * np.sqrt((n - 2) / np.maximum(1 - r ** 2, 1e-12))
    frame = pd.DataFrame({"gene": expr.columns, "r": r, "z": z, "p": 2 * stats.t.sf(np.abs(z), n - 2)})
    frame = frame.sort_values("z", key=np.abs, ascending=False, ignore_index=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame


def associate(run_dir, trait_file=None) -> pd.DataFrame:
    """Stage 2 for a finished GenoNet run; writes and returns RUN/twas.csv."""
    run_dir = Path(run_dir)
    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.exists() or not (run_dir / "weights.csv").exists():
        raise DataError(f"run_dir={run_dir}: not a finished model=genonet run (no config or weights.csv)")
    cfg = OmegaConf.load(config_file)
    if cfg.get("data_fingerprint"):
        raise RunDirError(f"run_dir={run_dir}: trained on genotypes passed in memory; stage 2 reads "
                          f"the genotypes named by the run's config, which are not those")
    data = load_genotype_data(OmegaConf.to_container(cfg.data, resolve=True))  # the run's (cached) data
    trait_file = trait_file or data.extras.get("trait")
    if trait_file is None:
        raise DataError("trait=FILE is required (a table: IID, trait)")
    trait = pd.read_csv(trait_file, dtype=str)
    if trait.shape[1] < 2:
        raise DataError(f"{trait_file}: need two columns, IID and the trait")
    trait = trait.set_index(trait.columns[0])
    weights = pd.read_csv(run_dir / "weights.csv", dtype={"gene": str, "variant": str})
    frame = association(predicted_expression(data, weights), trait.iloc[:, 0].astype(float))
    frame.insert(1, "n_weights", frame["gene"].map(weights.groupby("gene").size()).astype(int))
    truth = data.extras.get("truth")
    if truth is not None:
        frame["is_trait_gene"] = frame["gene"].isin(truth["trait"]["genes"])
    atomic_write_with(run_dir / "twas.csv", lambda tmp: frame.to_csv(tmp, index=False))
    return frame
