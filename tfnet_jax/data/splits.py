"""Every split of the package: seeded, stable, by a hash of each unit's name.

Units (perturbed genes, samples, groups, individuals) are ordered by
blake2b(f"{seed}:{unit}"), so a unit's place in the order does not depend on which other
units exist (unlike a shuffle). From that one order come
- `holdout`: the first units reaching test_frac of the rows are test, the next valid, the
  rest train (perturbation genes per type, TFNet samples or groups);
- `kfold`: the order dealt round-robin into k folds (GenoNet's outer folds);
- `validation_slice`: the first of given training rows in the order (a valid set carved
  from a given split, GenoNet's early-stopping slice).
For perturbation data a split given with the data (`data.splits`) is kept as is, except
that a given split without valid rows gets them carved from its train rows. Computed
perturbation splits have a scenario (`unseen_genes`: one gene order for every type, so a
test gene is held out in every type; `other_type`: each type's order salted by the type,
so a gene held out in one type can be a training gene of another) and a mode (`random`:
hash order; `farthest`: genes farthest from the perturbed genes' feature centroid first,
so test, then valid, take the least typical genes).
"""
from __future__ import annotations

import hashlib

import numpy as np

from tfnet_jax.data.expression.container import ExpressionData
from tfnet_jax.data.perturbation.container import SPLIT_NAMES, PerturbationData
from tfnet_jax.errors import DataError

# A prediction's `split`: the role its input had in the run's split; new inputs are unseen.
UNSEEN = "unseen"
PREDICTION_SPLITS = (*SPLIT_NAMES, UNSEEN)


def hash_order(units: np.ndarray, seed: int | str) -> np.ndarray:
    """Row indices of `units` sorted by a seeded hash (the unit name breaks the unlikely ties)."""
    def key(row: int) -> tuple[int, str]:
        unit = str(units[row])
        digest = hashlib.blake2b(f"{seed}:{unit}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big"), unit
    return np.asarray(sorted(range(len(units)), key=key), dtype=np.int64)


def _at_least_one(count: float) -> int:
    return max(1, round(count))


def _units_reaching(cumulative: np.ndarray, target: int) -> int:
    """How many leading units it takes for their cumulative row count to reach `target`."""
    return int(np.searchsorted(cumulative, target)) + 1


def holdout(units, seed: int | str, valid_frac: float, test_frac: float, sizes=None,
            valid_counted_from: str = "test_end", order=None) -> np.ndarray:
    """'train' / 'valid' / 'test' per unit, by hash order (or `order`, row indices first-held-out
    first); `sizes`: rows per unit (default 1).

    Test takes the first units whose rows reach round(total * test_frac) (at least 1 row).
    Valid takes the next units, until their own rows reach round(total * valid_frac)
    (valid_counted_from="test_end"), or until test + valid rows reach
    round(total * (test_frac + valid_frac)) (="start": a test set that overshot its share
    leaves less to valid); valid has at least one unit either way.
    """
    units = np.asarray(units, dtype=str)
    sizes = np.ones(len(units), np.int64) if sizes is None else np.asarray(sizes, np.int64)
    if sizes.shape != units.shape:
        raise DataError(f"holdout: {sizes.shape[0]} sizes for {units.shape[0]} units")
    if valid_counted_from not in ("test_end", "start"):
        raise DataError(f"holdout: valid_counted_from={valid_counted_from!r}; expected "
                        "'test_end' or 'start'")
    split = np.full(len(units), "train", dtype="<U5")
    if len(units) == 0:
        return split
    order = hash_order(units, seed) if order is None else np.asarray(order, np.int64)
    cumulative = np.cumsum(sizes[order])
    total = int(cumulative[-1])
    num_test = _units_reaching(cumulative, _at_least_one(total * test_frac))
    if valid_counted_from == "start":
        boundary = _units_reaching(cumulative, round(total * (test_frac + valid_frac)))
        num_valid = max(1, boundary - num_test)
    else:
        taken = cumulative[min(num_test, len(units)) - 1]
        num_valid = _units_reaching(cumulative[num_test:] - taken, _at_least_one(total * valid_frac))
    split[order[:num_test]] = "test"
    split[order[num_test:num_test + num_valid]] = "valid"
    return split


def kfold(units, k: int, seed: int | str) -> np.ndarray:
    """Fold 0..k-1 per unit: the hash order dealt round-robin, so fold sizes differ by <= 1."""
    units = np.asarray(units, dtype=str)
    if int(k) != k or k < 2:
        raise DataError(f"kfold: k={k!r} must be an integer >= 2")
    if len(units) < k:
        raise DataError(f"kfold: {len(units)} units are too few for {k} folds")
    folds = np.empty(len(units), np.int64)
    folds[hash_order(units, seed)] = np.arange(len(units)) % k
    return folds


def validation_slice(units, rows, seed: int | str, valid_frac: float,
                     min_rows: int = 1) -> np.ndarray:
    """Indices (into `units`) of the validation rows carved from training `rows`: the first
    max(min_rows, round(len(rows) * valid_frac)) of them in hash order."""
    rows = np.asarray(rows, dtype=np.int64)
    count = max(int(min_rows), round(len(rows) * valid_frac))
    if count >= len(rows):
        raise DataError(f"validation slice: {count} valid rows leave none of the {len(rows)} "
                        "training rows to train on")
    carved = rows[hash_order(np.asarray(units, dtype=str)[rows], seed)]
    return carved[:count]


def _check_enough(pert_type: str, split: np.ndarray, min_train: int) -> None:
    counts = {name: int((split == name).sum()) for name in SPLIT_NAMES}
    if counts["train"] < min_train or counts["test"] == 0:
        raise DataError(
            f"perturbation type '{pert_type}' has too few genes to split ({len(split)} genes; "
            f"split {counts}; need at least {min_train} train and 1 test)")


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
        try:
            split[validation_slice(genes, train_rows, seed, valid_frac)] = "valid"
        except DataError as err:
            raise DataError(f"data.splits['{pert_type}']: {err}") from None
    return split


SPLIT_SCENARIOS = ("unseen_genes", "other_type")
SPLIT_MODES = ("random", "farthest")


def feature_outlyingness(data: PerturbationData) -> np.ndarray:
    """Per gene, the distance of its node features from the centroid of the perturbed genes'
    features, each feature standardised over those genes (per node-feature table, over the
    perturbed genes that have it; 0 in a table a gene lacks); -inf for genes without features."""
    if data.node_features is None:
        raise DataError("split.mode=farthest orders genes by their node features, and the data "
                        "has none")
    perturbed = np.zeros(data.num_genes, bool)
    for table in data.signatures.values():
        perturbed[table.pert_index] = True
    features = np.asarray(data.node_features, np.float64)
    z = np.zeros_like(features)
    has = np.zeros(data.num_genes, bool)
    for block in data.blocks():
        reference = features[perturbed & block.present, block.columns]
        if len(reference) < 2:
            raise DataError(f"split.mode=farthest: fewer than 2 perturbed genes have node features"
                            f"{'' if data.feature_blocks is None else f' of {block.name!r}'}")
        sd = reference.std(axis=0)
        scaled = (features[:, block.columns] - reference.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
        z[:, block.columns] = np.where(block.present[:, None], scaled, 0.0)
        has |= block.present
    return np.where(has, np.linalg.norm(z, axis=1), -np.inf)


def assign_splits(data: PerturbationData, seed: int, valid_frac: float = 0.1,
                  test_frac: float = 0.2, min_train: int = 5, scenario: str = "unseen_genes",
                  mode: str = "random") -> dict[str, np.ndarray]:
    """Split every type's rows: type -> str array aligned with its SignatureTable rows."""
    given = data.splits or {}
    if scenario not in SPLIT_SCENARIOS or mode not in SPLIT_MODES:
        raise DataError(f"split: scenario={scenario!r}, mode={mode!r}: expected scenario in "
                        f"{SPLIT_SCENARIOS} and mode in {SPLIT_MODES}")
    if given and (scenario, mode) != (SPLIT_SCENARIOS[0], SPLIT_MODES[0]):
        raise DataError(f"split.scenario={scenario}, split.mode={mode}: the data gives its own "
                        f"split (data.splits); these apply only to computed splits")
    distance = feature_outlyingness(data) if mode == "farthest" else None
    result: dict[str, np.ndarray] = {}
    for pert_type, table in data.signatures.items():
        genes = np.asarray(table.pert_genes, dtype=str)
        salt = f"{seed}:{pert_type}" if scenario == "other_type" else seed
        if pert_type in given:
            split = _given_split(pert_type, genes, given[pert_type], seed, valid_frac)
        elif distance is not None:  # farthest first; hash order breaks ties
            by_hash = hash_order(genes, salt)
            order = by_hash[np.argsort(-distance[table.pert_index[by_hash]], kind="stable")]
            split = holdout(genes, salt, valid_frac, test_frac, order=order)
        else:
            split = holdout(genes, salt, valid_frac, test_frac)
        _check_enough(pert_type, split, min_train)
        result[pert_type] = split
    return result


def split_counts(splits: dict[str, np.ndarray]) -> dict[str, dict[str, int]]:
    """type -> {split name: number of rows}, for logging."""
    return {pert_type: {name: int((split == name).sum()) for name in SPLIT_NAMES}
            for pert_type, split in splits.items()}


MIN_HELD_OUT = 2  # R^2 needs two samples


def split_samples(data: ExpressionData, seed: int, valid_frac: float = 0.1, test_frac: float = 0.2,
                  min_train: int = 5, by: str = "sample") -> np.ndarray:
    """'train' / 'valid' / 'test' per sample: by sample, or by group (whole groups held out)."""
    if by not in ("sample", "group"):
        raise DataError(f"split.by={by!r}: expected 'sample' or 'group'")
    if by == "sample":
        units, unit_of = np.asarray(data.samples, str), np.arange(data.num_samples)
    else:
        if data.groups is None:
            raise DataError("split.by=group needs a group column: set data.group_column")
        units, unit_of = np.unique(np.asarray(data.groups, str), return_inverse=True)
        if len(units) < 3:
            raise DataError(f"split.by=group: {len(units)} group(s) {units.tolist()}; at least 3 "
                            "are needed (train, valid and test each get whole groups)")
    # The first units (in hash order) whose samples reach test_frac go to test, then valid
    # up to test_frac + valid_frac of the samples.
    unit_split = holdout(units, seed, valid_frac, test_frac,
                         sizes=np.bincount(unit_of, minlength=len(units)), valid_counted_from="start")
    split = unit_split[unit_of]
    counts = {name: int((split == name).sum()) for name in SPLIT_NAMES}
    if counts["train"] < min_train or counts["valid"] < MIN_HELD_OUT or counts["test"] < MIN_HELD_OUT:
        raise DataError(
            f"{data.source}: too few samples to split ({data.num_samples} samples, split {counts}); "
            f"need at least split.min_train={min_train} train and {MIN_HELD_OUT} valid and test "
            f"samples (split.valid_frac={valid_frac}, split.test_frac={test_frac})")
    return split
