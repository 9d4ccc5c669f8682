"""Several node-feature tables (data.node_feature_files), extra network layers
(data.extra_networks) and the GO-annotation table (data.go_features) of data=dir and data=cmap."""
from __future__ import annotations

import numpy as np
import pytest
from test_data_loaders import make_data_dir, write

from tfnet_jax.data.load import load_perturbation_data
from tfnet_jax.data.perturbation.datadir import load_data_dir
from tfnet_jax.data.scaling import Standardiser
from tfnet_jax.errors import ConfigError, DataError
from tfnet_jax.tasks.transcriptionnet.prepare import standardise_features

# make_data_dir: genes 007 12 300 500 95 lonely r1 r2 r3; RNAi perturbs 95 007 500, OE 12;
# its own node_features_2.csv lists 95 (1, 1) and lonely (2, 2).
GENES = ["007", "12", "300", "500", "95", "lonely", "r1", "r2", "r3"]
TABLE_A = "gene,a0,a1\n95,1,10\nlonely,3,10\n500,5,7\n"
TABLE_B = "gene,b0\n007,2\n95,4\n12,100\n"
# RNAi rows 95, 007, 500: 500 held out; OE row 12 held out.
SPLITS = {"RNAi": np.array(["train", "train", "test"]), "OE": np.array(["test"])}


def two_tables(tmp_path):
    root = make_data_dir(tmp_path / "data")
    write(root / "features/a.csv", TABLE_A)
    b = write(tmp_path / "elsewhere/b.csv.gz", TABLE_B)
    return root, load_data_dir(root, node_feature_files=["features/a.csv", str(b)])


def test_tables_are_concatenated_with_blocks(tmp_path):
    _, data = two_tables(tmp_path)
    assert data.genes.tolist() == GENES  # table genes join the index (none new here)
    pos = data.gene_position()
    assert [b.name for b in data.feature_blocks] == ["a", "b"]
    assert [(b.columns.start, b.columns.stop) for b in data.feature_blocks] == [(0, 2), (2, 3)]
    assert data.genes[data.feature_blocks[0].present].tolist() == ["500", "95", "lonely"]
    assert data.genes[data.feature_blocks[1].present].tolist() == ["007", "12", "95"]
    assert data.genes[data.has_features].tolist() == ["007", "12", "500", "95", "lonely"]
    assert data.node_features[pos["95"]].tolist() == [1, 10, 4]
    assert data.node_features[pos["007"]].tolist() == [0, 0, 2]  # not in a: zeros there
    assert data.node_features[pos["lonely"]].tolist() == [3, 10, 0]


def test_each_table_scaled_on_its_own_training_genes(tmp_path):
    _, data = two_tables(tmp_path)
    scaled = standardise_features(data, SPLITS)
    pos = data.gene_position()
    # a: fitted on 95, lonely (500 is held out): mean (2, 10), sd (1, constant -> 1).
    # b: fitted on 007, 95 (12 is held out): mean 3, sd 1. Then missing a, missing b.
    expected = np.zeros((len(GENES) + 1, 5))
    expected[:-1, 3:] = 1.0
    expected[pos["95"]] = [-1, 0, 1, 0, 0]
    expected[pos["lonely"]] = [1, 0, 0, 0, 1]
    expected[pos["500"]] = [3, -3, 0, 0, 1]
    expected[pos["007"]] = [0, 0, -1, 1, 0]
    expected[pos["12"]] = [0, 0, 97, 1, 0]
    np.testing.assert_allclose(scaled, expected)
    assert scaled.dtype == np.float32


def test_one_table_given_is_the_default_path_unchanged(tmp_path):
    root = make_data_dir(tmp_path / "data")
    default = load_data_dir(root)
    given = load_data_dir(root, node_feature_files=["node_features_2.csv"])
    for data in (default, given):
        np.testing.assert_array_equal(data.node_features, default.node_features)
        np.testing.assert_array_equal(data.has_features, default.has_features)
        # today's rule: one scaler over the genes with features that are not held out, zeros
        # elsewhere, then the presence column (1 = has features), then the padding row
        has = data.has_features
        held = np.isin(np.arange(len(GENES)), [data.gene_position()[g] for g in ("500", "12")])
        scaler = Standardiser.fit(data.node_features, has & ~held)
        legacy = np.where(has[:, None], scaler.transform(data.node_features), 0.0)
        legacy = np.concatenate([legacy, has[:, None].astype(np.float64)], axis=1)
        legacy = np.concatenate([legacy, np.zeros((1, 3))]).astype(np.float32)
        assert standardise_features(data, SPLITS).tobytes() == legacy.tobytes()


@pytest.mark.parametrize("text, message", [
    ("gene,b0\n95,1\n95,2\n", r"b.csv.*listed twice, on lines 2 and 3"),
    ("gene,b0\n95,1\n007,nan\n", r"b.csv, line 3, column 'b0'"),
])
def test_bad_tables_are_one_line_errors(tmp_path, text, message):
    root = make_data_dir(tmp_path / "data")
    write(root / "b.csv", text)
    with pytest.raises(DataError, match=message) as err:
        load_data_dir(root, node_feature_files=["node_features_2.csv", "b.csv"])
    assert "\n" not in str(err.value)


def test_missing_table_and_name_clash(tmp_path):
    root = make_data_dir(tmp_path / "data")
    with pytest.raises(DataError, match=r"data.node_feature_files: .*nope.csv: file not found"):
        load_data_dir(root, node_feature_files=["node_features_2.csv", "nope.csv"])
    write(root / "other/node_features_2.csv.gz", "gene,z\n95,1\n")
    with pytest.raises(ConfigError, match=r"two tables named 'node_features_2'"):
        load_data_dir(root, node_feature_files=["node_features_2.csv", "other/node_features_2.csv.gz"])


def test_load_dispatch_and_node_features_false(tmp_path):
    root, _ = two_tables(tmp_path)
    cfg = {"name": "dir", "root": str(root), "node_feature_files": ["features/a.csv"]}
    data = load_perturbation_data(cfg)
    assert [b.name for b in data.feature_blocks] == ["a"] and data.node_features.shape[1] == 2
    dropped = load_perturbation_data({**cfg, "node_features": False})
    assert dropped.node_features is None and dropped.feature_blocks is None
    assert dropped.genes.tolist() == data.genes.tolist()  # the index is as with features


# --- extra network layers ------------------------------------------------------------------

def test_extra_networks_dir_and_file(tmp_path):
    root = make_data_dir(tmp_path / "data")
    write(root / "go/go_bp.tsv", "gene_a\tgene_b\tweight\n95\tnew1\t0.5\n")
    write(root / "go/go_cc.csv.gz", "gene_a,gene_b\n007,12\n")
    kegg = write(tmp_path / "kegg.txt", "gene_a gene_b\n300 95\n")
    data = load_data_dir(root, extra_networks=["go", str(kegg)])
    # ROOT/networks' layers first (by name), then the extras in the order given
    assert [layer.name for layer in data.layers] == ["coexpr", "ppi", "go_bp", "go_cc", "kegg"]
    assert "new1" in data.genes.tolist()  # an extra layer's genes join the index
    pos = data.gene_position()
    bp = data.layers[2]
    assert sorted([pos["95"], pos["new1"]]) == sorted([int(bp.senders[0]), int(bp.receivers[0])])
    assert bp.weights.tolist() == [0.5]


@pytest.mark.parametrize("extra, error, message", [
    (["networks2/ppi.tsv"], ConfigError, r"data.extra_networks: layer 'ppi' of .*ppi.tsv clashes"),
    (["networks2/x.tsv", "networks2/x.tsv"], ConfigError, r"layer 'x' .* clashes"),
    (["nowhere"], DataError, r"data.extra_networks: .*nowhere: no such file or directory"),
    (["networks2/notes.md"], DataError, r"notes.md: not a network layer file"),
])
def test_extra_network_errors(tmp_path, extra, error, message):
    root = make_data_dir(tmp_path / "data")
    write(root / "networks2/ppi.tsv", "gene_a\tgene_b\n95\t12\n")
    write(root / "networks2/x.tsv", "gene_a\tgene_b\n95\t12\n")
    write(root / "networks2/notes.md", "hello\n")
    with pytest.raises(error, match=message) as err:
        load_data_dir(root, extra_networks=extra)
    assert "\n" not in str(err.value)


# --- GO annotations ------------------------------------------------------------------------

GO_TABLE = "gene,GO:1,GO:2,GO:3\n95,1,0,1\n007,0,1,0\nnot_in_index,1,1,1\n"


def test_go_features_default_explicit_and_absent(tmp_path):
    root = make_data_dir(tmp_path / "data")
    assert load_data_dir(root).go_features is None  # absent: off
    write(root / "node_features_go.csv.gz", GO_TABLE)
    write(root / "go/mine.csv", "gene,GO:9\n12,1\n")
    # node_features_go.csv.gz beside the root's own table: the model's features stay the own
    # table by default (as before a build), so a built root trains without new keys
    default = load_data_dir(root)
    assert [b.name for b in default.blocks()] == ["node_features_2"] and default.node_features.shape[1] == 2
    assert default.go_features.terms.tolist() == ["GO:1", "GO:2", "GO:3"]
    data = load_data_dir(root, node_feature_files=["node_features_2.csv"])
    go, pos = data.go_features, data.gene_position()
    assert go.terms.tolist() == ["GO:1", "GO:2", "GO:3"] and go.source.endswith("node_features_go.csv.gz")
    assert go.values.shape == (len(GENES), 3)
    assert data.genes[go.present].tolist() == ["007", "95"]  # not_in_index is left out
    assert go.values[pos["95"]].toarray().tolist() == [[1, 0, 1]]
    assert go.values[pos["007"]].toarray().tolist() == [[0, 1, 0]]
    assert go.values.nnz == 3
    assert "not_in_index" not in data.genes.tolist()  # the GO table never grows the index
    assert data.node_features.shape[1] == 2  # nor the model's node features
    explicit = load_data_dir(root, node_feature_files=[], go_features="go/mine.csv")
    assert explicit.go_features.terms.tolist() == ["GO:9"] and explicit.node_features is None
    with pytest.raises(DataError, match=r"data.go_features: .*gone.csv: file not found"):
        load_data_dir(root, node_feature_files=[], go_features="gone.csv")


def test_selections_keep_priors_and_start_a_fresh_cache(tmp_path):
    root, data = two_tables(tmp_path)
    data.derived["x"] = 1
    for chosen in (data.select_layers(["ppi"]), data.select_types(["RNAi"])):
        assert chosen.feature_blocks == data.feature_blocks and chosen.derived == {}


def test_farthest_split_distance_per_table(tmp_path):
    from tfnet_jax.data.splits import feature_outlyingness
    _, data = two_tables(tmp_path)
    distance = dict(zip(data.genes.tolist(), feature_outlyingness(data).tolist()))
    # a over the perturbed genes that have it (95, 500): a0 mean 3 sd 2, a1 mean 8.5 sd 1.5
    assert distance["lonely"] == pytest.approx(1.0)  # (0, 1) in a, nothing in b
    assert distance["500"] == pytest.approx(np.sqrt(2))  # (1, -1)
    b = np.array([2.0, 4.0, 100.0])  # 007, 95, 12: all perturbed
    z95 = (4 - b.mean()) / b.std()
    assert distance["95"] == pytest.approx(np.sqrt(2 + z95 ** 2))
    assert distance["300"] == -np.inf and distance["r1"] == -np.inf


@pytest.mark.parametrize("text", ["gene,feature\n95,GO:2\n95,GO:1\n12,GO:2\n",
                                  "gene,feature,value\n95,GO:2,1\n95,GO:1,1\n12,GO:2,1\n12,GO:9,0\n"])
def test_a_long_feature_table_reads_as_the_wide_one(tmp_path, text):
    """`gene,feature[,value]`: one row per nonzero cell (what tfnet-networks writes for GO)."""
    from tfnet_jax.data.perturbation.signatures import read_gene_feature_table
    genes, names, values = read_gene_feature_table(write(tmp_path / "long.csv.gz", text))
    dense = dict(zip(genes.tolist(), values.tolist()))
    assert names.tolist()[:2] == ["GO:1", "GO:2"]
    assert dense["95"][:2] == [1, 1] and dense["12"][:2] == [0, 1] and len(dense) == 2


@pytest.mark.parametrize("text, message", [
    ("gene,feature\n95,GO:1\n12,GO:1\n95,GO:1\n", "line 4.*95.*GO:1|95.*GO:1.*lines? 2.*4"),
    ("gene,feature,value\n95,GO:1,x\n", "line 2"),
])
def test_a_bad_long_feature_table_is_one_line(tmp_path, text, message):
    from tfnet_jax.data.perturbation.signatures import read_gene_feature_table
    with pytest.raises(DataError, match=message) as err:
        read_gene_feature_table(write(tmp_path / "long.csv", text))
    assert "\n" not in str(err.value)
