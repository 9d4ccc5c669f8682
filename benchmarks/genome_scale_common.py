"""Helpers shared by `genome_scale.py` and its PyTorch Geometric peer (`genome_scale_peer.py`):
the synthetic data's overrides, the peer's edge list, atomic JSON."""
from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as `python benchmarks/genome_scale.py` without installing

TYPES = 3  # RNAi, CRISPR, OE


def data_overrides(args, num_genes: int) -> list[str]:
    """Hydra overrides of the synthetic data: --layers layers l0.. with mixed within-community
    shares and relevances (so the fusion has layers worth weighting), the same degree and
    coverage everywhere."""
    n = args.layers
    within = [round(0.9 - 0.8 * i / max(n - 1, 1), 3) for i in range(n)]       # 0.9 .. 0.1
    relevance = [round(1.0 - i / max(n - 1, 1), 3) for i in range(n)]          # 1.0 .. 0.0
    perts = min(perts_per_type(args), num_genes)

    def listed(values):
        return "[" + ",".join(str(v) for v in values) + "]"
    return [f"seed={args.seed}", f"split.seed={args.seed}", f"data.seed={args.seed}",
            f"data.num_genes={num_genes}", f"data.num_readouts={min(978, num_genes)}",
            f"data.perts_per_type={perts}",
            f"data.layer_names={listed(f'l{i}' for i in range(n))}",
            f"data.layer_degree={listed([args.degree] * n)}", f"data.layer_within={listed(within)}",
            f"data.layer_coverage={listed([args.coverage] * n)}",
            f"data.layer_relevance={listed(relevance)}"]


def perts_per_type(args) -> int:
    if args.perts_per_type:
        return args.perts_per_type
    from tfnet_jax.schemas import (
        SplitConfig,  # the default split's valid / test fractions
    )
    split = SplitConfig()
    return math.ceil(args.train_rows / (TYPES * (1.0 - split.valid_frac - split.test_frac)))


def compose_cfg(overrides):
    from tfnet_jax.config import compose
    return compose(overrides)


def synthetic_config(cfg):
    from dataclasses import fields

    from omegaconf import OmegaConf

    from tfnet_jax.data.perturbation.synthetic import SyntheticConfig
    data = OmegaConf.to_container(cfg.data, resolve=True)
    return SyntheticConfig(**{f.name: data[f.name] for f in fields(SyntheticConfig) if f.name in data})


def peer_edges(senders, receivers, weights, num_nodes):
    """The directed edges tfnet_jax.graph.multiplex builds, with numpy and unpadded: both
    directions of every undirected edge plus a self-loop per node weighing as its strongest
    edge (1 when isolated), weights normalised to sum to 1 per receiver, sorted by (receiver,
    sender) -> (src, dst, w)."""
    loops = np.arange(num_nodes, dtype=np.int64)
    strongest = np.zeros(num_nodes, dtype=np.float32)  # a self-loop weighs as the strongest edge
    np.maximum.at(strongest, senders, weights)
    np.maximum.at(strongest, receivers, weights)
    loop_w = np.where(strongest > 0, strongest, 1.0).astype(np.float32)
    src = np.concatenate([senders, receivers, loops]).astype(np.int64)
    dst = np.concatenate([receivers, senders, loops]).astype(np.int64)
    w = np.concatenate([weights, weights, loop_w]).astype(np.float32)
    incoming = np.bincount(dst, weights=w, minlength=num_nodes)
    w = (w / incoming[dst]).astype(np.float32)
    order = np.lexsort((src, dst))
    return src[order], dst[order], w[order]


def write_json(path: Path, obj):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float) + "\n")
    tmp.replace(path)


def median(values):
    return statistics.median(values) if values else None
