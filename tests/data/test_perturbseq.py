"""data=anndata: Perturb-seq signatures from a small generated .h5ad (tfnet_jax/data/perturbseq.py)."""
import json
import logging

import anndata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import TINY_MODEL

from tfnet_jax.data.io import h5ad_chunks
from tfnet_jax.data.load import load_perturbation_data
from tfnet_jax.errors import ConfigError, DataError

PERTURBED = {"A": "CRISPRi", "B": "CRISPRi", "C": "shRNA", "D": "CrisprA"}


def write_networks(folder, edges="gene_a\tgene_b\nA\tB\nB\tC\nC\tD\nD\tr0\n"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ppi.tsv").write_text(edges)
    return folder


def write_h5ad(path, x, obs: dict, var_names, sparse=False, var=None):
    obs = pd.DataFrame(obs, index=[f"cell{i}" for i in range(x.shape[0])])
    var = pd.DataFrame(var or {}, index=list(var_names))
    matrix = x.astype(np.float32)
    if sparse:  # True | "csr" | "csc"
        matrix = sp.csc_matrix(matrix) if sparse == "csc" else sp.csr_matrix(matrix)
    anndata.AnnData(X=matrix, obs=obs, var=var).write_h5ad(path)
    return path


def load(tmp_path, path, **cfg):
    if "networks" not in cfg:
        cfg["networks"] = str(write_networks(tmp_path / "networks"))
    return load_perturbation_data({"name": "anndata", "path": str(path), **cfg})


def table(data, pert_type):
    sig = data.signatures[pert_type]
    return dict(zip(sig.pert_genes.tolist(), sig.values))


# ---------------------------------------------------------------- hand-computed signatures
TINY_X = np.array([[1, 2], [3, 4], [0, 0], [5, 5], [1, 3], [2, 2]], dtype=np.float64)
TINY_OBS = {"gene": ["non-targeting", "non-targeting", "non-targeting", "A", "A", "B"],
            "gem": ["1", "1", "2", "1", "2", "2"]}


@pytest.mark.parametrize("sparse", [False, True])
def test_hand_computed_mean_log_fold_change(tmp_path, sparse):
    path = write_h5ad(tmp_path / "tiny.h5ad", TINY_X, TINY_OBS, ["g1", "g2"], sparse=sparse)
    # Batch gem 1: controls mean (2, 3); gem 2: (0, 0). A: (5,5)-(2,3) = (3,2) and (1,3)-(0,0)
    # -> mean (2, 2.5); B: (2,2)-(0,0) = (2, 2).
    by_batch = load(tmp_path, path, batch_column="gem")
    assert by_batch.pert_types == ["CRISPR"]  # no type column: data.default_type
    assert list(by_batch.readout_genes) == ["g1", "g2"]
    got = table(by_batch, "CRISPR")
    np.testing.assert_allclose(got["A"], [2.0, 2.5], rtol=1e-6)
    np.testing.assert_allclose(got["B"], [2.0, 2.0], rtol=1e-6)
    # Global controls mean (4/3, 2): A mean (3, 4) -> (5/3, 2); B (2, 2) -> (2/3, 0).
    got = table(load(tmp_path, path), "CRISPR")
    np.testing.assert_allclose(got["A"], [5 / 3, 2.0], rtol=1e-6)
    np.testing.assert_allclose(got["B"], [2 / 3, 0.0], atol=1e-6)


def test_log1p_normalises_raw_counts_per_cell(tmp_path):
    counts = np.array([[1, 3], [2, 2], [4, 0]], dtype=np.float64)
    path = write_h5ad(tmp_path / "c.h5ad", counts, {"gene": ["ctrl", "ctrl", "A"]}, ["g1", "g2"],
                      sparse=True)
    got = table(load(tmp_path, path, log1p=True, target_sum=100.0), "CRISPR")["A"]
    # Cells scaled to 100 counts: (25, 75), (50, 50), (100, 0); log1p; A minus the controls' mean.
    control = (np.log1p([25, 75]) + np.log1p([50, 50])) / 2
    np.testing.assert_allclose(got, np.log1p([100, 0]) - control, rtol=1e-6)


# ---------------------------------------------------------------- a generated 60 x 30 screen
def screen(seed=0):
    """60 cells x 30 genes: A-D (10 cells each, types by label) and 20 controls in 2 batches;
    controls have no type label (they serve every type)."""
    rng = np.random.default_rng(seed)
    genes = [g for g in "ABCD" for _ in range(10)] + ["non-targeting"] * 20
    types = [PERTURBED[g] for g in "ABCD" for _ in range(10)] + [None] * 20
    batches = [str(i % 2) for i in range(60)]
    x = rng.gamma(2.0, 1.0, size=(60, 30)) * (rng.random((60, 30)) < 0.6)  # sparse-ish
    return x, {"gene": genes, "kind": types, "gem": batches}


def reference(x, obs, batch=True):
    """Per (type, gene): mean over its cells of x_i minus its batch's control mean (loops)."""
    mapping = {"CRISPRi": "CRISPR", "shRNA": "RNAi", "CrisprA": "OE"}
    result = {}
    for gene in "ABCD":
        rows = [i for i, g in enumerate(obs["gene"]) if g == gene]
        lfc = []
        for i in rows:
            ctrl = [j for j, g in enumerate(obs["gene"]) if g == "non-targeting"
                    and (not batch or obs["gem"][j] == obs["gem"][i])]
            lfc.append(x[i] - x[ctrl].mean(axis=0))
        result[(mapping[obs["kind"][rows[0]]], gene)] = np.mean(lfc, axis=0)
    return result


@pytest.mark.parametrize("sparse", [False, "csr", "csc"])
def test_generated_screen_types_batches_and_chunks(tmp_path, sparse, monkeypatch):
    x, obs = screen()
    path = write_h5ad(tmp_path / "s.h5ad", x, obs, [f"r{i}" for i in range(30)], sparse=sparse)
    monkeypatch.setattr(h5ad_chunks, "_CHUNK_BYTES", 8 * 30 * 7)  # 7 rows at a time: 9 chunks
    data = load(tmp_path, path, type_column="kind", batch_column="gem")
    assert data.pert_types == ["CRISPR", "OE", "RNAi"]
    assert {t: list(s.pert_genes) for t, s in data.signatures.items()} == \
        {"CRISPR": ["A", "B"], "OE": ["D"], "RNAi": ["C"]}
    for (pert_type, gene), expected in reference(x.astype(np.float32), obs).items():
        np.testing.assert_allclose(table(data, pert_type)[gene], expected, rtol=1e-5, atol=1e-5)
    assert data.extras["control_cells"] == 20
    # Perturbed genes are graph nodes; readouts are the var genes in var order.
    position = data.gene_position()
    assert [data.genes[i] for i in data.signatures["CRISPR"].pert_index] == ["A", "B"]
    assert list(data.readout_genes) == [f"r{i}" for i in range(30)] and "r5" in position


def test_controls_by_type_and_column(tmp_path):
    """Typed controls serve their own type only; a boolean control column replaces the labels."""
    x = np.array([[1.0], [3.0], [10.0], [4.0], [20.0]])
    obs = {"gene": ["x", "y", "A", "z", "D"], "kind": ["CRISPRi", "CRISPRa", "CRISPRi", "CRISPRa",
                                                       "CRISPRa"],
           "is_ctrl": [True, True, False, "True", False]}
    obs["is_ctrl"] = [str(v) for v in obs["is_ctrl"]]
    path = write_h5ad(tmp_path / "t.h5ad", x, obs, ["g"])
    data = load(tmp_path, path, type_column="kind", control_column="is_ctrl")
    assert table(data, "CRISPR")["A"][0] == pytest.approx(10 - 1)       # CRISPRi control: 1
    assert table(data, "OE")["D"][0] == pytest.approx(20 - (3 + 4) / 2)  # CRISPRa controls


def test_control_labels_are_case_sensitive_and_configurable(tmp_path):
    x = np.array([[2.0], [5.0], [7.0]])
    networks = "gene_a\tgene_b\nCTRL\tA\n"
    write_networks(tmp_path / "net_ctrl", networks)
    path = write_h5ad(tmp_path / "c.h5ad", x, {"gene": ["ctrl", "CTRL", "A"]}, ["g"])
    got = table(load(tmp_path, path, networks=str(tmp_path / "net_ctrl")), "CRISPR")
    assert got["CTRL"][0] == pytest.approx(3.0) and got["A"][0] == pytest.approx(5.0)
    path = write_h5ad(tmp_path / "d.h5ad", x, {"gene": ["NTC", "CTRL", "A"]}, ["g"])
    got = table(load(tmp_path, path, control_labels=["NTC"], networks=str(tmp_path / "net_ctrl")),
                "CRISPR")
    assert set(got) == {"CTRL", "A"}


def test_readout_subsets_and_var_column(tmp_path):
    x, obs = screen()
    names = [f"r{i}" for i in range(30)]
    hv = [i % 3 == 0 for i in range(30)]
    path = write_h5ad(tmp_path / "s.h5ad", x, obs, names,
                      var={"highly_variable": hv, "symbol": [f"s{i}" for i in range(30)]})
    full = load(tmp_path, path)
    sub = load(tmp_path, path, readout_column="highly_variable")
    assert list(sub.readout_genes) == names[::3]
    np.testing.assert_allclose(sub.signatures["CRISPR"].values,
                               full.signatures["CRISPR"].values[:, ::3], rtol=1e-6)
    (tmp_path / "readouts.txt").write_text("r7\nr2\n# a comment\nnot_a_gene\n")
    listed = load(tmp_path, path, readout_list=str(tmp_path / "readouts.txt"))
    assert list(listed.readout_genes) == ["r2", "r7"]  # var order
    assert list(load(tmp_path, path, var_column="symbol").readout_genes)[:2] == ["s0", "s1"]


def test_genes_outside_the_networks_are_skipped_with_one_warning(tmp_path, caplog):
    x, obs = screen()
    obs["gene"] = ["E" if g == "C" else g for g in obs["gene"]]
    path = write_h5ad(tmp_path / "s.h5ad", x, obs, [f"r{i}" for i in range(30)])
    with caplog.at_level(logging.WARNING):
        data = load(tmp_path, path, type_column="kind", min_cells=1)
    assert "RNAi" not in data.signatures and "E" not in data.gene_position()
    [warning] = [r.getMessage() for r in caplog.records if "not nodes" in r.getMessage()]
    assert "1 of 4 perturbed genes (10 cells)" in warning and "[E]" in warning
    # min_cells drops the perturbations with too few cells.
    obs["gene"][0:9] = ["non-targeting"] * 9  # A keeps one cell
    path = write_h5ad(tmp_path / "m.h5ad", x, obs, [f"r{i}" for i in range(30)])
    assert list(load(tmp_path, path, min_cells=2).signatures["CRISPR"].pert_genes) == ["B", "D"]


def test_gene_table_maps_symbols_and_ensembl_ids_to_entrez(tmp_path, caplog):
    (tmp_path / "genes.csv").write_text(
        "EntrezID,GeneID,Symbol\n1,ENSG00000000001,A\n2,ENSG00000000002,B\n"
        "10,ENSG00000000010,g1\n11,ENSG00000000011,g3\n")
    write_networks(tmp_path / "ent", "gene_a\tgene_b\n1\t2\n")
    x = np.column_stack([TINY_X, TINY_X[:, :1] * 2, TINY_X[:, :1] * 3])
    path = write_h5ad(tmp_path / "tiny.h5ad", x, TINY_OBS, ["g1", "g2", "ENSG00000000011.4",
                                                          "ENSG00000000010"])
    with caplog.at_level(logging.WARNING):
        data = load(tmp_path, path, networks=str(tmp_path / "ent"),
                    gene_table=str(tmp_path / "genes.csv"))
    # g2 has no Entrez ID; ENSG...10 is g1 again (its first column is kept): both dropped, logged.
    assert list(data.readout_genes) == ["10", "11"]
    assert any("1 var gene(s) map to the Entrez ID of an earlier one" in r.getMessage()
               for r in caplog.records)
    np.testing.assert_allclose(table(data, "CRISPR")["1"], [5 / 3, 10 / 3], rtol=1e-6)


# ---------------------------------------------------------------- bad input: one line naming file/column
def bad_cases(tmp_path):
    x, obs = screen()
    names = [f"r{i}" for i in range(30)]
    nan_x = x.copy()
    nan_x[3, 4] = np.nan
    no_ctrl = dict(obs, gene=[g if g != "non-targeting" else "A" for g in obs["gene"]])
    odd_type = dict(obs, kind=["CRISPRi"] * 30 + ["prime-edit"] * 10 + [None] * 20)
    strangers = dict(obs, gene=[{"A": "W", "B": "X", "C": "Y", "D": "Z"}.get(g, g)
                                for g in obs["gene"]])
    no_batch_ctrl = dict(obs, gem=["0"] * 40 + ["1"] * 20)
    return [
        (x, obs, {"gene_column": "target"}, "obs has no column 'target' (data.gene_column)"),
        (x, obs, {"batch_column": "gem_group"}, "'gem_group' (data.batch_column)"),
        (x, obs, {"type_column": "type"}, "'type' (data.type_column)"),
        (x, no_ctrl, {}, "no control cells: no value of obs column 'gene'"),
        (x, obs, {"control_column": "kind"}, "'kind' (data.control_column) is not boolean"),
        (x, odd_type, {"type_column": "kind"}, "obs column 'kind' has unknown perturbation type "
                                                "label(s) [prime-edit]"),
        (nan_x, obs, {}, "X has a non-finite value (nan) at cell 'cell3', gene 'r4'"),
        (-x - 1, obs, {"log1p": True}, "negative count"),
        (x, strangers, {}, "no perturbed gene of obs column 'gene' is a node of the networks"),
        (x, no_batch_ctrl, {"batch_column": "gem"}, "no control cells for type CRISPR in batch "
                                                    "'0' of obs column 'gem'"),
        (x, obs, {"readout_column": "nope"}, "var has no column 'nope' (data.readout_column)"),
    ], names


def test_bad_inputs_are_one_line_errors(tmp_path):
    cases, names = bad_cases(tmp_path)
    for i, (x, obs, cfg, message) in enumerate(cases):
        path = write_h5ad(tmp_path / f"bad{i}.h5ad", x, obs, names, sparse=i % 2 == 1)
        with pytest.raises(DataError) as err:
            load(tmp_path, path, **cfg)
        text = str(err.value)
        assert message in text and str(path) in text and "\n" not in text, (cfg, text)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match=r"missing\.h5ad: h5ad file not found \(data.path\)"):
        load(tmp_path, tmp_path / "missing.h5ad")
    (tmp_path / "broken.h5ad").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(DataError, match=r"broken\.h5ad: cannot read the h5ad file"):
        load(tmp_path, tmp_path / "broken.h5ad")
    with pytest.raises(ConfigError, match="data.path: set it"):
        load_perturbation_data({"name": "anndata", "networks": "x"})


@pytest.mark.parametrize("override, field", [
    ("data.default_type=CRISPRi", "data.default_type='CRISPRi'"),
    ("+data.type_map={x: KO}", "data.type_map.x='KO'"),
    ("data.min_cells=0", "data.min_cells=0"),
    ("data.readout_column=hv", "data.readout_list")])
def test_config_values_are_checked_before_loading(override, field):
    from tfnet_jax.config import compose
    extra = ["data.readout_list=x.txt"] if field == "data.readout_list" else []
    with pytest.raises(ConfigError, match=field.replace(".", r"\.").replace("+", "")):
        compose(["data=anndata", override, *extra])


# ---------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def demo_screen(tmp_path_factory, tiny_data):
    """A screen simulated from the demo data's CRISPR signatures (2 cells each, 30 controls),
    with the demo's networks and node features as files; one perturbed gene is not a node."""
    folder = tmp_path_factory.mktemp("screen")
    networks = folder / "networks"
    networks.mkdir()
    for layer in tiny_data.layers:
        pd.DataFrame({"gene_a": tiny_data.genes[layer.senders],
                      "gene_b": tiny_data.genes[layer.receivers]}).to_csv(
            networks / f"{layer.name}.tsv", sep="\t", index=False)
    features = pd.DataFrame(tiny_data.node_features).rename(columns=lambda i: f"f{i}")
    features.insert(0, "gene", tiny_data.genes)
    features.to_csv(folder / "features.csv", index=False)
    sigs = tiny_data.signatures["CRISPR"]
    rng = np.random.default_rng(0)
    base = rng.normal(2.0, 0.5, size=len(tiny_data.readout_genes))
    cells = np.concatenate([np.repeat(sigs.values, 2, axis=0), np.zeros((30, sigs.values.shape[1]))])
    x = base + cells + rng.normal(0, 0.05, size=cells.shape)
    genes = list(np.repeat(sigs.pert_genes, 2)) + ["non-targeting"] * 30
    genes[0] = genes[1] = "NOT_A_NODE"
    path = write_h5ad(folder / "screen.h5ad", x, {"gene": genes}, tiny_data.readout_genes,
                      sparse=True)
    overrides = ["data=anndata", f"data.path={path}", f"data.networks={networks}",
                 f"data.node_features={folder / 'features.csv'}"]
    return overrides, dict(zip(sigs.pert_genes[1:], sigs.values[1:]))


def test_screen_feeds_the_transcriptionnet_family(demo_screen, caplog):
    """Config -> load -> split -> prepare -> baselines, as a run does (no training: cheap)."""
    from tfnet_jax.config import compose
    from tfnet_jax.tasks.transcriptionnet import prepare as task
    from tfnet_jax.tasks.base import get_family
    overrides, truth = demo_screen
    cfg = compose(overrides)
    family = get_family("transcriptionnet")
    with caplog.at_level(logging.WARNING):
        data = family.load(cfg)
    [warning] = [r.getMessage() for r in caplog.records if "not nodes" in r.getMessage()]
    assert "1 of 120 perturbed genes (2 cells)" in warning and "NOT_A_NODE" in warning
    got = data.signatures["CRISPR"]
    assert data.pert_types == ["CRISPR"] and sorted(got.pert_genes) == sorted(truth)
    # The signatures are the simulated ones, up to the noise (sd 0.05 per cell).
    assert max(np.abs(v - truth[g]).max() for g, v in zip(got.pert_genes, got.values)) < 0.2
    prepared = family.prepare(cfg, data, family.split(cfg, data))
    baselines = task.baseline_metrics(prepared, "test")
    assert {"mean", "ridge", "neighbors"} <= set(baselines)
    assert baselines["mean"]["CRISPR"]["n"] >= 20


@pytest.mark.slow
def test_transcriptionnet_trains_on_a_perturb_seq_screen(demo_screen, tmp_path):
    """A short training run through data=anndata (about a minute: the engine's jit compiles)."""
    from tfnet_jax.config import compose
    from tfnet_jax.run import train_and_evaluate
    overrides, _ = demo_screen
    steps = {"max_steps": 20, "batch_size": 16, "eval_every": 10, "log_every": 10,
             "warmup_steps": 5, "learning_rate": 5e-3, "progress": False}
    cfg = compose([*overrides, *[f"model.{k}={v}" for k, v in TINY_MODEL.items()],
                   *[f"train.{k}={v}" for k, v in steps.items()]])
    train_and_evaluate(cfg, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(saved["model"]) == {"CRISPR"} and {"mean", "ridge"} <= set(saved["baselines"])
    assert saved["model"]["CRISPR"]["n"] >= 20
    assert np.isfinite(saved["model"]["CRISPR"]["pearson_delta"])
    splits = pd.read_csv(tmp_path / "run" / "splits.csv")
    assert len(splits) == 119 and set(splits["pert_type"]) == {"CRISPR"}
