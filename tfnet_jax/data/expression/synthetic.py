"""Synthetic gene-regulatory network with planted truth: the TFNet family's demo data.

A sparse, signed, hierarchical network in log-expression space:

    master TFs  (the planted core; levels set by a sample's cell state + noise)
        -> other TFs (each regulated by 1-2 masters, plus their own independent noise)
        -> targets   (each regulated by master(s) and a few other TFs)

Every regulation is a Hill-type saturating response: a regulator at log level z acts
through sigmoid(hill * (z - theta)), i.e. x^n / (K^n + x^n) in linear space, with its
sign (activation / repression) and weight. Targets get Gaussian noise with a per-gene
signal share, so the noise-free targets give the R^2 ceiling an oracle would reach.

`extras` holds the truth: `edges` (tf, target, sign, weight, kind: tf->target or
tf->tf), `core_tfs` (the masters), `clean_targets` [samples, targets] and `disease`
(a case-vs-control contrast: shifted masters -> TF and target log fold-changes).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from tfnet_jax.data.expression.container import ExpressionData
from tfnet_jax.schemas import GRNConfig  # noqa: F401 (re-exported: defined with the configs)


def _hill(z: np.ndarray, theta: np.ndarray, steepness: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-steepness * (z - theta)))


class _Network:
    """The planted mechanism: sampled once, then applied to any master levels."""

    def __init__(self, cfg: GRNConfig, rng: np.random.Generator):
        self.cfg = cfg
        n_other = cfg.num_tfs - cfg.num_masters
        self.master_base = rng.uniform(2.0, 5.0, cfg.num_masters)
        self.state_means = rng.normal(0.0, cfg.state_spread, (cfg.num_states, cfg.num_masters))
        self.other_base = rng.uniform(1.5, 4.5, n_other)
        # TF -> TF: each other TF listens to 1-2 masters.
        self.tf_weights = np.zeros((cfg.num_masters, n_other))
        for j in range(n_other):
            regs = rng.choice(cfg.num_masters, rng.integers(1, 3), replace=False)
            self.tf_weights[regs, j] = self._signed(rng, len(regs), (0.5, 1.0))
        # TF -> target: masters first, then other TFs.
        self.master_to_target = np.zeros((cfg.num_masters, cfg.num_targets))
        self.other_to_target = np.zeros((n_other, cfg.num_targets))
        for g in range(cfg.num_targets):
            masters = rng.choice(cfg.num_masters, rng.integers(cfg.master_targets[0],
                                                               cfg.master_targets[1] + 1), replace=False)
            others = rng.choice(n_other, rng.integers(cfg.other_targets[0],
                                                      cfg.other_targets[1] + 1), replace=False)
            self.master_to_target[masters, g] = self._signed(rng, len(masters), cfg.master_weight)
            self.other_to_target[others, g] = self._signed(rng, len(others), cfg.other_weight)
        self.target_base = rng.uniform(1.0, 6.0, cfg.num_targets)
        self.signal_share = rng.uniform(*cfg.signal_share, cfg.num_targets)
        # Thresholds at each regulator's typical level keep responses in their dynamic range.
        self.master_theta = self.master_base.copy()
        self.other_theta = self.other_base.copy()

    def _signed(self, rng, n: int, magnitude: tuple) -> np.ndarray:
        sign = np.where(rng.random(n) < self.cfg.activation_share, 1.0, -1.0)
        return sign * rng.uniform(*magnitude, n)

    def masters(self, states: np.ndarray, rng, shift: np.ndarray | None = None) -> np.ndarray:
        levels = (self.master_base + self.state_means[states]
                  + rng.normal(0.0, self.cfg.master_noise, (len(states), self.cfg.num_masters)))
        return levels if shift is None else levels + shift

    def other_tfs(self, masters: np.ndarray, noise: np.ndarray) -> np.ndarray:
        drive = _hill(masters, self.master_theta, self.cfg.hill) - 0.5
        return self.other_base + 2.0 * drive @ self.tf_weights + noise

    def clean_targets(self, masters: np.ndarray, others: np.ndarray) -> np.ndarray:
        return (self.target_base
                + (_hill(masters, self.master_theta, self.cfg.hill) - 0.5) @ self.master_to_target * 2.0
                + (_hill(others, self.other_theta, self.cfg.hill) - 0.5) @ self.other_to_target * 2.0)


def make_grn(cfg: GRNConfig | None = None) -> ExpressionData:
    """Sample a network and `cfg.num_samples` samples from it (see the module docstring)."""
    cfg = cfg or GRNConfig()
    rng = np.random.default_rng(cfg.seed)
    net = _Network(cfg, rng)
    n_other = cfg.num_tfs - cfg.num_masters

    states = rng.integers(0, cfg.num_states, cfg.num_samples)
    masters = net.masters(states, rng)
    others = net.other_tfs(masters, rng.normal(0.0, cfg.tf_noise, (cfg.num_samples, n_other)))
    clean = net.clean_targets(masters, others)
    signal_var = clean.var(axis=0)
    noise_sd = np.sqrt(signal_var * (1.0 - net.signal_share) / net.signal_share)
    targets = clean + rng.normal(0.0, 1.0, clean.shape) * noise_sd

    # Names carry no hint of the hierarchy: TF columns are shuffled.
    tf_order = rng.permutation(cfg.num_tfs)
    tf_names = np.array([f"TF{i:04d}" for i in range(cfg.num_tfs)])
    master_names, other_names = tf_names[tf_order[:cfg.num_masters]], tf_names[tf_order[cfg.num_masters:]]
    target_names = np.array([f"G{i:05d}" for i in range(cfg.num_targets)])
    tf_values = np.empty((cfg.num_samples, cfg.num_tfs))
    tf_values[:, tf_order[:cfg.num_masters]] = masters
    tf_values[:, tf_order[cfg.num_masters:]] = others

    edges = _edge_table(net, master_names, other_names, target_names)
    disease = _disease(cfg, net, rng, tf_names, target_names, tf_order, noise_sd)
    values = np.concatenate([tf_values, targets], axis=1).astype(np.float32)
    return ExpressionData(
        values=values,
        samples=np.array([f"S{i:05d}" for i in range(cfg.num_samples)]),
        genes=np.concatenate([tf_names, target_names]),
        tf_genes=tf_names, target_genes=target_names, groups=None, source="synthetic_grn",
        extras={"edges": edges, "core_tfs": sorted(master_names.tolist()),
                "clean_targets": clean.astype(np.float32), "disease": disease,
                "state": states})


def _edge_table(net: _Network, master_names, other_names, target_names) -> pd.DataFrame:
    frames = []
    for weights, sources, targets, kind in (
            (net.master_to_target, master_names, target_names, "tf->target"),
            (net.other_to_target, other_names, target_names, "tf->target"),
            (net.tf_weights, master_names, other_names, "tf->tf")):
        rows, cols = np.nonzero(weights)
        w = weights[rows, cols]
        frames.append(pd.DataFrame({"tf": sources[rows], "target": targets[cols],
                                    "sign": np.sign(w).astype(int), "weight": w, "kind": kind}))
    return pd.concat(frames, ignore_index=True)


def _disease(cfg: GRNConfig, net: _Network, rng, tf_names, target_names, tf_order, noise_sd) -> dict:
    """Case vs control: a few masters shifted; log fold-changes of TFs and targets.

    `tf_lfc` is observed (noisy) like a real study's; `target_lfc` is observed too, and
    `target_lfc_clean` is the noise-free truth.
    """
    n = cfg.disease_samples
    shift = np.zeros(cfg.num_masters)
    chosen = rng.choice(cfg.num_masters, cfg.disease_masters, replace=False)
    shift[chosen] = cfg.disease_shift * np.where(rng.random(len(chosen)) < 0.5, 1.0, -1.0)
    n_other = cfg.num_tfs - cfg.num_masters
    arms = {}
    for arm, arm_shift in (("control", None), ("case", shift)):
        states = rng.integers(0, cfg.num_states, n)
        masters = net.masters(states, rng, arm_shift)
        others = net.other_tfs(masters, rng.normal(0.0, cfg.tf_noise, (n, n_other)))
        clean = net.clean_targets(masters, others)
        tfs = np.empty((n, cfg.num_tfs))
        tfs[:, tf_order[:cfg.num_masters]] = masters
        tfs[:, tf_order[cfg.num_masters:]] = others
        arms[arm] = (tfs, clean, clean + rng.normal(0.0, 1.0, clean.shape) * noise_sd)
    lfc = [arms["case"][k].mean(axis=0) - arms["control"][k].mean(axis=0) for k in range(3)]
    return {"tf_lfc": pd.Series(lfc[0], index=tf_names, name="log_fc"),
            "target_lfc": pd.Series(lfc[2], index=target_names, name="log_fc"),
            "target_lfc_clean": pd.Series(lfc[1], index=target_names, name="log_fc"),
            "shifted_masters": sorted(tf_names[tf_order[chosen]].tolist())}
