"""Seeded, stable train / valid / test splits by perturbed gene.

Each type's genes are ordered by blake2b(f"{seed}:{gene}"), so a gene's place in the
order does not depend on which other genes exist (unlike a shuffle); the first
round(n * test_frac) genes (at least 1) are test, the next round(n * valid_frac)
(at least 1) valid, the rest train. A split given with the data (`data.splits`) is kept
as is, except that a given split without valid rows gets them carved from its train
rows by the same ordering.
"""
from __future__ import annotations

import hashlib

import numpy as np

from tfnet_jax.data.dataset import SPLIT_NAMES, DataError, PerturbationData


def hash_order(genes: np.ndarray, seed: int) -> np.ndarray:
    """Row indices of `genes` sorted by a seeded hash (gene name breaks the unlikely ties)."""
    def key(row: int) -> tuple[int, str]:
        gene = str(genes[row])
        digest = hashlib.blake2b(f"{seed}:{gene}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big"), gene
    return np.asarray(sorted(range(len(genes)), key=key), dtype=np.int64)


def _at_least_one(count: float) -> int:
    return max(1, round(count))


def _check_enough(pert_type: str, split: np.ndarray, min_train: int) -> None:
    counts = {name: int((split == name).sum()) for name in SPLIT_NAMES}
    if counts["train"] < min_train or counts["test"] == 0:
        raise DataError(
            f"perturbation type '{pert_type}' has too few genes to split ({len(split)} genes; "
            f"split {counts}; need at least {min_train} train and 1 test)")


def _fresh_split(genes: np.ndarray, seed: int, valid_frac: float, test_frac: float) -> np.ndarray:
    order = hash_order(genes, seed)
    num_test = _at_least_one(len(genes) * test_frac)
    num_valid = _at_least_one(len(genes) * valid_frac)
    split = np.full(len(genes), "train", dtype="<U5")
    split[order[:num_test]] = "test"
    split[order[num_test:num_test + num_valid]] = "valid"
    return split


def _given_split(pert_type: str, genes: np.ndarray, given: np.ndarray, seed: int,
                 valid_frac: float) -> np.ndarray:
    split = np.asarray(given, dtype="<U5").copy()
    if split.shape != genes.shape:
        raise DataError(f"data.splits['{pert_type}']: {split.shape[0]} entries for "
                        f"{genes.shape[0]} perturbed genes")
    unknown = sorted(set(split.tolist()) - set(SPLIT_NAMES))
    if unknown:
        raise DataError(f"data.splits['{pert_type}']: unknown split name(s) {unknown}")
    if not (split == "valid").any():
        train_rows = np.flatnonzero(split == "train")
        carved = train_rows[hash_order(genes[train_rows], seed)]
        split[carved[:_at_least_one(len(train_rows) * valid_frac)]] = "valid"
    return split


def assign_splits(data: PerturbationData, seed: int, valid_frac: float = 0.1,
                  test_frac: float = 0.2, min_train: int = 5) -> dict[str, np.ndarray]:
    """Split every type's rows: type -> str array aligned with its SignatureTable rows."""
    given = data.splits or {}
    result: dict[str, np.ndarray] = {}
    for pert_type, table in data.signatures.items():
        genes = np.asarray(table.pert_genes, dtype=str)
        if pert_type in given:
            split = _given_split(pert_type, genes, given[pert_type], seed, valid_frac)
        else:
            split = _fresh_split(genes, seed, valid_frac, test_frac)
        _check_enough(pert_type, split, min_train)
        result[pert_type] = split
    return result


def split_counts(splits: dict[str, np.ndarray]) -> dict[str, dict[str, int]]:
    """type -> {split name: number of rows}, for logging."""
    return {pert_type: {name: int((split == name).sum()) for name in SPLIT_NAMES}
            for pert_type, split in splits.items()}
