"""GenoNet's tables: per-gene held-out R^2 of every method, their summaries and paired tests."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tfnet_jax.eval.stats import paired_test
from tfnet_jax.models.elastic_net import cv_r2, heritable_filter

# genonet_choice: per gene and outer fold, GenoNet where it beat its elastic-net start on the
# early-stopping rows (which that start never saw), else the fold's elastic net.
METHODS = ("genonet", "genonet_noannot", "genonet_choice", "elastic_net", "elastic_net_annot")
GENE_COLUMNS = ["gene", "n_variants", "heritable", *(f"r2_{m}" for m in METHODS)]


def gene_table(prepared, pred: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per gene: variants, the PredictDB heritability call, held-out R^2 per method."""
    genes, truth = prepared.genes, prepared.truth
    table = {"gene": genes,
             "n_variants": [int(m.sum()) for b in prepared.blocks for m in b.vmask[:len(b.genes)]]}
    rho, pval, heritable = heritable_filter(truth, pred["elastic_net"])
    table["heritable"] = heritable
    for m in METHODS:
        r2, r2sse = cv_r2(truth, pred[m]) if m in pred else (np.full(len(genes), np.nan),) * 2
        table[f"r2_{m}"], table[f"r2sse_{m}"] = r2, r2sse
    table["elastic_net_rho"], table["elastic_net_p"] = rho, pval
    frame = pd.DataFrame(table)
    return frame[GENE_COLUMNS + [c for c in frame.columns if c not in GENE_COLUMNS]]


def summary(r2: np.ndarray, r2sse: np.ndarray) -> dict[str, float]:
    ok = np.isfinite(r2)
    return {"r2_mean": float(np.mean(r2[ok])) if ok.any() else float("nan"),
            "r2_median": float(np.median(r2[ok])) if ok.any() else float("nan"),
            "r2sse_mean": float(np.nanmean(r2sse)) if ok.any() else float("nan"),
            "n_genes": int(ok.sum())}


def paired(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """a vs b per gene (eval.stats.paired_test) under GenoNet's metric names."""
    test = paired_test(a, b)
    return {"frac_better": test["frac_better"], "mean_diff": test["diff"],
            "wilcoxon_p": test["wilcoxon_p"], "n": test["n"]}


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
                  "genonet_choice_vs_elastic_net": paired(col["genonet_choice"], col["elastic_net"]),
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
    c = comp["genonet_choice_vs_elastic_net"]
    if c["n"]:
        lines.append(f"per-gene choice > elastic net on {c['frac_better']:.1%} (Wilcoxon p = "
                     f"{c['wilcoxon_p']:.3g}, mean diff {c['mean_diff']:+.4f})")
    for key, label in (("annotation_gain_genonet", "GenoNet"), ("annotation_gain_elastic_net", "elastic net")):
        a = comp[key]
        lines.append(f"annotation gain, {label}: mean {a['mean_diff']:+.4f} (Wilcoxon p = {a['wilcoxon_p']:.3g})")
    return "\n".join(lines)
