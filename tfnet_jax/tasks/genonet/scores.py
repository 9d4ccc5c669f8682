"""GenoNet's tables: per-gene held-out R^2 of every method, their summaries and paired tests."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tfnet_jax.eval.stats import paired_test
from tfnet_jax.models.elastic_net import cv_r2, heritable_filter

# genonet_choice: per gene and outer fold, GenoNet where it beat its elastic-net start on the
# early-stopping rows (which that start never saw), else the fold's elastic net.
# genonet_starts: GenoNet's frozen starts without the network (the fold's elastic net plus the
# epistasis start), so the network's own share is genonet - genonet_starts.
METHODS = ("genonet", "genonet_noannot", "genonet_choice", "elastic_net", "elastic_net_annot",
           "genonet_starts")
GENE_COLUMNS = ["gene", "n_variants", "heritable", *(f"r2_{m}" for m in METHODS)]
# Per gene: outer folds whose kept GenoNet model uses the network (kept_step > 0), not the starts alone.
NETWORK_FOLDS = "genonet_network_folds"
# A paired per-gene difference in held-out R^2 within this is a tie, not a win or a loss. Where
# GenoNet kept a start whose epistasis weights are zero it predicts with the fold's elastic net,
# and the two R^2 differ only by float32 rounding (~1e-6); 0.001 (0.1 points of variance
# explained) sits well above that and below any difference that matters to a TWAS, so such
# genes count as ties, not coin-flip wins.
WIN_TOLERANCE = 0.001


def gene_table(prepared, pred: dict[str, np.ndarray], network_folds: np.ndarray | None = None) -> pd.DataFrame:
    """One row per gene: variants, the PredictDB heritability call, held-out R^2 per method,
    and (`network_folds` [G], when given) NETWORK_FOLDS."""
    genes, truth = prepared.genes, prepared.truth
    table = {"gene": genes,
             "n_variants": [int(m.sum()) for b in prepared.blocks for m in b.vmask[:len(b.genes)]]}
    rho, pval, heritable = heritable_filter(truth, pred["elastic_net"])
    table["heritable"] = heritable
    for m in METHODS:
        r2, r2sse = cv_r2(truth, pred[m]) if m in pred else (np.full(len(genes), np.nan),) * 2
        table[f"r2_{m}"], table[f"r2sse_{m}"] = r2, r2sse
    table["elastic_net_rho"], table["elastic_net_p"] = rho, pval
    if network_folds is not None:
        table[NETWORK_FOLDS] = np.asarray(network_folds, int)
    frame = pd.DataFrame(table)
    return frame[GENE_COLUMNS + [c for c in frame.columns if c not in GENE_COLUMNS]]


def summary(r2: np.ndarray, r2sse: np.ndarray) -> dict[str, float]:
    ok = np.isfinite(r2)
    return {"r2_mean": float(np.mean(r2[ok])) if ok.any() else float("nan"),
            "r2_median": float(np.median(r2[ok])) if ok.any() else float("nan"),
            "r2sse_mean": float(np.nanmean(r2sse)) if ok.any() else float("nan"),
            "n_genes": int(ok.sum())}


def paired(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """a vs b per gene (eval.stats.paired_test, ties within WIN_TOLERANCE) under GenoNet's
    metric names; mean_diff_ci_* is the mean difference's 95% t interval (genes as units)."""
    test = paired_test(a, b, tolerance=WIN_TOLERANCE)
    return {"frac_better": test["frac_better"], "frac_tied": test["frac_tied"],
            "frac_worse": test["frac_worse"], "mean_diff": test["diff"],
            "mean_diff_ci_low": test["diff_ci_low"], "mean_diff_ci_high": test["diff_ci_high"],
            "wilcoxon_p": test["wilcoxon_p"], "n": test["n"]}


def network_reliance(folds: np.ndarray, outer_folds: int) -> dict:
    """Genes whose kept GenoNet model uses the network in a majority of the outer folds (vs
    the frozen starts alone), from NETWORK_FOLDS [G]."""
    folds = np.asarray(folds, int)
    majority = folds > outer_folds / 2
    return {"outer_folds": int(outer_folds), "genes": int(folds.size),
            "genes_network_majority": int(majority.sum()),
            "share_network_majority": float(majority.mean()) if folds.size else float("nan"),
            "genes_starts_only": int((folds == 0).sum()),
            "mean_network_folds": float(folds.mean()) if folds.size else float("nan")}


def evaluate(genes: pd.DataFrame, outer_folds: int | None = None) -> dict:
    """metrics.json's tables from genes.csv; `outer_folds` (with a NETWORK_FOLDS column) adds
    `network`: how many genes' GenoNet relies on the network, over all and heritable genes."""
    her = genes["heritable"].to_numpy(bool)
    tables = {}
    for m in METHODS:
        r2, r2sse = genes[f"r2_{m}"].to_numpy(float), genes[f"r2sse_{m}"].to_numpy(float)
        tables[m] = {"heritable_genes": summary(r2[her], r2sse[her]), "all_genes": summary(r2, r2sse)}
    col = {m: genes[f"r2_{m}"].to_numpy(float)[her] for m in METHODS}
    comparison = {"heritable_genes": int(her.sum()),
                  "win_tolerance": WIN_TOLERANCE,
                  "genonet_vs_elastic_net": paired(col["genonet"], col["elastic_net"]),
                  "genonet_noannot_vs_elastic_net": paired(col["genonet_noannot"], col["elastic_net"]),
                  "genonet_choice_vs_elastic_net": paired(col["genonet_choice"], col["elastic_net"]),
                  "genonet_vs_genonet_starts": paired(col["genonet"], col["genonet_starts"]),
                  "genonet_starts_vs_elastic_net": paired(col["genonet_starts"], col["elastic_net"]),
                  "annotation_gain_genonet": paired(col["genonet"], col["genonet_noannot"]),
                  "annotation_gain_elastic_net": paired(col["elastic_net_annot"], col["elastic_net"])}
    metrics = {"model": tables["genonet"],
               "baselines": {m: tables[m] for m in METHODS if m != "genonet"},
               "comparison": comparison}
    if outer_folds is not None and NETWORK_FOLDS in genes:
        folds = genes[NETWORK_FOLDS].to_numpy(int)
        metrics["network"] = {"all_genes": network_reliance(folds, outer_folds),
                              "heritable_genes": network_reliance(folds[her], outer_folds)}
    return metrics


def format_table(metrics: dict) -> str:
    rows = [("genonet", metrics["model"])] + list(metrics["baselines"].items())
    lines = [f"{'method':<20}{'herit. r2 mean':>15}{'median':>9}{'all r2 mean':>13}{'median':>9}{'n herit.':>9}"]
    for name, t in rows:
        h, a = t["heritable_genes"], t["all_genes"]
        lines.append(f"{name:<20}{h['r2_mean']:>15.4f}{h['r2_median']:>9.4f}{a['r2_mean']:>13.4f}"
                     f"{a['r2_median']:>9.4f}{h['n_genes']:>9d}")
    comp = metrics["comparison"]

    def counts(c):  # wins / ties / losses, ties within WIN_TOLERANCE ("-": a run from before ties)
        return " / ".join(str(round(c[k] * c["n"])) if k in c else "-"
                          for k in ("frac_better", "frac_tied", "frac_worse"))
    tol = comp.get("win_tolerance", 0.0)  # older runs: a win was any difference > 0
    lines.append(f"paired on {comp['heritable_genes']} heritable genes; wins / ties / losses, ties "
                 f"within {tol:g} R^2; mean diff with its 95% t interval")
    for key, label in (("genonet_vs_elastic_net", "GenoNet vs elastic net"),
                       ("genonet_choice_vs_elastic_net", "per-gene choice vs elastic net"),
                       ("genonet_vs_genonet_starts", "GenoNet vs its starts alone"),
                       ("annotation_gain_genonet", "annotation gain, GenoNet"),
                       ("annotation_gain_elastic_net", "annotation gain, elastic net")):
        c = comp.get(key)
        if c is None or not c["n"]:
            continue
        ci = ""
        if "mean_diff_ci_low" in c:
            ci = f" [{c['mean_diff_ci_low']:+.4f}, {c['mean_diff_ci_high']:+.4f}]"
        lines.append(f"{label:<32}{counts(c):>16}  mean diff {c['mean_diff']:+.4f}{ci}"
                     f" (Wilcoxon p = {c['wilcoxon_p']:.3g})")
    if "network" in metrics:
        for group, label in (("all_genes", "genes"), ("heritable_genes", "heritable genes")):
            r = metrics["network"][group]
            lines.append(f"GenoNet uses its network in a majority of the {r['outer_folds']} folds for "
                         f"{r['genes_network_majority']} of {r['genes']} {label} "
                         f"({r['share_network_majority']:.1%}), the starts alone in every fold for "
                         f"{r['genes_starts_only']}")
    return "\n".join(lines)
