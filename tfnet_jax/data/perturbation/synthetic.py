"""Synthetic multiplex + perturbation signatures with a planted, known truth.

Genes belong to communities and carry a latent vector z. Each network layer links genes
mostly within communities (one layer is mostly noise, so fusing layers matters). The
signature of perturbing gene g with type t is

    mean_t + h(g) @ B_t + on_target_t(g) + noise,
    h(g) = tanh(z_g @ A_self + m_g @ A_neigh),   m_g = sum_l relevance_l * mean_{j in N_l(g)} z_j

so the signal is a nonlinear function of the gene's own latent state and of its network
neighbourhood. Node features are noisy copies of z (plus pure-noise columns). The
noiseless signatures are kept in `extras["oracle_signatures"]`: an oracle that knows the
planted function predicts exactly those, which bounds what any model can reach.
"""
from __future__ import annotations

import numpy as np

from tfnet_jax.data.networks import NetworkLayer
from tfnet_jax.data.perturbation.container import PerturbationData, SignatureTable
from tfnet_jax.schemas import SyntheticConfig  # noqa: F401 (re-exported: defined with the configs)

PERT_TYPES = ("RNAi", "CRISPR", "OE")
# Sign and size (in noise sds) of the perturbed gene's own readout column.
ON_TARGET_SHIFT = {"RNAi": -3.0, "CRISPR": -4.0, "OE": 3.0}


def _layer_edges(rng, community, members, degree, within, coverage):
    num_genes = community.shape[0]
    present = rng.random(num_genes) < coverage
    present_idx = np.flatnonzero(present)
    pairs = []
    for g in present_idx:
        k = rng.poisson(degree / 2)  # each edge is drawn from one end
        if k == 0:
            continue
        same = rng.random(k) < within
        pool = members[community[g]]
        partners = np.where(same, rng.choice(pool, size=k), rng.choice(present_idx, size=k))
        pairs.extend((g, p) for p in partners if p != g and present[p])
    pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    pairs.sort(axis=1)
    pairs = np.unique(pairs, axis=0)
    weights = rng.uniform(0.2, 1.0, size=len(pairs)).astype(np.float32)
    return pairs[:, 0].astype(np.int32), pairs[:, 1].astype(np.int32), weights


def _neighbour_mean(num_genes, senders, receivers, weights, values):
    """Weighted mean of neighbours' rows (both directions); zero for isolated genes."""
    total = np.zeros_like(values)
    mass = np.zeros(num_genes)
    for a, b in ((senders, receivers), (receivers, senders)):
        np.add.at(total, a, weights[:, None] * values[b])
        np.add.at(mass, a, weights)
    return total / np.maximum(mass, 1e-12)[:, None]


def make_synthetic(cfg: SyntheticConfig | None = None) -> PerturbationData:
    cfg = cfg or SyntheticConfig()
    num_layers = len(cfg.layer_names)
    for name in ("layer_degree", "layer_within", "layer_coverage", "layer_relevance"):
        if len(getattr(cfg, name)) != num_layers:
            raise ValueError(f"data.{name} must have one entry per layer ({num_layers})")
    if cfg.num_readouts > cfg.num_genes or cfg.perts_per_type > cfg.num_genes:
        raise ValueError("data.num_readouts and data.perts_per_type must not exceed data.num_genes")
    rng = np.random.default_rng(cfg.seed)
    n, d = cfg.num_genes, cfg.latent_dim
    genes = np.array([f"G{i:05d}" for i in range(n)])

    # Uneven community sizes, latent states around community centres.
    sizes = rng.dirichlet(np.full(cfg.num_communities, 2.0))
    community = rng.choice(cfg.num_communities, size=n, p=sizes)
    members = [np.flatnonzero(community == c) for c in range(cfg.num_communities)]
    members = [m if len(m) else np.arange(n) for m in members]
    centres = rng.normal(size=(cfg.num_communities, d))
    z = centres[community] + cfg.within_community_sd * rng.normal(size=(n, d))

    layers, neighbourhood = [], np.zeros((n, d))
    for i, name in enumerate(cfg.layer_names):
        s, r, w = _layer_edges(rng, community, members, cfg.layer_degree[i],
                               cfg.layer_within[i], cfg.layer_coverage[i])
        layers.append(NetworkLayer(name=name, senders=s, receivers=r, weights=w))
        neighbourhood += cfg.layer_relevance[i] * _neighbour_mean(n, s, r, w, z)

    a_self = rng.normal(size=(d, cfg.hidden_dim)) / np.sqrt(d)
    a_neigh = rng.normal(size=(d, cfg.hidden_dim)) / np.sqrt(d)
    hidden = np.tanh(1.5 * (z @ a_self + neighbourhood @ a_neigh))

    readout_idx = np.sort(rng.choice(n, size=cfg.num_readouts, replace=False))
    readout_pos = {int(g): j for j, g in enumerate(readout_idx)}
    shared_mean = rng.normal(size=cfg.num_readouts)
    shared_loadings = rng.normal(size=(cfg.hidden_dim, cfg.num_readouts)) / np.sqrt(cfg.hidden_dim)

    signatures, oracle = {}, {}
    for t in PERT_TYPES:
        # OE pushes the other way; each type also has its own loadings and offsets.
        direction = -1.0 if t == "OE" else 1.0
        loadings = direction * shared_loadings + cfg.type_difference * rng.normal(
            size=shared_loadings.shape) / np.sqrt(cfg.hidden_dim)
        mean_t = shared_mean + 0.3 * rng.normal(size=cfg.num_readouts)
        perts = np.sort(rng.choice(n, size=cfg.perts_per_type, replace=False))
        clean = mean_t + cfg.effect_scale * 2.0 * hidden[perts] @ loadings
        for row, g in enumerate(perts):
            if int(g) in readout_pos:
                clean[row, readout_pos[int(g)]] += ON_TARGET_SHIFT[t] * cfg.noise_sd
        observed = clean + cfg.noise_sd * rng.normal(size=clean.shape)
        signatures[t] = SignatureTable(pert_type=t, pert_genes=genes[perts],
                                       pert_index=perts.astype(np.int32),
                                       values=observed.astype(np.float32))
        oracle[t] = clean.astype(np.float32)

    features = has_features = None
    if cfg.node_features:
        noisy_z = z + cfg.feature_noise_sd * rng.normal(size=z.shape)
        junk = rng.normal(size=(n, cfg.feature_dim_noise))
        features = np.concatenate([noisy_z, junk], axis=1).astype(np.float32)
        has_features = np.ones(n, dtype=bool)

    return PerturbationData(
        genes=genes, layers=layers, readout_genes=genes[readout_idx], signatures=signatures,
        node_features=features, has_features=has_features, splits=None,
        source=f"synthetic(seed={cfg.seed})",
        extras={"oracle_signatures": oracle, "community": community})
