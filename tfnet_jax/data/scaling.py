"""The one train-fitted standardiser: per-column mean / sd from the rows a model may learn from.

Every family fits its scalers here, on training rows only, so validation and test rows
never shape the scale they are measured in. One constant-column rule for all of them: a
column whose sd is at most CONSTANT_RTOL times its largest absolute value on the fitted
rows is constant (float rounding of a mean of identical values leaves such a residue);
it gets sd 1, so it is only centred and never blown up into noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfnet_jax.errors import DataError

CONSTANT_RTOL = 1e-6


def constant_columns(values, axis: int = 0) -> np.ndarray:
    """True where a column of `values` is constant along `axis` (the rule of this module)."""
    values = np.asarray(values, np.float64)
    sd = values.std(axis=axis)
    return sd <= CONSTANT_RTOL * np.abs(values).max(axis=axis)


@dataclass(frozen=True)
class Standardiser:
    """Column-wise (x - mean) / sd with statistics of the fitted rows (axis 0)."""

    mean: np.ndarray
    sd: np.ndarray

    @classmethod
    def fit(cls, values, rows=None, name: str = "values") -> "Standardiser":
        """Statistics over axis 0 of `values[rows]` (rows: bool mask or indices; None: all).

        Any trailing shape is kept: values [n, ...] give mean and sd of shape [...].
        """
        values = np.asarray(values, np.float64)
        if values.ndim < 1:
            raise DataError(f"{name}: cannot standardise a scalar")
        fitted = values if rows is None else values[np.asarray(rows)]
        if fitted.shape[0] == 0:
            raise DataError(f"{name}: no rows to fit the standardiser on")
        sd = fitted.std(axis=0)
        sd = np.where(constant_columns(fitted), 1.0, sd)
        return cls(fitted.mean(axis=0), sd)

    def transform(self, values) -> np.ndarray:
        return (np.asarray(values, np.float64) - self.mean) / self.sd

    def inverse(self, values) -> np.ndarray:
        return np.asarray(values, np.float64) * self.sd + self.mean


def standardise_blocks(values, blocks, rows) -> np.ndarray:
    """Several node-feature tables side by side (`blocks`: name, columns, present), each scaled
    with statistics of the `rows` (bool [N]) that have it, zeros where a gene lacks it; then
    one missing-indicator column (1 = missing) per table that some gene lacks.

    Per table, so one table's missing genes never shape another table's scale."""
    values = np.asarray(values, np.float64)
    rows = np.asarray(rows, bool)
    scaled, missing = [], []
    for block in blocks:
        part = values[:, block.columns]
        scaler = Standardiser.fit(part, block.present & rows, f"node features '{block.name}'")
        scaled.append(np.where(block.present[:, None], scaler.transform(part), 0.0))
        if not block.present.all():
            missing.append(~block.present)
    indicators = np.stack(missing, axis=1) if missing else np.zeros((len(values), 0), bool)
    return np.concatenate([*scaled, indicators.astype(np.float64)], axis=1)
