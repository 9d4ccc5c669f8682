"""Validate a TF x target light-up score table against known TF -> target pairs (TRRUST).

Tests: AUROC of |score| for known vs other pairs; per target, a one-sided Mann-Whitney U
test of |score| for its known regulators vs its other TFs (combined by a binomial test
on the number of targets with p < 0.05); sign agreement with Activation (+) / Repression
(-) pairs. With an expression matrix, the same tests on |Spearman rho| (the control: does
the model know more than co-expression?).
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from tfnet_jax.data.dataset import DataError

MODES = ("Activation", "Repression", "Unknown")
_SIGN = {"Activation": 1.0, "Repression": -1.0}


def read_known_pairs(path: str | Path) -> pd.DataFrame:
    """TRRUST pairs (tsv, optionally .gz; with header `tf target mode pmids` or headerless)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: known-pairs file not found")
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError, EOFError, zlib.error) as err:  # zlib: a corrupt .gz
        raise DataError(f"{path}: cannot read the file ({err})") from err
    rows = []
    first = True
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")]
        if first and [f.lower() for f in fields[:3]] == ["tf", "target", "mode"]:
            first = False
            continue  # the header; TRRUST's raw download has none
        first = False
        if len(fields) < 3 or not fields[0] or not fields[1]:
            raise DataError(f"{path}, line {number}: expected tab-separated tf, target, mode[, pmids]; "
                            f"got {line!r}")
        if fields[2] not in MODES:
            raise DataError(f"{path}, line {number}: mode {fields[2]!r} is not one of {MODES}")
        rows.append((fields[0], fields[1], fields[2]))
    if not rows:
        raise DataError(f"{path}: no TF -> target pairs")
    return pd.DataFrame(rows, columns=["tf", "target", "mode"])


def _auroc(values: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney U / (n1 n0) with average ranks for ties."""
    n1 = int(positive.sum())
    n0 = len(values) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = stats.rankdata(values)
    u = ranks[positive].sum() - n1 * (n1 + 1) / 2
    return float(u / (n1 * n0))


def _tests(pairs: pd.DataFrame, strength: np.ndarray, signed: np.ndarray, known: pd.DataFrame) -> dict:
    """All tests for one method; `pairs` holds tf, target, is_known, aligned with the arrays."""
    is_known = pairs["is_known"].to_numpy()
    out: dict = {"n_pairs": len(pairs), "auroc": _auroc(strength, is_known)}

    rows = []
    frame = pd.DataFrame({"target": pairs["target"].to_numpy(), "s": strength, "k": is_known})
    for target, group in frame.groupby("target", sort=True):
        k = group["k"].to_numpy()
        if k.any() and not k.all():
            s = group["s"].to_numpy()
            # scipy's exact null costs ~O(n1 n0 n) (seconds for ~800 TFs); the normal
            # approximation is accurate at such sizes, so exact only for small groups.
            method = "auto" if len(s) <= 100 else "asymptotic"
            res = stats.mannwhitneyu(s[k], s[~k], alternative="greater", method=method)
            rows.append((target, int(k.sum()), int((~k).sum()), float(res.statistic), float(res.pvalue)))
    per_target = pd.DataFrame(rows, columns=["target", "n_known", "n_other", "u", "p_value"])
    n_tested = len(per_target)
    n_sig = int((per_target["p_value"] < 0.05).sum())
    out.update(per_target=per_target, n_targets_tested=n_tested, n_targets_p05=n_sig,
               frac_targets_p05=n_sig / n_tested if n_tested else float("nan"),
               median_p=float(per_target["p_value"].median()) if n_tested else float("nan"),
               combined_p=(float(stats.binomtest(n_sig, n_tested, 0.05, alternative="greater").pvalue)
                           if n_tested else float("nan")))

    # Sign: pairs listed with one direction only (TRRUST lists some as both).
    signed_known = known[known["mode"].isin(list(_SIGN))].copy()
    signed_known["sign"] = signed_known["mode"].map(_SIGN)
    directions = signed_known.groupby(["tf", "target"])["sign"].nunique()
    clear = directions[directions == 1].index
    signs = signed_known.drop_duplicates(["tf", "target"]).set_index(["tf", "target"])["sign"]
    signs = signs.loc[signs.index.isin(clear)]
    position = pd.Series(np.arange(len(pairs)), index=pd.MultiIndex.from_frame(pairs[["tf", "target"]]))
    hit = signs.index.isin(position.index)
    expected = signs.to_numpy()[hit]
    observed = np.sign(signed[position.loc[signs.index[hit]].to_numpy()])
    n = len(expected)
    agree = int((observed == expected).sum())
    out.update(sign_n=n, sign_conflicting=int((directions > 1).sum()),
               sign_agreement=agree / n if n else float("nan"),
               sign_p=float(stats.binomtest(agree, n, 0.5, alternative="greater").pvalue) if n else float("nan"))
    return out


def spearman_matrix(expression: pd.DataFrame, rows: list[str], cols: list[str]) -> np.ndarray:
    """Spearman rho [len(rows), len(cols)] between expression columns: rank once, one matmul."""
    genes = list(dict.fromkeys([*rows, *cols]))
    values = expression[genes].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise DataError("expression: NaN or Inf values; cannot compute the correlation control")
    ranks = stats.rankdata(values, axis=0)
    ranks -= ranks.mean(axis=0)
    norms = np.sqrt((ranks ** 2).sum(axis=0))
    # Constant genes have no defined rho; 0 (no association) keeps them rankable.
    ranks = np.divide(ranks, norms, out=np.zeros_like(ranks), where=norms > 0)
    where = {g: i for i, g in enumerate(genes)}
    return ranks[:, [where[g] for g in rows]].T @ ranks[:, [where[g] for g in cols]]


def validate_lightup(scores: pd.DataFrame, known: pd.DataFrame, *,
                     expression: pd.DataFrame | None = None) -> dict:
    """Score-table validation; `expression` (samples x genes) adds the correlation control."""
    for name, frame, columns in (("scores", scores, ["tf", "target", "score"]),
                                 ("known", known, ["tf", "target", "mode"])):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataError(f"{name}: missing column(s) {missing}; has {list(frame.columns)}")
    pairs = scores[["tf", "target", "score"]].astype({"tf": str, "target": str}).reset_index(drop=True)
    if pairs.duplicated(["tf", "target"]).any():
        tf, target = pairs.loc[pairs.duplicated(["tf", "target"]), ["tf", "target"]].iloc[0]
        raise DataError(f"scores: pair ({tf}, {target}) appears more than once")
    score = pairs["score"].to_numpy(dtype=np.float64)
    if not np.isfinite(score).all():
        tf, target = pairs.loc[~np.isfinite(score), ["tf", "target"]].iloc[0]
        raise DataError(f"scores: non-finite score for ({tf}, {target})")

    tfs, targets = set(pairs["tf"]), set(pairs["target"])
    known = known.astype({"tf": str, "target": str})
    known = known[known["tf"].isin(tfs) & known["target"].isin(targets)]
    known_keys = pd.MultiIndex.from_frame(known[["tf", "target"]].drop_duplicates())
    pairs["is_known"] = pd.MultiIndex.from_frame(pairs[["tf", "target"]]).isin(known_keys)
    used = pairs[pairs["is_known"]]
    result = {"n_tfs": len(tfs), "n_targets": len(targets),
              "n_known_pairs_used": int(pairs["is_known"].sum()),
              "n_known_tfs": int(used["tf"].nunique()), "n_known_targets": int(used["target"].nunique())}
    result.update(_tests(pairs, np.abs(score), score, known))

    if expression is not None:
        genes = set(map(str, expression.columns))
        expression = expression.set_axis([str(c) for c in expression.columns], axis=1)
        covered = pairs[pairs["tf"].isin(genes) & pairs["target"].isin(genes)].reset_index(drop=True)
        row_genes = sorted(set(covered["tf"]))
        col_genes = sorted(set(covered["target"]))
        rho = spearman_matrix(expression, row_genes, col_genes)
        r = pd.Index(row_genes).get_indexer(covered["tf"])
        c = pd.Index(col_genes).get_indexer(covered["target"])
        # Rounded so that equal rho values tie, whatever the matmul's last-bit error.
        corr = np.round(rho[r, c], 12)
        control = {"n_pairs_not_in_expression": len(pairs) - len(covered),
                   "n_known_pairs_used": int(covered["is_known"].sum())}
        control.update(_tests(covered, np.abs(corr), corr, known))
        result["correlation"] = control
    return result


def validation_table(result: dict) -> pd.DataFrame:
    """Tidy (method, metric, value) rows of every scalar in a validate_lightup result."""
    rows = []
    for method, part in (("lightup", result), ("correlation", result.get("correlation"))):
        if part is None:
            continue
        for metric, value in part.items():
            if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
                rows.append((method, metric, float(value)))
    return pd.DataFrame(rows, columns=["method", "metric", "value"])
