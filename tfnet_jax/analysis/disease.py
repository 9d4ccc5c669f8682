"""Disease prediction: from TF fold-changes (case vs control) to target fold-changes.

How a fold-change enters the model: the control state is the background of light-up
(every TF at its training mean); a TF with log fold-change `lfc` (in the data's own log
units, so log2 fold-changes are converted with `log_base`) is moved to mean + lfc, i.e.
lfc / sd in the model's standardised inputs; TFs without a fold-change stay at their
mean. The predicted log fold-change of a target is the model's output in the case state
minus its output at the background, in the target's units. Agreement with the observed
target fold-changes is Spearman's rho; each TF is ranked by how much setting its own
fold-change to 0 lowers that rho (all TFs at once, in one vmapped forward pass).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import stats

from tfnet_jax.analysis import require_family
from tfnet_jax.analysis.lightup import pure_forward
from tfnet_jax.atomic import atomic_write_json, atomic_write_with
from tfnet_jax.errors import DataError
from tfnet_jax.schemas.commands import DiseaseOptions, make_options

log = logging.getLogger(__name__)


def read_fold_changes(path: str | Path) -> pd.Series:
    """A `gene, log_fc` table (csv/tsv) -> Series indexed by gene."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: fold-change table not found")
    frame = pd.read_csv(path, sep=None, engine="python")
    missing = [c for c in ("gene", "log_fc") if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; has {list(frame.columns)}")
    values = pd.to_numeric(frame["log_fc"], errors="coerce")
    bad = np.flatnonzero(~np.isfinite(values.to_numpy(float)))
    if bad.size:
        raise DataError(f"{path}: line {bad[0] + 2}: log_fc {frame['log_fc'].iloc[bad[0]]!r} is not "
                        f"a finite number ({bad.size} such row(s))")
    if frame["gene"].duplicated().any():
        gene = frame.loc[frame["gene"].duplicated(), "gene"].iloc[0]
        raise DataError(f"{path}: gene {gene!r} appears more than once")
    return pd.Series(values.to_numpy(float), index=frame["gene"].astype(str), name="log_fc")


def tf_shift(prepared, tf_lfc: pd.Series, log_base: float = math.e) -> np.ndarray:
    """Standardised input shift of every TF (0 for TFs without a fold-change)."""
    tfs = pd.Index(np.asarray(prepared.data.tf_genes, str))
    known = tf_lfc.index.intersection(tfs)
    if known.empty:
        raise DataError(f"TF fold-changes: none of the {len(tf_lfc)} genes is a TF of the run "
                        f"(first given: {list(tf_lfc.index[:5])}; first TFs: {list(tfs[:5])})")
    lfc = np.zeros(len(tfs))
    lfc[tfs.get_indexer(known)] = tf_lfc.loc[known].to_numpy() * math.log(log_base)
    return lfc / prepared.x_sd


def _forward(model):
    forward, state = pure_forward(model)
    return lambda x: forward(state, x)


def predict_target_lfc(model, prepared, shift: np.ndarray) -> np.ndarray:
    """Predicted log fold-change of every target (its units) for the input shift."""
    f = _forward(model)
    x = jnp.stack([jnp.zeros(len(shift)), jnp.asarray(shift)]).astype(jnp.float32)
    out = np.asarray(jax.jit(f)(x))
    return (out[1] - out[0]) * prepared.y_sd


def disease_analysis(model, prepared, tf_lfc: pd.Series, observed: pd.Series,
                     log_base: float = math.e) -> tuple[dict, pd.DataFrame]:
    """(summary with Spearman rho, per-TF table of rho when that TF's change is dropped)."""
    targets = pd.Index(np.asarray(prepared.data.target_genes, str))
    common = observed.index.intersection(targets)
    if len(common) < 3:
        raise DataError(f"observed target fold-changes: {len(common)} of {len(observed)} genes are "
                        "targets of the run; at least 3 are needed for a rank correlation")
    cols = targets.get_indexer(common)
    obs = observed.loc[common].to_numpy(float)
    shift = tf_shift(prepared, tf_lfc, log_base)
    pred = predict_target_lfc(model, prepared, shift)
    rho, p_value = stats.spearmanr(pred[cols], obs)

    changed = np.flatnonzero(shift != 0)
    f = _forward(model)

    @jax.jit
    def dropped(shift, index):  # one row per TF: its own change set back to 0
        cases = jax.vmap(lambda i: shift.at[i].set(0.0))(index)
        return f(cases) - f(jnp.zeros((1, shift.shape[0])))

    rows = np.asarray(dropped(jnp.asarray(shift, jnp.float32), jnp.asarray(changed)))[:, cols]
    obs_rank = stats.rankdata(obs)
    rho_without = np.array([np.corrcoef(stats.rankdata(r), obs_rank)[0, 1] for r in rows])
    tfs = np.asarray(prepared.data.tf_genes, str)[changed]
    table = pd.DataFrame({"tf": tfs, "log_fc": shift[changed] * prepared.x_sd[changed] / math.log(log_base),
                          "rho_without": rho_without, "rho_drop": rho - rho_without})
    table = table.sort_values("rho_drop", ascending=False, ignore_index=True)
    summary = {"spearman_rho": float(rho), "p_value": float(p_value), "n_targets": int(len(common)),
               "n_tfs_with_fold_change": int(len(changed))}
    return summary, table


def run_disease(run, **options) -> dict:
    """Disease fold-changes through a trained TFNet run (`tfnet_jax.load_run`), options as
    `DiseaseOptions`: writes RUN/disease.json (Spearman rho of predicted vs observed target
    fold-changes) and RUN/disease_tf_ranking.csv (TFs by how much dropping each lowers rho)."""
    opts = make_options(DiseaseOptions, options)
    opts.check()
    require_family(run, "tfnet")
    run_dir, prepared = run.run_dir, run.prepared
    planted = prepared.data.extras.get("disease")
    if opts.tf_fold_changes and opts.observed:
        tf_lfc, observed = read_fold_changes(opts.tf_fold_changes), read_fold_changes(opts.observed)
        log_base = opts.log_base
    elif planted is not None and not (opts.tf_fold_changes or opts.observed):
        tf_lfc, observed, log_base = planted["tf_lfc"], planted["target_lfc"], math.e
    else:
        raise DataError("tf_fold_changes and observed: give both tables (columns gene, log_fc)")
    summary, ranking = disease_analysis(run.trainer.model, prepared, tf_lfc, observed, log_base)
    if planted is not None and not opts.tf_fold_changes:
        top = ranking["tf"].head(len(planted["shifted_masters"])).tolist()
        summary["shifted_masters"] = planted["shifted_masters"]
        summary["shifted_masters_in_top"] = len(set(top) & set(planted["shifted_masters"]))
    atomic_write_json(run_dir / "disease.json", summary)
    atomic_write_with(run_dir / "disease_tf_ranking.csv", lambda tmp: ranking.to_csv(tmp, index=False))
    log.info(f"predicted vs observed target fold-changes: Spearman rho {summary['spearman_rho']:.3f} "
             f"over {summary['n_targets']} targets; top TFs by rho drop: "
             f"{', '.join(ranking['tf'].head(5))}")
    return summary
