"""Finished genes stop costing work inside a gene block (`fit_gene_block`).

A block's shapes are fixed, so a gene that early-stopped (context `active` = 0) would still be
computed every step. When the active genes drop to half the block or fewer, training goes on
with only them, in a block of the next power-of-two size (filled up with stopped genes, still
inactive): every per-gene leaf of the parameters and of the optimizer state, the context and the
data are gathered on the gene axis; shared leaves (the annotation gate, the step count) are
kept. One Trainer (one compile) per (block shape, size): at most log2(block) extra programs.

Exact but for the order of sums: the loss is a per-gene sum (each gene's gradient is its own),
its normaliser stays the full block's (`make_loss_fn`'s `genes`), and the gradient clip's global norm sees
the same non-zero gradients. With dropout > 0 the masks differ (their shape is the block's).
"""
from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from tfnet_jax.data.genotype.blocks import Block
from tfnet_jax.train.engine import Trainer


def compact_size(n_active: int, size: int) -> int | None:
    """The next block size once `n_active` of `size` genes train (None: keep `size`)."""
    if n_active == 0 or 2 * n_active > size:
        return None
    return 1 << max(n_active - 1, 0).bit_length()


def take_genes(tree, genes: np.ndarray, axis: int = 0):
    """Every array leaf of `tree` (None leaves stay None) at `genes` on `axis`."""
    return jax.tree.map(lambda a: np.take(np.asarray(a), genes, axis=axis), tree)


def subset_state(state, template, genes: np.ndarray):
    """A trainer state for fewer genes: each leaf of `state` (host arrays) whose shape differs
    from `template`'s (a trainer state of the smaller block) is gathered at `genes` on its
    leading gene axis; equal shapes are shared leaves (the gate, the optimizer's step count)."""
    def pick(full, small):
        full = np.asarray(full)
        if full.shape == np.shape(small):
            return full
        out = full[genes]
        if out.shape != np.shape(small):
            raise ValueError(f"state leaf {full.shape} does not shrink to {np.shape(small)} on its gene axis")
        return out
    return jax.tree.map(pick, state, template)


class Trainers:
    """One Trainer per (block shape, gene count), built on first use by
    `build(block, gene count, context of that size)`."""

    def __init__(self, build: Callable[[Block, int, object], Trainer]):
        self.build = build
        self.trainers: dict[tuple, Trainer] = {}

    def get(self, block: Block, size: int, context) -> Trainer:
        key = (*block.vmask.shape, size)
        if key not in self.trainers:
            self.trainers[key] = self.build(block, size, context)
        return self.trainers[key]
