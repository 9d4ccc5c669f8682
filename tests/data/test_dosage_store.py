"""The compact dosage store: hard calls as int8 (bit-exact), imputed dosages as uint16 fixed
point (exact to 4 decimals, else within 2e-5), anything else float32; NaN = missing throughout."""
import numpy as np
import pytest

from tfnet_jax.data.genotype.blocks import Block
from tfnet_jax.data.genotype.container import GeneWindow
from tfnet_jax.data.genotype.dosage_store import DosageStore


def test_hard_calls_are_int8_and_round_trip_bit_exact():
    x = np.array([[0, 1, 2, np.nan], [2, np.nan, 0, 1]], np.float32)
    store = DosageStore.encode(x)
    assert store.codes.dtype == np.int8 and store.nbytes == x.size
    np.testing.assert_array_equal(store.codes, [[0, 1, 2, -1], [2, -1, 0, 1]])
    out = store.decode()
    assert out.dtype == np.float32
    assert out.tobytes() == x.tobytes()  # NaN at the same places, same bits
    np.testing.assert_array_equal(store.decode([3, 0]), x[:, [3, 0]])


def test_three_decimal_dosages_round_trip_exactly():
    # Every PredictDB value 0.000 .. 2.000 as a file's float32 parse of its text.
    parsed = np.array([np.float32(f"{k / 1000:.3f}") for k in range(2001)], np.float32)
    x = np.stack([parsed, parsed[::-1]])
    x[1, 5] = np.nan
    store = DosageStore.encode(x)
    assert store.codes.dtype == np.uint16 and store.nbytes == 2 * x.size
    assert store.codes[0, 1234] == 1234 * 30 and store.codes[1, 5] == 65535
    assert store.decode().tobytes() == x.tobytes()


def test_other_dosages_within_the_stated_precision():
    x = np.random.default_rng(0).uniform(0, 2, (50, 200)).astype(np.float32)
    x[3, 7] = np.nan
    out = DosageStore.encode(x).decode()
    assert np.isnan(out[3, 7]) and np.isnan(out).sum() == 1
    err = np.abs(np.nan_to_num(out) - np.nan_to_num(x))
    assert err.max() <= 2e-5 and err.max() > 0  # lossy, but within half a 1/30000 step
    assert out[0].min() >= 0 and out[0].max() <= 2


def test_values_outside_0_2_are_kept_as_float32():
    x = np.array([[-0.5, 1.0], [3.25, np.nan]], np.float32)
    store = DosageStore.encode(x)
    assert store.codes.dtype == np.float32
    out = store.decode()
    assert out.tobytes() == x.tobytes()
    out[0, 0] = 9.0  # a decoded array is the caller's own
    assert store.decode()[0, 0] == -0.5


def test_all_missing_window_and_bad_shape():
    store = DosageStore.encode(np.full((3, 2), np.nan, np.float32))
    assert store.codes.dtype == np.int8 and np.isnan(store.decode()).all()
    with pytest.raises(ValueError, match="individuals, variants"):
        DosageStore.encode(np.zeros(4))


def test_gene_window_and_block_decode_to_float32():
    hard = GeneWindow("g1", "1", 0, 1, np.array(["a", "b"]), np.array([1, 2]),
                      np.array([[0, 2], [1, np.nan], [2, 0]], np.float32))
    dose = GeneWindow("g2", "1", 0, 1, np.array(["c"]), np.array([3]), np.array([[0.25], [1.5], [np.nan]]))
    assert hard.store.codes.dtype == np.int8 and dose.store.codes.dtype == np.uint16
    block = Block(["g1", "g2"], [hard.store, dose.store], np.array([[1, 1], [1, 0], [0, 0]], bool), None)
    want = np.zeros((3, 3, 2), np.float32)
    want[:, 0] = [[0, 2], [1, np.nan], [2, 0]]
    want[:, 1, 0] = [0.25, 1.5, np.nan]
    assert block.dosage.tobytes() == want.tobytes()
