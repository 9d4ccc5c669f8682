"""Validate a TF x target light-up score table against known TF -> target pairs (TRRUST).

Tests: AUROC, AUPRC ratio and early-precision ratio (EPR, BEELINE's metrics) of |weight| for
known vs other pairs; per target, a one-sided Mann-Whitney U test of |weight| for its known
regulators vs its other TFs (combined by a binomial test on the number of targets with
p < 0.05); sign agreement with Activation (+) / Repression (-) pairs. With an expression
matrix, the same tests on |Spearman rho| (the control: does the model know more than
co-expression?). Score tables use decoupler's `source, target, weight` columns; the former
`tf, target, score` names are read as aliases.
"""
from __future__ import annotations

import gzip
import logging
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from tfnet_jax.data.genes import GeneTable, match_genes
from tfnet_jax.data.io.tables import preview
from tfnet_jax.errors import DataError

log = logging.getLogger(__name__)

MODES = ("Activation", "Repression", "Unknown")
_SIGN = {"Activation": 1.0, "Repression": -1.0}


def _mode_of_weight(text: str, path: Path, number: int) -> str:
    try:
        weight = float(text)
    except ValueError:
        weight = float("nan")
    if not np.isfinite(weight):
        raise DataError(f"{path}, line {number}: weight {text!r} is not a finite number")
    return "Activation" if weight > 0 else "Repression" if weight < 0 else "Unknown"


def read_known_pairs(path: str | Path) -> pd.DataFrame:
    """Known pairs (source, target, mode): TRRUST (tsv, optionally .gz; header `tf target mode
    pmids` or none) or a decoupler/CollecTRI network (tsv or csv with header `source target
    weight`; the sign of weight gives the mode)."""
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
    first, signed, delimiter = True, False, "\t"
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        if first and "\t" not in line and "," in line:
            delimiter = ","  # a csv network (decoupler writes csv)
        fields = [f.strip() for f in line.split(delimiter)]
        header = [f.lower() for f in fields[:3]]
        if first and header in (["tf", "target", "mode"], ["source", "target", "weight"]):
            first, signed = False, header[2] == "weight"
            continue  # the header; TRRUST's raw download has none
        first = False
        if len(fields) < 3 or not fields[0] or not fields[1]:
            expected = "source, target, weight" if signed else "tab-separated tf, target, mode[, pmids]"
            raise DataError(f"{path}, line {number}: expected {expected}; got {line!r}")
        mode = _mode_of_weight(fields[2], path, number) if signed else fields[2]
        if mode not in MODES:
            raise DataError(f"{path}, line {number}: mode {fields[2]!r} is not one of {MODES}")
        rows.append((fields[0], fields[1], mode))
    if not rows:
        raise DataError(f"{path}: no TF -> target pairs")
    return pd.DataFrame(rows, columns=["source", "target", "mode"])


def _auroc(values: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney U / (n1 n0) with average ranks for ties."""
    n1 = int(positive.sum())
    n0 = len(values) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = stats.rankdata(values)
    u = ranks[positive].sum() - n1 * (n1 + 1) / 2
    return float(u / (n1 * n0))


def average_precision(values: np.ndarray, positive: np.ndarray) -> float:
    """Area under the precision-recall step curve, sum_t (R_t - R_{t-1}) P_t over the distinct
    values t from the highest down; tied values enter together (sklearn's definition)."""
    n1 = int(positive.sum())
    if n1 == 0 or n1 == len(values):
        return float("nan")
    order = np.argsort(-values, kind="stable")
    ordered, hits = values[order], np.cumsum(positive[order])
    ends = np.flatnonzero(np.r_[ordered[1:] != ordered[:-1], True])  # last index of each tie group
    precision = hits[ends] / (ends + 1)
    recall_gain = np.diff(np.r_[0, hits[ends]]) / n1
    return float((recall_gain * precision).sum())


def early_precision(values: np.ndarray, positive: np.ndarray) -> float:
    """Precision among the k highest values, k = the number of positives. Values tied with the
    k-th share the places left in proportion to their positives: the mean over random orders."""
    k = int(positive.sum())
    if k == 0 or k == len(values):
        return float("nan")
    kth = np.sort(values)[::-1][k - 1]
    above, tied = values > kth, values == kth
    hits = positive[above].sum() + (k - above.sum()) * positive[tied].sum() / tied.sum()
    return float(hits / k)


def ranking_metrics(values: np.ndarray, positive: np.ndarray) -> dict:
    """AUROC, AUPRC and early precision, and the last two over a random ranking's (the positive
    fraction): BEELINE's AUPRC ratio and EPR (1 = chance)."""
    auprc, early = average_precision(values, positive), early_precision(values, positive)
    chance = float(positive.mean()) if np.isfinite(auprc) else float("nan")  # nan: one class only
    return {"auroc": _auroc(values, positive), "auprc": auprc, "auprc_ratio": auprc / chance,
            "early_precision": early, "epr": early / chance, "random_precision": chance}


def _tests(pairs: pd.DataFrame, strength: np.ndarray, signed: np.ndarray, known: pd.DataFrame) -> dict:
    """All tests for one method; `pairs` holds source, target, is_known, aligned with the arrays."""
    is_known = pairs["is_known"].to_numpy()
    out: dict = {"n_pairs": len(pairs), **ranking_metrics(strength, is_known)}

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
    directions = signed_known.groupby(["source", "target"])["sign"].nunique()
    clear = directions[directions == 1].index
    signs = signed_known.drop_duplicates(["source", "target"]).set_index(["source", "target"])["sign"]
    signs = signs.loc[signs.index.isin(clear)]
    position = pd.Series(np.arange(len(pairs)), index=pd.MultiIndex.from_frame(pairs[["source", "target"]]))
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


SCORE_COLUMNS = ("source", "target", "weight")
# Former names, still read: light-up tables before decoupler's convention, and TRRUST's `tf`.
ALIASES = {"tf": "source", "score": "weight"}


def with_aliases(frame: pd.DataFrame, columns: tuple[str, ...], name: str) -> pd.DataFrame:
    """`frame` with former column names renamed to `columns`; an error names any still missing."""
    renames = {old: new for old, new in ALIASES.items() if old in frame.columns and new not in frame.columns}
    frame = frame.rename(columns=renames)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{name}: missing column(s) {missing}; has {list(frame.columns)}")
    return frame


def match_known_pairs(known: pd.DataFrame, sources, targets, genes: GeneTable | None = None,
                      label: str = "known pairs") -> pd.DataFrame:
    """The known pairs (source, target, mode) renamed to the scored genes' IDs (through `genes`
    when the namespaces differ) and restricted to scored pairs; a one-line warning says how many
    name genes outside the scores, and an error is raised when none is left."""
    sources, targets = list(dict.fromkeys(sources)), list(dict.fromkeys(targets))
    names = list(dict.fromkeys([*known["source"], *known["target"]]))
    renamed = dict(zip(names, match_genes(names, [*sources, *targets], genes)))
    out = known.assign(source=known["source"].map(renamed), target=known["target"].map(renamed))
    source_set, target_set = set(sources), set(targets)
    tf_ok, target_ok = out["source"].isin(source_set), out["target"].isin(target_set)
    usable = out[tf_ok & target_ok]
    if usable.empty:
        hint = "" if genes is not None else ("; different gene IDs? gene_table= maps symbols, "
                                              "Entrez and Ensembl IDs")
        raise DataError(f"{label}: none of the {len(known)} TF -> target pairs is a scored pair "
                        f"(known TFs {preview(sorted(set(known['source'])), 3)}, scored TFs "
                        f"{preview(sources, 3)}, scored targets {preview(targets, 3)}){hint}")
    if len(usable) < len(known):
        lost = []
        for role, column, ok, scored in (("TFs", "source", tf_ok, "scored TFs"),
                                         ("targets", "target", target_ok, "scored targets")):
            names = sorted(set(known.loc[~ok.to_numpy(), column]))
            if names:
                lost.append(f"{len(names)} of {known[column].nunique()} {role} are not {scored} "
                            f"(e.g. {', '.join(names[:4])})")
        log.warning("%s: %d of %d pairs are not scored pairs and are left out: %s", label,
                    len(known) - len(usable), len(known), "; ".join(lost))
    return usable


def validate_lightup(scores: pd.DataFrame, known: pd.DataFrame, *,
                     expression: pd.DataFrame | None = None, genes: GeneTable | None = None,
                     label: str = "known pairs") -> dict:
    """Score-table validation (`source, target, weight`; `tf`, `score` read as aliases) against
    known pairs (`source` or `tf`, `target`, `mode`); `expression` (samples x genes, the scores'
    gene IDs) adds the correlation control; `genes` maps the known pairs' IDs to the scores'."""
    scores = with_aliases(scores, SCORE_COLUMNS, "scores")
    known = with_aliases(known, ("source", "target", "mode"), label)
    pairs = scores[list(SCORE_COLUMNS)].astype({"source": str, "target": str}).reset_index(drop=True)
    if pairs.duplicated(["source", "target"]).any():
        tf, target = pairs.loc[pairs.duplicated(["source", "target"]), ["source", "target"]].iloc[0]
        raise DataError(f"scores: pair ({tf}, {target}) appears more than once")
    score = pairs["weight"].to_numpy(dtype=np.float64)
    if not np.isfinite(score).all():
        tf, target = pairs.loc[~np.isfinite(score), ["source", "target"]].iloc[0]
        raise DataError(f"scores: non-finite weight for ({tf}, {target})")

    tfs, targets = set(pairs["source"]), set(pairs["target"])
    known = known.astype({"source": str, "target": str})
    known = match_known_pairs(known, pairs["source"], pairs["target"], genes, label)
    known_keys = pd.MultiIndex.from_frame(known[["source", "target"]].drop_duplicates())
    pairs["is_known"] = pd.MultiIndex.from_frame(pairs[["source", "target"]]).isin(known_keys)
    used = pairs[pairs["is_known"]]
    result = {"n_tfs": len(tfs), "n_targets": len(targets),
              "n_known_pairs_used": int(pairs["is_known"].sum()),
              "n_known_tfs": int(used["source"].nunique()), "n_known_targets": int(used["target"].nunique())}
    result.update(_tests(pairs, np.abs(score), score, known))

    if expression is not None:
        genes = set(map(str, expression.columns))
        expression = expression.set_axis([str(c) for c in expression.columns], axis=1)
        covered = pairs[pairs["source"].isin(genes) & pairs["target"].isin(genes)].reset_index(drop=True)
        row_genes = sorted(set(covered["source"]))
        col_genes = sorted(set(covered["target"]))
        rho = spearman_matrix(expression, row_genes, col_genes)
        r = pd.Index(row_genes).get_indexer(covered["source"])
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
