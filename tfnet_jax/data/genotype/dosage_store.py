"""Compact dosages [individuals, variants] for a run's gene windows (GenoNet holds every window
for the whole run; each is decoded to float32 only when a block uses it).

Three encodings, chosen per window by its values:
- hard calls (every value 0, 1, 2 or NaN: PLINK, VCF GT): int8, -1 = missing; exact.
- imputed dosages in [0, 2] (VCF DS, PredictDB dosage text): uint16 fixed point in steps of
  1/30000, 65535 = missing. 30000 is a multiple of 10^4 (and of 8), so dosages with up to 4
  decimals (PredictDB and minimac write 3) decode to the same float32 as parsed (correctly
  rounded k / 30000); any other value is within half a step (plus float32 rounding: < 2e-5). float16 would
  not do: its spacing near 2 is 0.002, which loses PredictDB's third decimal.
- anything else (values outside [0, 2], e.g. arrays built in memory): float32 as given.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HARD_MISSING = -1
FIXED_STEPS = 30000            # per unit of dosage: 2.0 -> 60000
FIXED_MISSING = 65535
# Decoding is one table look-up per value (exact: the table holds the correctly rounded float32).
_HARD_TABLE = np.array([0.0, 1.0, 2.0] + [np.nan] * 253, np.float32)  # indexed by the uint8 view
_FIXED_TABLE = np.concatenate([np.arange(2 * FIXED_STEPS + 1, dtype=np.float32) / np.float32(FIXED_STEPS),
                               np.full(FIXED_MISSING - 2 * FIXED_STEPS, np.nan, np.float32)])


@dataclass(frozen=True)
class DosageStore:
    """One window's dosages, encoded (see the module docstring); `decode()` gives float32,
    NaN = missing, whatever the encoding."""
    codes: np.ndarray  # int8 | uint16 | float32 [individuals, variants]

    @classmethod
    def encode(cls, dosages) -> DosageStore:
        x = np.asarray(dosages, np.float32)
        if x.ndim != 2:
            raise ValueError(f"dosages must be [individuals, variants], got shape {x.shape}")
        missing = np.isnan(x)
        observed = x[~missing]
        if np.isin(observed, (0.0, 1.0, 2.0)).all():
            return cls(np.where(missing, HARD_MISSING, np.nan_to_num(x)).astype(np.int8))
        if observed.min() >= 0.0 and observed.max() <= 2.0:
            scaled = np.rint(np.nan_to_num(x).astype(np.float64) * FIXED_STEPS)
            return cls(np.where(missing, FIXED_MISSING, scaled).astype(np.uint16))
        return cls(np.ascontiguousarray(x))

    @property
    def shape(self) -> tuple[int, int]:
        return self.codes.shape

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes

    def decode(self, columns=None) -> np.ndarray:
        """float32 [individuals, variants] (or only `columns`, any numpy index), NaN = missing."""
        codes = self.codes if columns is None else self.codes[:, columns]
        if codes.dtype == np.int8:
            return _HARD_TABLE[codes.view(np.uint8)]
        if codes.dtype == np.uint16:
            return _FIXED_TABLE[codes]
        return np.array(codes, np.float32)  # a copy: callers may write to it
