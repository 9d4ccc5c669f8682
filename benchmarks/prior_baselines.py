"""The prior baselines (go_ridge, go_forest, embedding_ridge) on the real L1000 subset, beside
the baselines they join (mean, neighbors, ridge, linear): test pearson_delta per type and the
time each baseline takes (all types, test query; wall and CPU seconds, the latter steadier on
a shared machine), on split seed 0 of experiment=real_l1000.

    python benchmarks/prior_baselines.py [--root ../shared/data/l1000_genetic]
        [--go ../shared/data/go] [--min-genes 10] [--seed 0] [--scratch DIR]

The GO table is a throwaway, made here in a scratch directory: gene2go's direct human
annotations (no propagation up the ontology) as a gene x term 0/1 table of the terms annotated
to >= --min-genes genes (tfnet-networks builds the real, propagated one). Also printed: the
table's read time, the spectral embedding's time, and the peer of go_forest: the same forest
fitted on the ~1,000 readouts themselves instead of the top GO_FOREST_COMPONENTS principal
components (why the package uses the latter).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir
from sklearn.ensemble import RandomForestRegressor

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tfnet_jax.cli import CONFIG_DIR  # noqa: E402
from tfnet_jax.data.load import load_perturbation_data  # noqa: E402
from tfnet_jax.data.splits import assign_splits  # noqa: E402
from tfnet_jax.eval.metrics import signature_metrics  # noqa: E402
from tfnet_jax.models import prior_baselines as priors  # noqa: E402
from tfnet_jax.models.baseline_suite import fit_predict_baselines  # noqa: E402
from tfnet_jax.schemas.typed import typed_config  # noqa: E402
from tfnet_jax.tasks.transcriptionnet.prepare import readout_columns  # noqa: E402

PEERS = ("mean", "neighbors", "ridge", "linear")


def write_go_table(gene2go: Path, out: Path, min_genes: int) -> tuple[int, int]:
    """gene x term 0/1 table (first column `gene`) of the human direct annotations."""
    table = pd.read_csv(gene2go, sep="\t", dtype=str, usecols=["#tax_id", "GeneID", "GO_ID"])
    table = table[table["#tax_id"] == "9606"].drop_duplicates(["GeneID", "GO_ID"])
    counts = table["GO_ID"].value_counts()
    table = table[table["GO_ID"].isin(counts.index[counts >= min_genes])]
    matrix = pd.crosstab(table["GeneID"], table["GO_ID"]).clip(upper=1)
    matrix.index.name = "gene"
    matrix.to_csv(out, compression="gzip")
    return matrix.shape


def timed(fn):
    """(fn(), wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO.parent / "shared/data/l1000_genetic")
    parser.add_argument("--go", type=Path, default=REPO.parent / "shared/data/go")
    parser.add_argument("--min-genes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scratch", type=Path, default=None)
    args = parser.parse_args()
    if not (args.root / "signatures").is_dir() or not (args.go / "gene2go.gz").is_file():
        sys.exit(f"needs {args.root} and {args.go / 'gene2go.gz'}")
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="prior_baselines_"))
    scratch.mkdir(parents=True, exist_ok=True)
    go_path = scratch / f"go_direct_min{args.min_genes}.csv.gz"
    if go_path.is_file():  # a table made by an earlier run of this script
        shape, seconds = pd.read_csv(go_path, usecols=[0]).shape[0], 0.0
        print(f"throwaway GO table {go_path}: reused ({shape} genes)")
    else:
        shape, seconds, _ = timed(lambda: write_go_table(args.go / "gene2go.gz", go_path, args.min_genes))
        print(f"throwaway GO table {go_path}: {shape[0]} genes x {shape[1]} terms "
              f"(direct annotations, terms of >= {args.min_genes} genes), written in {seconds:.1f} s")

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = typed_config(compose("config", overrides=[
            "experiment=real_l1000", f"data.root={args.root}", f"seed={args.seed}"]))
    plain, load_plain, _ = timed(lambda: load_perturbation_data(cfg.data))
    cfg.data.go_features = str(go_path)
    data, load_go, _ = timed(lambda: load_perturbation_data(cfg.data))
    print(f"data load: {load_plain:.1f} s without the GO table, {load_go:.1f} s with it "
          f"({int(data.go_features.present.sum())} of {data.num_genes} index genes annotated)")
    s = cfg.split
    splits = assign_splits(data, seed=s.seed, valid_frac=s.valid_frac, test_frac=s.test_frac,
                           min_train=s.min_train, scenario=s.scenario, mode=s.mode)

    _, embed_s, embed_cpu = timed(lambda: priors.cached_spectral_embedding(data))
    print(f"spectral embedding ({len(data.layers)} layers, {data.num_genes} genes, "
          f"d = {max(priors.EMBEDDING_DIMS)}): {embed_s:.1f} s wall, {embed_cpu:.1f} s CPU, once per run")

    # Each baseline alone, so its time is its own (the embedding is cached above).
    names = [*PEERS, *priors.PRIOR_BASELINES]
    scores, seconds = {}, {}
    for name in names:
        predictions, *seconds[name] = timed(lambda: fit_predict_baselines(data, splits, names=[name]))
        scores[name] = score(data, splits, predictions[name])

    peer, peer_s = {}, np.zeros(2)
    for t, table in data.signatures.items():
        label = splits[t]
        x = priors.go_matrix(data, table.pert_index)
        keep = priors.informative_terms(x[label == "train"])
        forest = RandomForestRegressor(
            n_estimators=priors.GO_FOREST_TREES, max_features=priors.GO_FOREST_MAX_FEATURES,
            min_samples_leaf=priors.GO_FOREST_MIN_LEAF, random_state=priors.GO_FOREST_SEED, n_jobs=1)
        peer[t], *sec = timed(lambda: forest.fit(x[label == "train"][:, keep], table.values[label == "train"])
                              .predict(x[label == "test"][:, keep]))
        peer_s += sec
    scores["go_forest on the readouts"] = score(data, splits, peer)
    seconds["go_forest on the readouts"] = peer_s.tolist()

    types = list(data.signatures)
    print(f"\nsplit seed {args.seed} ({cfg.split.scenario}, {cfg.split.mode}); test pearson_delta; "
          f"seconds: all {len(types)} types, test query")
    print(f"{'baseline':26s}" + "".join(f"{t:>9s}" for t in types)
          + f"{'mean':>9s}{'wall s':>9s}{'CPU s':>9s}")
    for name, per_type in scores.items():
        values = [per_type[t] for t in types]
        print(f"{name:26s}" + "".join(f"{v:9.3f}" for v in values)
              + f"{np.mean(values):9.3f}{seconds[name][0]:9.2f}{seconds[name][1]:9.2f}")


def score(data, splits, per_type: dict) -> dict[str, float]:
    """Test pearson_delta per type, as metrics.json scores it (own readout column left out)."""
    own = readout_columns(data)
    out = {}
    for t, pred in per_type.items():
        table, test = data.signatures[t], splits[t] == "test"
        train_mean = table.values[splits[t] == "train"].mean(axis=0)
        out[t] = signature_metrics(pred, table.values[test], train_mean,
                                   own_col=own[table.pert_index[test]])["pearson_delta"]
    return out


if __name__ == "__main__":
    main()
