"""Tests of the GCTX (HDF5, CMap layout) reader/writer and the GCT text reader."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from tfnet_jax.data.io import gctx
from tfnet_jax.data.io.gct import read_gct
from tfnet_jax.data.io.gctx import GCTXReader, read_gctx, read_gctx_meta
from tfnet_jax.data.io.gctx_write import GCTXWriter, write_gctx
from tfnet_jax.errors import DataError

GENES = ["7157", "4609", "3845", "007", "1"]
SIGS = [f"SIG_{i:03d}" for i in range(12)]


@pytest.fixture
def matrix() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((len(GENES), len(SIGS))).astype(np.float32)


@pytest.fixture
def written(tmp_path, matrix) -> Path:
    row_meta = pd.DataFrame({"symbol": ["TP53", "MYC", "KRAS", None, "A1BG"],
                             "is_lm": [1, 1, 0, 0, 1]}, index=GENES)
    col_meta = pd.DataFrame({"cell": ["A375", "-666", *["PC3"] * 10],
                             "nsample": [3.0, np.nan, *range(10)]}, index=SIGS)
    path = tmp_path / "sigs.gctx"
    write_gctx(path, matrix, GENES, SIGS, row_meta, col_meta, chunks=(2, 5))
    return path


def write_raw(path: Path, matrix_on_disk: np.ndarray | None, rids, cids, **fields) -> Path:
    """A GCTX file written with plain h5py, as CMap's tools lay it out."""
    with h5py.File(path, "w") as f:
        f.attrs["version"] = np.bytes_("GCTX1.0")
        if matrix_on_disk is not None:
            f.create_dataset("0/DATA/0/matrix", data=matrix_on_disk)
        f.create_dataset("0/META/ROW/id", data=np.array(rids, dtype="S"))
        f.create_dataset("0/META/COL/id", data=np.array(cids, dtype="S"))
        for name, values in fields.items():
            f.create_dataset(f"0/META/COL/{name}", data=values)
    return path


def test_round_trip_values_ids_and_metadata(written, matrix, tmp_path):
    data = read_gctx(written)
    np.testing.assert_array_equal(data.matrix, matrix)
    assert data.matrix.dtype == np.float32
    assert data.row_ids.tolist() == GENES and data.col_ids.tolist() == SIGS  # "007" stays text
    assert data.row_meta["symbol"].tolist() == ["TP53", "MYC", "KRAS", None, "A1BG"]
    assert data.row_meta["is_lm"].tolist() == [1, 1, 0, 0, 1]
    assert list(data.row_meta.columns) == ["symbol", "is_lm"]  # the caller's field order
    assert data.col_meta["cell"].iloc[1] is None  # "-666" text -> None
    assert np.isnan(data.col_meta["nsample"].iloc[1])  # NaN written as -666, read as NaN
    assert data.col_meta["nsample"].iloc[0] == 3.0
    frame = data.to_frame()
    assert frame.loc["3845", "SIG_004"] == matrix[2, 4]
    row_meta, col_meta = read_gctx_meta(written)
    assert row_meta.index.tolist() == GENES and col_meta.index.tolist() == SIGS
    assert list(tmp_path.iterdir()) == [written]  # no temporary file left behind


def test_cmap_missing_marker_read_as_missing(tmp_path):
    path = write_raw(tmp_path / "cmap.gctx", np.zeros((3, 2), np.float32), ["1", "2"],
                     ["a", "b", "c"], pert_dose=np.array([1.0, -666.0, 2.0]),
                     count=np.array([-666, 4, 5]), cell=np.array([b"A375", b"-666", b"PC3"]))
    col_meta = read_gctx_meta(path)[1]
    assert np.isnan(col_meta["pert_dose"].iloc[1]) and col_meta["pert_dose"].iloc[2] == 2.0
    assert np.isnan(col_meta["count"].iloc[0]) and col_meta["count"].iloc[1] == 4
    assert col_meta["cell"].tolist() == ["A375", None, "PC3"]


def test_written_file_is_in_cmap_layout_for_plain_h5py(written, matrix):
    with h5py.File(written, "r") as f:
        assert f.attrs["version"] == b"GCTX1.0"
        on_disk = f["0/DATA/0/matrix"]
        assert on_disk.shape == (len(SIGS), len(GENES))  # signatures x genes
        assert on_disk.chunks == (2, 5)
        np.testing.assert_array_equal(on_disk[...], matrix.T)
        assert f["0/META/COL/id"].dtype.kind == "S"
        assert f["0/META/ROW/id"][()].tolist() == [g.encode() for g in GENES]
        assert f["0/META/COL/cell"][1] == b"-666" and f["0/META/COL/nsample"][1] == -666


@pytest.mark.parametrize("rids, cids", [
    (["1", "7157", "3845"], ["SIG_011", "SIG_000", "SIG_005", "SIG_004"]),
    (None, ["SIG_007", "SIG_002"]),
    (["007", "4609"], None),
    ([], ["SIG_001"]),
])
def test_subset_by_ids_in_requested_order(written, matrix, rids, cids, monkeypatch):
    monkeypatch.setattr(gctx, "_BATCH_BYTES", 40)  # slabs of 2 signatures: several reads
    monkeypatch.setattr(gctx, "_GAP_BYTES", 0)
    data = read_gctx(written, rids=rids, cids=cids)
    rows = [GENES.index(g) for g in rids] if rids is not None else list(range(len(GENES)))
    cols = [SIGS.index(s) for s in cids] if cids is not None else list(range(len(SIGS)))
    np.testing.assert_array_equal(data.matrix, matrix[np.ix_(rows, cols)])
    assert data.row_ids.tolist() == [GENES[i] for i in rows]
    assert data.col_ids.tolist() == [SIGS[i] for i in cols]
    row_meta, col_meta = read_gctx_meta(written)
    pd.testing.assert_frame_equal(data.col_meta, col_meta.iloc[cols])
    pd.testing.assert_frame_equal(data.row_meta, row_meta.iloc[rows])


def test_subset_reads_only_the_selected_signatures(written, monkeypatch):
    seen = []
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        if self.name.endswith("matrix"):
            seen.append(key)
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    monkeypatch.setattr(gctx, "_GAP_BYTES", 0)  # else tiny rows are merged across gaps
    read_gctx(written, cids=["SIG_009", "SIG_001", "SIG_002"])
    read_rows = set()
    for key in seen:
        sel = key[0]
        read_rows.update(range(sel.start, sel.stop) if isinstance(sel, slice) else sel.tolist())
    assert read_rows == {1, 2, 9}


@pytest.mark.parametrize("kwargs, message", [
    (dict(rids=["7157", "999", "888"]), "unknown gene (row) id(s) [999, 888]"),
    (dict(cids=["SIG_001", "NOPE"]), "unknown signature (column) id(s) [NOPE]"),
    (dict(cids=["SIG_001", "SIG_001"]), "listed more than once"),
])
def test_unknown_or_repeated_ids(written, kwargs, message):
    with pytest.raises(DataError, match=r"sigs\.gctx") as err:
        read_gctx(written, **kwargs)
    assert message in str(err.value)


def test_streaming_writer(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "stream.gctx"
    blocks, ids = [], []
    with GCTXWriter(path, GENES, chunks=(4, 5)) as writer:
        for b in range(4):
            block = rng.standard_normal((len(GENES), 3 + b)).astype(np.float32)
            names = [f"b{b}_{j}" for j in range(block.shape[1])]
            writer.append(block, names, pd.DataFrame({"block": [b] * len(names)}))
            blocks.append(block)
            ids += names
        assert not path.exists()  # renamed into place only by close()
    data = read_gctx(path)
    np.testing.assert_array_equal(data.matrix, np.concatenate(blocks, axis=1))
    assert data.col_ids.tolist() == ids
    assert data.col_meta["block"].tolist() == [b for b in range(4) for _ in range(3 + b)]
    with h5py.File(path) as f:
        assert f["0/DATA/0/matrix"].maxshape == (None, len(GENES))


def test_streaming_writer_failure_leaves_nothing(tmp_path):
    path = tmp_path / "stream.gctx"
    with pytest.raises(RuntimeError), GCTXWriter(path, GENES) as writer:
        writer.append(np.zeros((len(GENES), 2)), ["a", "b"])
        raise RuntimeError("crash mid-stream")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="block of shape"), GCTXWriter(path, GENES) as writer:
        writer.append(np.zeros((3, 2)), ["a", "b"])
    with pytest.raises(DataError, match="listed more than once"), GCTXWriter(path, GENES) as writer:
        writer.append(np.zeros((len(GENES), 2)), ["a", "b"])
        writer.append(np.zeros((len(GENES), 1)), ["a"])
    assert list(tmp_path.iterdir()) == []


def test_gzip_compression(tmp_path, matrix):
    path = tmp_path / "z.gctx"
    write_gctx(path, matrix, GENES, SIGS, compression="gzip", compression_opts=4)
    with h5py.File(path) as f:
        assert f["0/DATA/0/matrix"].compression == "gzip"
    np.testing.assert_array_equal(read_gctx(path, cids=SIGS[::-1]).matrix, matrix[:, ::-1])


def test_truncated_and_garbage_files(written, tmp_path):
    truncated = tmp_path / "truncated.gctx"
    content = written.read_bytes()
    truncated.write_bytes(content[: len(content) // 2])
    garbage = tmp_path / "garbage.gctx"
    garbage.write_bytes(b"this is not an HDF5 file\n" * 100)
    for path in (truncated, garbage):
        with pytest.raises(DataError, match=path.name):
            read_gctx(path)
    with pytest.raises(DataError, match="file not found"):
        read_gctx(tmp_path / "absent.gctx")


def test_corrupt_compressed_chunk(tmp_path, matrix, monkeypatch):
    monkeypatch.setattr(gctx, "_GAP_BYTES", 0)  # read only the chunks asked for
    path = tmp_path / "corrupt.gctx"
    write_gctx(path, matrix, GENES, SIGS, chunks=(4, 5), compression="gzip")
    with h5py.File(path) as f:
        chunk = f["0/DATA/0/matrix"].id.get_chunk_info(1)
    content = bytearray(path.read_bytes())
    content[chunk.byte_offset:chunk.byte_offset + chunk.size] = b"\xff" * chunk.size
    path.write_bytes(bytes(content))
    read_gctx(path, cids=["SIG_000", "SIG_011"])  # chunks 0 and 2 are intact
    with pytest.raises(DataError, match=r"corrupt\.gctx: cannot read the GCTX file"):
        read_gctx(path, cids=["SIG_005"])


def test_overwritten_matrix_bytes_are_an_error_not_silent_nans(tmp_path, matrix):
    path = tmp_path / "overwritten.gctx"
    write_gctx(path, matrix, GENES, SIGS, chunks=(4, 5))  # uncompressed: 64 bytes of 0xff = 16 NaNs
    with h5py.File(path) as f:
        offset = f["0/DATA/0/matrix"].id.get_chunk_info(0).byte_offset
    content = bytearray(path.read_bytes())
    content[offset + 8:offset + 72] = b"\xff" * 64
    path.write_bytes(bytes(content))
    with pytest.raises(DataError, match=r"overwritten\.gctx: 16 non-finite value\(s\) in /0/DATA/0/matrix, "
                                        r"e\.g\. gene .*, signature 'SIG_00.'; the file is damaged"):
        read_gctx(path)


def test_layout_errors(tmp_path):
    no_matrix = write_raw(tmp_path / "no_matrix.gctx", None, ["1"], ["a"])
    with pytest.raises(DataError, match=r"no_matrix\.gctx: no dataset /0/DATA/0/matrix"):
        read_gctx(no_matrix)
    wrong_ids = write_raw(tmp_path / "wrong_ids.gctx", np.zeros((3, 2)), ["1", "2"], ["a", "b"])
    with pytest.raises(DataError, match=r"wrong_ids\.gctx: /0/META/COL/id has 2 ids .* 3 signatures"):
        GCTXReader(wrong_ids)
    bad_field = write_raw(tmp_path / "bad_field.gctx", np.zeros((2, 2)), ["1", "2"], ["a", "b"],
                          cell=np.array([b"x"]))
    with pytest.raises(DataError, match=r"bad_field\.gctx: /0/META/COL/cell has shape"):
        read_gctx(bad_field)
    repeated = write_raw(tmp_path / "repeated.gctx", np.zeros((2, 2)), ["1", "1"], ["a", "b"])
    with pytest.raises(DataError, match=r"repeated\.gctx.*listed more than once: \[1\]"):
        read_gctx(repeated)


# --- GCT text -----------------------------------------------------------------------------

GCT_12 = "#1.2\n2\t3\nName\tDescription\ts1\ts2\ts3\n7157\tTP53\t1\t2\t3\n007\tna\t4\tNaN\t-6.5\n"
GCT_13 = ("#1.3\n2\t3\t2\t2\n"
          "id\tsymbol\tis_lm\ts1\ts2\ts3\n"
          "cell\tna\tna\tA375\t-666\tPC3\n"
          "dose\tna\tna\t1\t2\t-666\n"
          "7157\tTP53\t1\t1\t2\t3\n"
          "007\t-666\t0\t4\t\t-6.5\n")


def test_gct_12(tmp_path):
    data = read_gct_text(tmp_path, GCT_12)
    assert data.row_ids.tolist() == ["7157", "007"] and data.col_ids.tolist() == ["s1", "s2", "s3"]
    np.testing.assert_array_equal(data.matrix, [[1, 2, 3], [4, np.nan, -6.5]])
    assert data.row_meta["Description"].tolist() == ["TP53", "na"]
    assert data.col_meta.shape == (3, 0)


def test_gct_13(tmp_path):
    data = read_gct_text(tmp_path, GCT_13)
    np.testing.assert_array_equal(data.matrix, [[1, 2, 3], [4, np.nan, -6.5]])
    assert data.row_meta["symbol"].tolist() == ["TP53", None]
    assert data.row_meta["is_lm"].tolist() == ["1", "0"]
    assert data.col_meta["cell"].tolist() == ["A375", None, "PC3"]
    assert data.col_meta["dose"].tolist() == ["1", "2", None]


@pytest.mark.parametrize("text, message", [
    ("#1.4\n1\t1\nName\tDescription\ts1\ng\td\t1\n", "line 1: expected '#1.2' or '#1.3'"),
    ("#1.3\n1\t1\nid\ts1\ng\t1\n", "line 2: expected 4 counts"),
    ("#1.2\n2\tx\nName\tDescription\ts1\n", "line 2: expected 2 counts"),
    (GCT_12.replace("4\tNaN", "4\tNaN\t9"), "line 5: 6 fields, expected 5"),
    (GCT_12.replace("s2\ts3", "s2"), "line 3: 4 fields, expected 5"),
    (GCT_12.replace("TP53\t1\t2\t3", "TP53\t1\t2\tlots"), "line 4, column 's3': non-numeric value 'lots'"),
    (GCT_13.replace("-6.5", "1e"), "line 7, column 's3': non-numeric value '1e'"),
    (GCT_12.replace("2\t3\nName", "3\t3\nName"), "announces 0 column-metadata and 3 data lines"),
    (GCT_12.replace("007\t", "7157\t"), "listed more than once: [7157]"),
])
def test_gct_malformed(tmp_path, text, message):
    with pytest.raises(DataError, match="bad.gct") as err:
        read_gct_text(tmp_path, text, name="bad.gct")
    assert message in str(err.value)


def read_gct_text(tmp_path: Path, text: str, name: str = "x.gct"):
    path = tmp_path / name
    path.write_text(text)
    return read_gct(path)
