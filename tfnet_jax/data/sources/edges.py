"""Undirected edges over Entrez IDs, the gene mapping glue and co-membership, shared by every
source of tfnet-networks.

Inside the builder a gene is its Entrez ID as an int64 (what the layers are written as); an
edge set is canonical: gene_a < gene_b, each pair once, no self loop, weight > 0.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

ToEntrez = Callable[[Sequence[str]], list]  # names -> Entrez ID strings (None: unmapped)
EXAMPLES = 5  # unmapped IDs shown per layer in the report


@dataclass
class Edges:
    """A canonical undirected edge set: gene_a < gene_b (Entrez IDs), each pair once."""

    gene_a: np.ndarray  # int64 [E]
    gene_b: np.ndarray  # int64 [E]
    weight: np.ndarray  # float [E], > 0 (float32 where the source's values are: written shortest)

    @property
    def num_edges(self) -> int:
        return int(self.gene_a.shape[0])

    @property
    def num_genes(self) -> int:
        return int(len(np.union1d(self.gene_a, self.gene_b)))


@dataclass
class Layer:
    """One layer a source built, with how its input IDs mapped to genes."""

    edges: Edges
    mapped: int = 0  # distinct input IDs (proteins, symbols, ...) mapped to a gene
    unmapped: list = field(default_factory=list)  # distinct input IDs mapped to none
    skipped_sets: int = 0  # sets over the maximum size (co-membership layers)


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def source_entry(path: str | Path, rows_read: int = 0, rows_kept: int = 0,
                 dropped: dict | None = None) -> dict:
    """A source file's part of the report."""
    return {"file": str(path), "sha256": sha256_of(path), "rows_read": int(rows_read),
            "rows_kept": int(rows_kept),
            "dropped": {reason: int(n) for reason, n in (dropped or {}).items() if n}}


def names_to_entrez(names: np.ndarray, to_entrez: ToEntrez) -> tuple[np.ndarray, int, list[str]]:
    """(Entrez IDs int64 aligned with `names`, -1 where unmapped; distinct names mapped; distinct
    names unmapped, in first-seen order). Each distinct name is looked up once."""
    codes, uniques = pd.factorize(np.asarray(names, dtype=object))
    looked_up = to_entrez([str(u) for u in uniques])
    ids = np.array([-1 if i is None else int(i) for i in looked_up], dtype=np.int64)
    out = np.where(codes >= 0, ids[np.maximum(codes, 0)], -1)
    missing = ids < 0
    return out, int((~missing).sum()), [str(u) for u in uniques[missing]]


def canonical(gene_a: np.ndarray, gene_b: np.ndarray, weight: np.ndarray,
              merge: str = "max") -> tuple[Edges, int]:
    """(Edges, self loops dropped): each unordered pair once, its rows' weights merged by
    `merge` ("max": one value listed in both directions; "sum": counts of supporting rows)."""
    gene_a, gene_b = np.asarray(gene_a, np.int64), np.asarray(gene_b, np.int64)
    weight = np.asarray(weight)
    weight = weight if weight.dtype in (np.float32, np.float64) else weight.astype(np.float64)
    loop = gene_a == gene_b
    gene_a, gene_b, weight = gene_a[~loop], gene_b[~loop], weight[~loop]
    low, high = np.minimum(gene_a, gene_b), np.maximum(gene_a, gene_b)
    genes, codes = np.unique(np.concatenate([low, high]), return_inverse=True)
    pair = codes[:len(low)].astype(np.int64) * len(genes) + codes[len(low):]
    pairs, inverse = np.unique(pair, return_inverse=True)
    if merge == "sum":
        merged = np.bincount(inverse, weights=weight, minlength=len(pairs))
    else:
        merged = np.full(len(pairs), -np.inf, dtype=weight.dtype)
        np.maximum.at(merged, inverse, weight)
    keep = merged > 0
    pairs, merged = pairs[keep], merged[keep]
    return Edges(genes[pairs // len(genes)], genes[pairs % len(genes)], merged), int(loop.sum())


def co_membership(set_codes: np.ndarray, genes: np.ndarray,
                  max_size: int | None) -> tuple[Edges, int, int]:
    """(Edges, sets skipped as over `max_size`, memberships used): a pair's weight is the sum,
    over the sets holding both genes, of 1 / set size (size after mapping; a gene listed twice
    in a set counts once; genes < 0 are unmapped and left out).

    One sparse product (sets x genes)^T (sets x genes) scaled by 1/size: no Python loop over
    sets and no list of every pair instance, so MSigDB-size collections take seconds.
    """
    set_codes, genes = np.asarray(set_codes, np.int64), np.asarray(genes, np.int64)
    keep = genes >= 0
    set_codes, genes = set_codes[keep], genes[keep]
    gene_ids, gene_codes = np.unique(genes, return_inverse=True)
    set_ids, set_codes = np.unique(set_codes, return_inverse=True)
    member = np.unique(set_codes.astype(np.int64) * max(len(gene_ids), 1) + gene_codes)
    set_codes, gene_codes = member // max(len(gene_ids), 1), member % max(len(gene_ids), 1)
    size = np.bincount(set_codes, minlength=len(set_ids))
    too_big = size > max_size if max_size is not None else np.zeros(len(size), bool)
    used = ~too_big[set_codes] & (size[set_codes] > 1)
    set_codes, gene_codes = set_codes[used], gene_codes[used]
    shape = (len(set_ids), len(gene_ids))
    ones = sp.csr_matrix((np.ones(len(set_codes)), (set_codes, gene_codes)), shape=shape)
    scaled = sp.csr_matrix((1.0 / size[set_codes], (set_codes, gene_codes)), shape=shape)
    product = sp.triu(ones.T.tocsr() @ scaled, k=1).tocoo()
    order = np.lexsort((product.col, product.row))
    edges = Edges(gene_ids[product.row[order]], gene_ids[product.col[order]],
                  product.data[order].astype(np.float64))
    return edges, int(too_big.sum()), int(used.sum())
