"""Checks shared by the tests of tfnet-predict's output files."""
import anndata
import numpy as np


def assert_h5ad_matches(path, frame, id_columns):
    """The .h5ad of tfnet-predict holds what its parquet (`frame`) holds: X = the value columns,
    obs = the identifying columns (ending with split; index: id_columns joined by ':'),
    var index = the output ids."""
    adata = anndata.read_h5ad(path)
    meta = list(frame.columns[:frame.columns.get_loc("split") + 1])
    assert list(adata.obs.columns) == meta
    assert adata.var_names.tolist() == frame.columns[len(meta):].tolist()
    np.testing.assert_array_equal(adata.X, frame.iloc[:, len(meta):].to_numpy(np.float32))
    for column in meta:  # None in parquet <-> missing in the h5ad's categorical
        got = adata.obs[column].astype(object).where(adata.obs[column].notna(), None).tolist()
        want = frame[column].astype(object).where(frame[column].notna(), None).tolist()
        assert got == want, column
    assert adata.obs_names.tolist() == frame[id_columns].astype(str).agg(":".join, axis=1).tolist()
    assert list(adata.obs["split"].cat.categories) == ["train", "valid", "test", "unseen"]
    return adata
