"""GenoNet's TWAS exports, written in the run dir by every GenoNet run.

- `weights.csv`: the elastic net refit on all individuals (the stage-2 weights), one row per
  non-zero weight: gene, variant (the .bim ID, PredictDB's rsid), varID, chrom, position,
  ref_allele, eff_allele, weight.
- `predictdb.db`: the same weights as a PredictDB-style SQLite database for PrediXcan /
  S-PrediXcan: tables `weights` (gene, rsid, varID, ref_allele, eff_allele, weight) and `extra`
  (gene, genename, n.snps.in.model, pred.perf.R2, pred.perf.pval, then intercept, genonet.R2,
  genonet_chosen), one row per gene with at least one weight.
- `covariances.txt.gz`: per gene, the covariance of its model SNPs' dosages on the run's
  individuals, in PredictDB's text format (`GENE RSID1 RSID2 VALUE`, space-separated, each
  pair once: RSID1 at or before RSID2 in the gene's weight order).

Dosages count each variant's first allele (`data/genotype/source.py`): the .bim's A1 (column
5), a VCF's ALT, a dosage file's alt column; so eff_allele = A1 = ALT and ref_allele = A2 = REF
(for PLINK the other allele, not necessarily the genome reference), whichever format was read:
sum(weight x dosage of eff_allele) + intercept is the elastic net's prediction. varID =
chr{chrom}_{position}_{ref}_{eff} (GTEx's order), with `_b38` (or GTEx v7's
{chrom}_..._b37) when data.genome_build names the build. Only the elastic net is linear: a gene
flagged genonet_chosen (GenoNet's held-out R^2 above the elastic net's) still carries the
elastic net's weights and performance; GenoNet's own predictions come from `Run.predict`.
"""
from __future__ import annotations

import gzip
import logging
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd

from tfnet_jax.atomic import atomic_write_with
from tfnet_jax.data.genotype.source import variant_key
from tfnet_jax.errors import RunDirError

log = logging.getLogger(__name__)
WEIGHTS_CSV, WEIGHTS_DB, COVARIANCES = "weights.csv", "predictdb.db", "covariances.txt.gz"
DB_WEIGHT_COLUMNS = ("gene", "rsid", "varID", "ref_allele", "eff_allele", "weight")
DB_EXTRA_COLUMNS = ("gene", "genename", "n.snps.in.model", "pred.perf.R2", "pred.perf.pval",
                    "intercept", "genonet.R2", "genonet_chosen")
_SQL_TYPES = {"n.snps.in.model": "INTEGER", "genonet_chosen": "INTEGER", "weight": "DOUBLE",
              "pred.perf.R2": "DOUBLE", "pred.perf.pval": "DOUBLE", "intercept": "DOUBLE",
              "genonet.R2": "DOUBLE"}


def weight_table(data, blocks, coef: np.ndarray) -> pd.DataFrame:
    """One row per non-zero weight of `coef` [G, P] (genes in block order, variants in window
    order), with the variant's alleles (NA where the windows carry none: data built in memory)."""
    windows = {w.gene: w for w in data.windows}
    rows, i = [], 0
    for block in blocks:
        for gene in block.genes:
            w = windows[gene]
            nz = np.flatnonzero(coef[i, :len(w.variant_ids)])
            alleles = w.alleles[nz] if w.alleles is not None else np.full((len(nz), 2), None)
            rows.append(pd.DataFrame({"gene": gene, "variant": w.variant_ids[nz], "chrom": w.chrom,
                                      "position": w.positions[nz], "ref_allele": alleles[:, 1],
                                      "eff_allele": alleles[:, 0], "weight": coef[i, nz]}))
            i += 1
    frame = pd.concat(rows, ignore_index=True)
    frame.insert(2, "varID", variant_key(frame["chrom"].astype(str), frame["position"], frame["ref_allele"],
                                         frame["eff_allele"], data.extras.get("genome_build")))
    frame.loc[frame["eff_allele"].isna(), "varID"] = None
    return frame


def extra_table(weights: pd.DataFrame, genes: pd.DataFrame, intercept: np.ndarray) -> pd.DataFrame:
    """PredictDB's `extra` for every gene with weights; `genes` is genes.csv (rows in the order
    of `intercept`). pred.perf.* are the elastic net's held-out squared Pearson r and its p."""
    n_snps = weights.groupby("gene", sort=False).size()
    table = pd.DataFrame({"gene": genes["gene"].astype(str), "genename": genes["gene"].astype(str),
                          "n.snps.in.model": genes["gene"].map(n_snps).fillna(0).astype(int),
                          "pred.perf.R2": genes["r2_elastic_net"], "pred.perf.pval": genes["elastic_net_p"],
                          "intercept": np.asarray(intercept, np.float64),
                          "genonet.R2": genes["r2_genonet"],
                          "genonet_chosen": (genes["r2_genonet"] > genes["r2_elastic_net"]).astype(int)})
    return table[table["n.snps.in.model"] > 0].reset_index(drop=True)


def _create(db: sqlite3.Connection, name: str, frame: pd.DataFrame, columns) -> None:
    spec = ", ".join(f'"{c}" {_SQL_TYPES.get(c, "TEXT")}' for c in columns)
    db.execute(f"CREATE TABLE {name} ({spec})")
    rows = zip(*(frame[c].tolist() for c in columns))  # tolist: plain Python values for sqlite3
    db.executemany(f"INSERT INTO {name} VALUES ({', '.join('?' * len(columns))})", rows)


def write_predictdb(path: Path, weights: pd.DataFrame, extra: pd.DataFrame) -> None:
    """Tables `weights` and `extra` (with PredictDB's indices), built in a temp file, then published."""
    weights = weights.rename(columns={"variant": "rsid"})

    def write(tmp):
        try:
            with closing(sqlite3.connect(tmp)) as db:
                _create(db, "weights", weights, DB_WEIGHT_COLUMNS)
                _create(db, "extra", extra, DB_EXTRA_COLUMNS)
                db.execute("CREATE INDEX weights_rsid ON weights (rsid)")
                db.execute("CREATE INDEX weights_gene ON weights (gene)")
                db.execute("CREATE INDEX weights_rsid_gene ON weights (rsid, gene)")
                db.execute("CREATE INDEX extra_gene ON extra (gene)")
                db.commit()
        except sqlite3.Error as err:
            raise RunDirError(f"{path}: cannot write the SQLite database ({err})") from None

    atomic_write_with(path, write)


def write_covariances(path: Path, data, weights: pd.DataFrame) -> None:
    """Per gene, np.cov (n - 1 denominator) of its model SNPs' A1 dosages over the run's
    individuals, a missing dosage at the variant's mean; each pair once, diagonal included."""
    windows = {w.gene: w for w in data.windows}

    def write(tmp):
        with gzip.open(tmp, "wt") as handle:
            handle.write("GENE RSID1 RSID2 VALUE\n")
            for gene, table in weights.groupby("gene", sort=False):
                w = windows[gene]
                x = w.float_dosages(pd.Index(w.variant_ids).get_indexer(table["variant"])).astype(np.float64)
                x = np.where(np.isnan(x), np.nanmean(x, axis=0), x)
                cov = np.atleast_2d(np.cov(x, rowvar=False))
                i, j = np.triu_indices(len(table))
                rsid = table["variant"].to_numpy(str)
                pd.DataFrame({"GENE": gene, "RSID1": rsid[i], "RSID2": rsid[j], "VALUE": cov[i, j]}).to_csv(
                    handle, sep=" ", header=False, index=False)

    atomic_write_with(path, write)


def write_twas_exports(run_dir: Path, data, blocks, elastic_net: dict, genes: pd.DataFrame) -> None:
    """weights.csv, predictdb.db and covariances.txt.gz from the final elastic net (`coef` [G, P],
    `intercept` [G]) and genes.csv's rows (the same gene order)."""
    run_dir = Path(run_dir)
    weights = weight_table(data, blocks, elastic_net["coef"])
    atomic_write_with(run_dir / WEIGHTS_CSV, lambda tmp: weights.to_csv(tmp, index=False))
    if weights["eff_allele"].isna().any():
        log.warning("the genotypes carry no alleles (built in memory, not read from a .bim): "
                    "%s and %s are not written", WEIGHTS_DB, COVARIANCES)
        return
    write_predictdb(run_dir / WEIGHTS_DB, weights, extra_table(weights, genes, elastic_net["intercept"]))
    write_covariances(run_dir / COVARIANCES, data, weights)
