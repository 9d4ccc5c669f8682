"""Genes in blocks for GenoNet: bucketed by variant count and padded, so every block of one
bucket, on every fold, runs the same compiled program (one compile per bucket).

Genes are bucketed by variant count (next power of two, at least 128, as the elastic net
does) and grouped in fixed-size blocks within a bucket (a bucket's last block padded with
empty genes), so a narrow gene does not pay for the widest.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tfnet_jax.data.genotype.container import GenotypeData
from tfnet_jax.data.genotype.dosage_store import DosageStore
from tfnet_jax.data.genotype.readers import regress_out_covariates
from tfnet_jax.data.scaling import Standardiser


@dataclass
class Block:
    genes: list[str]               # real genes of the block (the rest is padding)
    source: np.ndarray | list[DosageStore]  # float32 dosages [n, G, P], or each real gene's own store
    vmask: np.ndarray              # bool [G, P]
    annotations: np.ndarray | None  # float32 [G, P, k], standardised over all variants

    @property
    def size(self) -> int:
        return self.vmask.shape[0]

    @property
    def dosage(self) -> np.ndarray:
        """float32 [n, G, P], NaN = missing, 0 at padding. Built on use from the genes' own
        arrays, so only the block in use is held padded (memory: the block, not the cohort)."""
        if isinstance(self.source, np.ndarray):
            return self.source
        out = np.zeros((self.source[0].shape[0], *self.vmask.shape), np.float32)
        for i, gene in enumerate(self.source):
            out[:, i, :gene.shape[1]] = gene.decode()
        return out


def variant_bucket(count: int, widest: int) -> int:
    """The padded variant count of a gene with `count` variants (the elastic net's rule)."""
    return int(min(max(128, 1 << max(count - 1, 0).bit_length()), widest))


def concat_genes(parts: list[np.ndarray], gene_axis: int, variant_axis: int) -> np.ndarray:
    """Per-block arrays joined along the gene axis, each padded (0 / False) on its variant axis
    to the widest (one part: itself)."""
    widest = max(part.shape[variant_axis] for part in parts)
    if len(parts) == 1:  # one block's worth can be large: no copy
        return parts[0]

    def padded(part):
        pad = [(0, 0)] * part.ndim
        pad[variant_axis] = (0, widest - part.shape[variant_axis])
        return np.pad(part, pad)
    return np.concatenate([padded(part) for part in parts], axis=gene_axis)


def real_genes(blocks: list[Block], field: str) -> np.ndarray:
    """A block field over every real gene (`concat_genes`): dosage -> [n, G, P],
    vmask -> [G, P], annotations -> [G, P, k]."""
    gene_axis, variant_axis = (1, 2) if field == "dosage" else (0, 1)

    def real(b):  # a view: no copy of a block's dosages
        value = getattr(b, field)
        index = [slice(None)] * value.ndim
        index[gene_axis] = slice(0, len(b.genes))
        return value[tuple(index)]
    return concat_genes([real(b) for b in blocks], gene_axis, variant_axis)


def make_blocks(data: GenotypeData, genes_per_block: int) -> list[Block]:
    counts = [len(w.variant_ids) for w in data.windows]
    widest = max(counts)
    size = min(genes_per_block, len(data.windows))
    annot_mean = annot_sd = None
    if data.annotation_names:
        # Annotations describe variants, not individuals: no held-out rows to protect here.
        scaler = Standardiser.fit(np.concatenate([w.annotations for w in data.windows]), name="annotations")
        annot_mean, annot_sd = scaler.mean, scaler.sd
    buckets: dict[int, list] = {}
    for w, count in zip(data.windows, counts):  # input order kept within a bucket
        buckets.setdefault(variant_bucket(count, widest), []).append(w)
    blocks = []
    for p, members in sorted(buckets.items()):
        for start in range(0, len(members), size):
            windows = members[start:start + size]
            vmask = np.zeros((size, p), bool)
            annot = None if annot_mean is None else np.zeros((size, p, len(annot_mean)), np.float32)
            for i, w in enumerate(windows):
                vmask[i, :len(w.variant_ids)] = True
                if annot is not None:
                    annot[i, :len(w.variant_ids)] = (w.annotations - annot_mean) / annot_sd
            blocks.append(Block([w.gene for w in windows], [w.store for w in windows], vmask, annot))
    return blocks


def fold_targets(data: GenotypeData, train: np.ndarray) -> np.ndarray:
    """Expression [n, genes] with covariates regressed out on the training rows only."""
    y = data.expression.to_numpy(np.float64)
    if data.covariates is not None:
        y = regress_out_covariates(y, data.covariates.to_numpy(np.float64), train)
    return y


def block_dosages(data: GenotypeData, block: Block, table: pd.DataFrame) -> np.ndarray:
    """[n, G, P] raw dosages of `block` from a variant table, 0 at padding."""
    windows = {w.gene: w for w in data.windows}
    out = np.zeros((len(table), *block.vmask.shape), np.float32)
    for i, gene in enumerate(block.genes):
        ids = windows[gene].variant_ids
        out[:, i, :len(ids)] = table[list(ids)].to_numpy()
    return out
