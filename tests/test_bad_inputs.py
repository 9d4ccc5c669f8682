"""A catalogue of bad inputs (issue 14): every command, and the Python API, answers each with
ONE line `error: <field or file>: ...` on stderr, a non-zero exit, no traceback, and no
change to any file already in the run dir.

Commands run in-process (their `main` with `sys.argv` / `argv`), so the catalogue stays fast;
tests/test_cli.py covers the installed console scripts in subprocesses.
"""
import gzip
import hashlib
import importlib
import json
import logging
import sys

import pytest
from omegaconf import OmegaConf

import tfnet_jax
from tfnet_jax import config
from tfnet_jax.data.sources.build import build_networks
from tfnet_jax.errors import TfnetError

COMMANDS = {"train": "tfnet_jax.run", "predict": "tfnet_jax.predict",
            "lightup": "tfnet_jax.lightup", "core_tfs": "tfnet_jax.core_tfs",
            "disease": "tfnet_jax.disease", "twas": "tfnet_jax.twas",
            "collect": "tfnet_jax.experiments.collect",
            "sweep": "tfnet_jax.experiments.optuna_sweep", "networks": "tfnet_jax.networks"}
RUN_DIRS = ("run", "tn_run", "unfinished", "corrupt")
PLACES = {}  # filled by the `places` fixture
NO_HYDRA_LOGGING = ("hydra/job_logging=none", "hydra/hydra_logging=none")
PLAIN = ("twas", "collect", "sweep", "networks")  # no Hydra: main(argv)
GI = "gene_info={sources}/Homo_sapiens.gene_info.gz"  # tfnet-networks' hand-made inputs
TN = "hydra.run.dir={run}"  # an existing run dir, whose files a failed command must not change

GENO_TABLES = ("data.expression={geno}/expr.csv", "data.genes={geno}/genes.csv", "hydra.run.dir={tmp}/genorun")
CASES = [
    # ---- train: values checked before any data is loaded
    ("train", ["train.max_steps=abc", TN], "train.max_steps"),
    ("train", ["train.max_steps=-5", TN], "train.max_steps"),
    ("train", ["train.batch_size=0", TN], "train.batch_size"),
    ("train", ["train.eval_batch_size=0", TN], "train.eval_batch_size"),
    ("train", ["train.eval_every=0", TN], "train.eval_every"),
    ("train", ["train.log_every=0", TN], "train.log_every"),
    ("train", ["train.patience=0", TN], "train.patience"),
    ("train", ["train.keep_checkpoints=0", TN], "train.keep_checkpoints"),
    ("train", ["train.warmup_steps=-1", TN], "train.warmup_steps"),
    ("train", ["model.hidden=0", TN], "model.hidden"),
    ("train", ["model=tfnet", "model.hidden=[32,0]", TN], "model.hidden"),
    ("train", ["train.learning_rate=-0.1", TN], "train.learning_rate"),
    ("train", ["train.learning_rate=0", TN], "train.learning_rate"),
    ("train", ["train.weight_decay=-1", TN], "train.weight_decay"),
    ("train", ["train.grad_clip=-1", TN], "train.grad_clip"),
    ("train", ["model.dropout=2.0", TN], "model.dropout"),
    ("train", ["split.valid_frac=-0.1", TN], "split.valid_frac"),
    ("train", ["split.valid_frac=0.6", "split.test_frac=0.5", TN], "split.valid_frac"),
    ("train", ["train.optimizer=adamx", TN], "did you mean adam"),
    ("train", ["train.schedule=cosin", TN], "did you mean cosine"),
    ("train", ["model.fusion=sum", TN], "model.fusion"),
    ("train", ["train.monitor=valid/nope", TN], "train.monitor"),
    ("train", ["train.monitor_mode=maximum", TN], "train.monitor_mode"),
    ("train", ["train.num_devices=4096", TN], "train.num_devices"),
    ("train", ["train.num_devices=0", TN], "train.num_devices"),
    ("train", ["model.hiden=3", TN], "did you mean model.hidden"),
    ("train", ["train.max_step=3", TN], "did you mean train.max_steps"),
    ("train", ["data=synthtic", TN], "data=synthtic"),
    ("train", ["model=tfnt", TN], "model=tfnt"),
    ("train", ["experiment=smoke_genonet", TN], "smoke_genonet"),
    ("train", ["seed=abc", TN], "seed"),
    ("train", ["data=dir", "data.root=/my data (copy)/l1000", TN], "quote"),
    ("train", ["model=tfnet", "data=grn", "data.num_tfs=0", TN], "data.num_tfs"),
    ("train", ["hydra.run.dir={file}/run"], "{file}"),
    ("train", ["data=dir", "data.root={netdir}", "hydra.run.dir={tmp}/netrun"], "broken.tsv.gz"),
    ("train", ["data=anndata", "data.path={screen}/screen.h5ad", "data.networks={screen}/networks",
               "hydra.run.dir={tmp}/screenrun"], "screen.h5ad: obs has no column 'gene'"),
    ("train", ["data=anndata", "data.path={screen}/screen.h5ad", "data.networks={screen}/networks",
               "data.gene_column=target", "data.type_column=kind", "hydra.run.dir={tmp}/screenrun"],
     "unknown perturbation type label(s) [base-edit]"),
    ("train", ["data=anndata", "data.default_type=CRISPRi", TN], "data.default_type"),
    # ---- GenoNet genotypes: exactly one of data.bed / data.vcf / data.dosage; VCF and dosage text
    ("train", ["model=genonet", "data=genotypes", "data.bed=geno", "data.vcf=geno.vcf.gz", TN],
     "data.bed, data.vcf, data.dosage: give exactly one (got data.bed and data.vcf)"),
    ("train", ["model=genonet", "data=genotypes", *GENO_TABLES], "give exactly one (got none)"),
    ("train", ["model=genonet", "data=genotypes", "data.vcf={geno}/noindex.vcf.gz", *GENO_TABLES],
     "noindex.vcf.gz: no tabix (.tbi) or CSI index beside it; index the bgzipped VCF with `tabix -p vcf"),
    ("train", ["model=genonet", "data=genotypes", "data.vcf={geno}/strangers.vcf.gz", *GENO_TABLES],
     "no individual is in both {geno}/strangers.vcf.gz (IIDs [x0, x1, x2, x3, ...] (61 in all))"),
    ("train", ["model=genonet", "data=genotypes", "data.dosage='{geno}/dosage/chr{{chrom}}.txt.gz'",
               "data.dosage_samples={geno}/short_samples.txt", *GENO_TABLES],
     "chr1.txt.gz, line 1: 67 fields, expected 6 + 60"),
    # ---- predict
    ("predict", ["run_dir={tmp}/missing"], "run_dir"),
    ("predict", ["run_dir={run}", "chunk_size=0"], "chunk_size"),
    ("predict", ["run_dir={run}", "format=xls"], "format"),
    ("predict", ["run_dir={run}", "output={tmp}/nofolder/out"], "output"),
    ("predict", ["run_dir={run}", "output={file}/out"], "output"),
    ("predict", ["run_dir={run}", "inputs=a.txt", "genes=b.txt"], "genes"),
    ("predict", ["run_dir={run}"], "checkpoint"),
    ("predict", ["run_dir={unfinished}"], "metrics.json"),
    ("predict", ["run_dir={corrupt}"], "cannot be restored"),
    ("predict", ["run_dir={run}", "chunk_sise=5"], "did you mean chunk_size"),
    # ---- light-up, core TFs, disease (TFNet analyses)
    ("lightup", ["run_dir={tmp}/missing"], "run_dir"),
    ("lightup", ["run_dir={run}", "mode=triple"], "mode"),
    ("lightup", ["run_dir={run}", "chunk=0"], "chunk"),
    ("lightup", ["run_dir={run}", "which=worst"], "which"),
    ("lightup", ["run_dir={run}", "k=-1"], "k="),
    ("lightup", ["run_dir={run}", "known={tmp}/nope.tsv"], "known"),
    ("lightup", ["run_dir={run}", "gene_table={tmp}/nope.csv"], "gene_table"),
    ("lightup", ["run_dir={tn_run}"], "tfnet run"),
    ("core_tfs", ["run_dir={run}", "importance=random"], "importance"),
    ("core_tfs", ["run_dir={run}", "drop_fraction=1.5"], "drop_fraction"),
    ("core_tfs", ["run_dir={run}", "min_tfs=0"], "min_tfs"),
    ("core_tfs", ["run_dir={run}", "retrain_steps=0"], "retrain_steps"),
    ("core_tfs", ["run_dir={run}", "keep=[1.5]"], "keep"),
    ("disease", ["run_dir={run}", "tf_fold_changes={tmp}/tf.csv"], "observed"),
    ("disease", ["run_dir={run}", "log_base=1"], "log_base"),
    ("disease", ["run_dir={run}", "tf_fold_changes={tmp}/no.csv", "observed={tmp}/no2.csv"],
     "tf_fold_changes"),
    # ---- commands without Hydra
    ("twas", ["run_dir={tmp}/missing"], "run_dir"),
    ("twas", ["run_dir={run}", "top=x"], "top"),
    ("twas", ["run_dir={run}", "colour=red"], "colour"),
    ("twas", ["top=3"], "run_dir"),
    ("twas", ["run_dir={run}"], "genonet"),
    ("collect", ["{tmp}/missing"], "missing"),
    ("collect", ["{empty}"], "no finished runs"),
    ("collect", ["{tmp}", "--colour", "red"], "--colour"),
    ("collect", [], "sweep_dir"),
    ("sweep", ["model.hidden=3"], "sweep"),
    ("sweep", ["experiment=sweep_optuna", "hydra.run.dir=x"], "hydra.run.dir"),
    ("sweep", ["experiment=sweep_optuna", "sweep.n_trials=-1"], "sweep.n_trials"),
    ("sweep", ["experiment=sweep_optuna", "oops"], "oops"),
    ("sweep", ["experiment=sweep_optuna", "model.hiden=3"], "model.hiden"),
    ("sweep", ["experiment=sweep_optuna", "train.batch_size=0"], "train.batch_size"),
    # ---- tfnet-networks: bad files name file and line, bad keys the key
    ("networks", ["out={tmp}/nets", GI, "string={sources}/links_p9.txt",
                  "string_info={sources}/9606.protein.info.v12.0.txt.gz"],
     "links_p9.txt, line 3: protein '9606.P9'"),
    ("networks", ["out={tmp}/nets", GI, "gmt=[{sources}/short.gmt]"], "short.gmt, line 2"),
    ("networks", ["out={tmp}/nets", "gene_info={sources}/mouse.gene_info", "taxon=9606",
                  "pathways={sources}/kegg_pathways.tsv.gz"], "mouse.gene_info, line 2: tax_id 10090"),
    ("networks", ["out={tmp}/nets", GI, "biogrid={tmp}/BIOGRID-missing.txt"], "biogrid="),
    ("networks", ["out={tmp}/nets", GI, "gmt_max_sise=3"], "did you mean gmt_max_size"),
    ("networks", ["out={file}/nets", GI, "pathways={sources}/kegg_pathways.tsv.gz"], "out="),
    ("networks", ["out={tmp}/nets", "ids=symbol", "pathways={sources}/kegg_pathways.tsv.gz"],
     "ids=symbol needs gene_info"),
    ("networks", ["out={tmp}/nets", GI], "no source given"),
    ("networks", ["out={tmp}/nets", GI, "go={sources}/short.gaf", "obo={sources}/cycle.obo"],
     "cycle.obo, line 6: "),
    ("networks", ["out={tmp}/nets", GI, "go={sources}/short.gaf", "obo={sources}/go-basic.obo"],
     "short.gaf, line 2: 9 tab-separated columns; a GAF 2.2 row has 17"),
    ("networks", ["out={tmp}/nets", "ids=symbols", "pathways={sources}/kegg_pathways.tsv.gz"],
     "did you mean symbol"),
    ("networks", ["out={tmp}/nets", GI, "string={sources}/9606.protein.links.v12.0.txt.gz"],
     "string_info"),
]


def digest(folder) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_unchanged(before: dict) -> None:
    """Every file that was in a run dir is still there, byte for byte (a log may be added)."""
    for key, files in before.items():
        after = digest(PLACES[key])
        assert {name: after.get(name) for name in files} == files, key


def fake_run(folder, overrides, finished=True):
    """A run dir as training leaves it, without training: config and (finished) metrics.json,
    but no checkpoints, so anything that needs the model fails at the checkpoint."""
    cfg = config.compose(overrides)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    if finished:
        (folder / "metrics.json").write_text(json.dumps({"train": {"best_score": 0.0}}))
    return folder


def _genotype_files(root):
    """GenoNet inputs that fail: a VCF without an index, a VCF of other individuals, a dosage
    file with one column more than its samples file."""
    import numpy as np
    import pysam
    from genotype_files import make_cohort, write_all, write_vcf
    cohort = make_cohort()
    files = write_all(cohort, root)
    plain = root / "noindex.vcf"
    with gzip.open(files["vcf_ds"]["vcf"], "rt") as handle:
        plain.write_text(handle.read())
    pysam.tabix_compress(str(plain), str(root / "noindex.vcf.gz"))
    write_vcf(dict(cohort, iids=np.array([f"x{i}" for i in range(len(cohort["iids"]))])), root / "strangers.vcf")
    samples = (root / "dosage" / "samples.txt").read_text().split()
    (root / "short_samples.txt").write_text("\n".join(i for i in samples if i != "extra") + "\n")
    return root


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    (root / "file").write_text("a file where a folder is expected\n")
    net = root / "netdir"
    (net / "networks").mkdir(parents=True)
    (net / "signatures").mkdir()
    good = gzip.compress(b"source\ttarget\n" + b"1\t2\n" * 20000)
    broken = good[:len(good) // 2] + b"\x00" * 64 + good[-8:]  # a valid header, then garbage
    (net / "networks" / "broken.tsv.gz").write_bytes(broken)
    (net / "signatures" / "KD.csv").write_text("gene,1,2\n1,0.1,0.2\n")
    (root / "empty").mkdir()
    screen = root / "screen"  # data=anndata: obs names the perturbed gene 'target', not 'gene'
    (screen / "networks").mkdir(parents=True)
    (screen / "networks" / "ppi.tsv").write_text("gene_a\tgene_b\nA\tB\n")
    import anndata
    import numpy as np
    import pandas as pd
    anndata.AnnData(X=np.ones((2, 1), dtype=np.float32), obs=pd.DataFrame(
        {"target": ["A", "non-targeting"], "kind": ["base-edit", "CRISPRi"]}, index=["c1", "c2"]),
    ).write_h5ad(screen / "screen.h5ad")
    from network_source_files import GENE_INFO, write, write_all
    sources = root / "sources"
    write_all(sources)
    write(sources / "links_p9.txt", "protein1 protein2 combined_score\n9606.P1 9606.P2 900\n"
          "9606.P1 9606.P9 900\n")
    write(sources / "short.gmt", "S1\td\tAAA\tBBB\nS2\tno genes\n")
    write(sources / "mouse.gene_info", GENE_INFO.replace("9606\t", "10090\t"))
    write(sources / "cycle.obo", "format-version: 1.2\n\n[Term]\nid: GO:0000001\nnamespace: "
          "biological_process\nis_a: GO:0000002\n\n[Term]\nid: GO:0000002\nnamespace: "
          "biological_process\nis_a: GO:0000001\n")
    write(sources / "go-basic.obo", "format-version: 1.2\n\n[Term]\nid: GO:0000001\n"
          "namespace: molecular_function\n")
    write(sources / "short.gaf", "!gaf-version: 2.2\n" + "\t".join(
        ["UniProtKB", "P1", "AAA", "enables", "GO:0000001", "PMID:1", "IDA", "", "F"]) + "\n")
    geno = _genotype_files(root / "geno")
    corrupt = fake_run(root / "corrupt", ["experiment=smoke_tfnet", "model=tfnet"])
    (corrupt / "checkpoints" / "best" / "5").mkdir(parents=True)  # a partial copy
    (corrupt / "checkpoints" / "best" / "5" / "state").write_bytes(b"\x00not a checkpoint")
    PLACES.update({"tmp": root, "empty": root / "empty", "corrupt": corrupt, "sources": sources, "geno": geno,
                   "file": root / "file", "netdir": net, "screen": screen,
                   "run": fake_run(root / "tfnet_run", ["experiment=smoke_tfnet", "model=tfnet"]),
                   "tn_run": fake_run(root / "tn_run", ["experiment=smoke"]),
                   "unfinished": fake_run(root / "unfinished", ["experiment=smoke_tfnet",
                                                                "model=tfnet"], finished=False)})
    return PLACES


@pytest.fixture(autouse=True)
def keep_logging(capsys):
    """Hydra and `log_to_stderr` attach handlers to the captured streams; drop them after
    each case, before the capture closes those streams."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


def run_command(name: str, args: list[str], monkeypatch) -> int:
    main = importlib.import_module(COMMANDS[name]).main
    if name in PLAIN:
        with pytest.raises(SystemExit) as stopped:
            main(args)
    else:
        # Hydra's logging set-up (dictConfig) would close pytest's capture handlers.
        monkeypatch.setattr(sys, "argv", [f"tfnet-{name}", *args, *NO_HYDRA_LOGGING])
        with pytest.raises(SystemExit) as stopped:
            main()
    return stopped.value.code


def assert_one_error_line(text: str, names: str) -> str:
    assert "Traceback" not in text
    lines = text.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and names in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("name, args, names", CASES,
                         ids=[f"{c[0]}:{' '.join(c[1][:3])}" for c in CASES])
def test_bad_input_is_one_line(name, args, names, places, monkeypatch, capsys):
    monkeypatch.chdir(places["tmp"])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.delenv("TFNET_JAX_DEBUG", raising=False)
    args = [a.format(**places) for a in args]
    before = {key: digest(places[key]) for key in RUN_DIRS}
    code = run_command(name, args, monkeypatch)
    err = capsys.readouterr().err
    assert code not in (0, None), err
    assert_one_error_line(err, names.format(**places))
    assert_unchanged(before)


# ---------------------------------------------------------------- the Python API
API_CASES = [
    (lambda p: tfnet_jax.fit("tfnet", train={"max_steps": 0}), "train.max_steps"),
    (lambda p: tfnet_jax.fit("nonet"), "model=nonet"),
    (lambda p: tfnet_jax.fit("transcriptionnet", train={"optimzer": "adam"}),
     "did you mean train.optimizer"),
    (lambda p: tfnet_jax.fit("tfnet", split={"valid_frac": 1.5}), "split.valid_frac"),
    (lambda p: tfnet_jax.load_run(p["tmp"] / "missing"), "run_dir"),
    (lambda p: tfnet_jax.load_run(p["tn_run"], family="tfnet"), "tfnet run"),
    (lambda p: tfnet_jax.load_run(p["unfinished"]).fitted, "metrics.json"),
    (lambda p: tfnet_jax.load_run(p["run"]).fitted, "checkpoint"),
    (lambda p: tfnet_jax.load_run(p["corrupt"]).fitted, "cannot be restored"),
    (lambda p: tfnet_jax.load_run(p["run"], which="worst").fitted, "which"),
    (lambda p: tfnet_jax.api.compose(["train.eval_every=0"]), "train.eval_every"),
    (lambda p: build_networks(p["tmp"] / "nets", pathway=p["sources"] / "kegg_pathways.tsv.gz"),
     "did you mean pathways"),
    (lambda p: build_networks(p["tmp"] / "nets", coexpression=p["sources"] / "nope.h5ad"),
     "coexpression="),
]


@pytest.mark.parametrize("call, names", API_CASES, ids=[n for _, n in API_CASES])
def test_python_api_raises_one_line_error(call, names, places, monkeypatch):
    monkeypatch.chdir(places["tmp"])
    before = {key: digest(places[key]) for key in RUN_DIRS}
    with pytest.raises(TfnetError) as err:
        call(places)
    assert names in str(err.value) and "\n" not in str(err.value)
    assert_unchanged(before)


@pytest.mark.parametrize("variable", ["TFNET_JAX_DEBUG", "HYDRA_FULL_ERROR"])
def test_debug_flag_keeps_the_traceback(variable, places, monkeypatch, capsys):
    """With the debug switch a user error propagates (its traceback shown) instead of one line."""
    monkeypatch.chdir(places["tmp"])
    monkeypatch.setenv(variable, "1")
    with pytest.raises(TfnetError):
        importlib.import_module(COMMANDS["twas"]).main(["top=3"])
    monkeypatch.setattr(sys, "argv", ["tfnet-predict", "run_dir={}".format(places["run"]),
                                      "chunk_size=0", *NO_HYDRA_LOGGING])
    with pytest.raises(TfnetError):
        importlib.import_module(COMMANDS["predict"]).main()
    assert "error: " not in capsys.readouterr().err


def test_catalogue_is_large():
    assert len(CASES) + len(API_CASES) >= 40
