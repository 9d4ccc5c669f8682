"""Perturbation-signature task: connects PerturbationData, TranscriptionNet and the engine.

Everything fitted from data (node-feature standardisation, per-type target
standardisation) is fitted on training genes only; validation and test genes are
never seen by a scaler.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import jax.numpy as jnp
import numpy as np
from flax import nnx

from tfnet_jax.data.perturbation.container import REPLICATE_HALVES, PerturbationData
from tfnet_jax.data.scaling import Standardiser, standardise_blocks
from tfnet_jax.errors import DataError
from tfnet_jax.eval.metrics import signature_metrics
from tfnet_jax.maths import row_pearson
from tfnet_jax.graph.multiplex import multiplex_graphs, propagated_features
from tfnet_jax.models.baseline_suite import fit_predict_baselines
from tfnet_jax.models.linear import ridge_fit
from tfnet_jax.models.gensan import RefinerConfig
from tfnet_jax.models.transcriptionnet import (TranscriptionNet, TranscriptionNetContext,
                                               TranscriptionNetModelConfig)
from tfnet_jax.schemas.models import TranscriptionNetConfig
from tfnet_jax.train.losses import mse_pearson_loss


@dataclass
class PreparedData:
    data: PerturbationData
    splits: dict[str, np.ndarray]
    types: list[str]
    graphs: list
    features: np.ndarray | None  # [N + 1, F], standardised on training genes; last row = padding
    target_mean: np.ndarray  # [T, R], per type, training rows only
    target_sd: np.ndarray  # [T, R]
    readout_col: np.ndarray  # [N + 1] readout column of each gene, -1 if none
    observed: np.ndarray  # [T, M, R] standardised TRAINING signatures by gene slot
    observed_mask: np.ndarray  # [T, M]
    observed_slot: np.ndarray  # [N + 1] slot of each gene in `observed` (M - 1: none)
    # [L, K + 1, N + 1, F]: X, ÂX, ..., Â^K X per layer (model.encoder=sign only; else None)
    propagated: np.ndarray | None = None

    @property
    def context(self) -> TranscriptionNetContext:
        return TranscriptionNetContext(
            features=self.features, graphs=self.graphs, propagated=self.propagated,
            readout_col=self.readout_col, observed=self.observed, observed_mask=self.observed_mask,
            observed_slot=self.observed_slot)

    def rows(self, split: str, types: list[str] | None = None) -> dict[str, np.ndarray]:
        """Per-example arrays of one split: gene index, type id, standardised target."""
        index, type_id, target = [], [], []
        for t_id, t in enumerate(self.types):
            if types is not None and t not in types:
                continue
            chosen = self.splits[t] == split
            table = self.data.signatures[t]
            index.append(table.pert_index[chosen])
            type_id.append(np.full(chosen.sum(), t_id, dtype=np.int32))
            target.append((table.values[chosen] - self.target_mean[t_id]) / self.target_sd[t_id])
        return {"pert_index": np.concatenate(index).astype(np.int32),
                "pert_type": np.concatenate(type_id),
                "target": np.concatenate(target).astype(np.float32)}

    def query(self, gene_index: np.ndarray, pert_type: str) -> dict[str, np.ndarray]:
        """Arrays asking for the signature of `pert_type` on each gene of `gene_index`."""
        t_id = self.types.index(pert_type)
        return {"pert_index": np.asarray(gene_index, dtype=np.int32),
                "pert_type": np.full(len(gene_index), t_id, dtype=np.int32)}

    def unscale(self, pred: np.ndarray, pert_type: str) -> np.ndarray:
        t_id = self.types.index(pert_type)
        return pred * self.target_sd[t_id] + self.target_mean[t_id]


def _held_out_genes(data: PerturbationData, splits: dict[str, np.ndarray]) -> np.ndarray:
    held = np.zeros(data.num_genes, dtype=bool)
    for t, table in data.signatures.items():
        held[table.pert_index[splits[t] != "train"]] = True
    return held


def standardise_features(data: PerturbationData, splits: dict[str, np.ndarray]) -> np.ndarray | None:
    """Node features scaled with statistics of genes that are not held-out perturbations.

    Genes without features get zeros (the training mean after scaling); an indicator
    column marks them when coverage is partial. Several tables (data.node_feature_files):
    each scaled on its own genes, one missing column per partial table (`standardise_blocks`).
    A padding row of zeros is appended.
    """
    if data.node_features is None:
        return None
    blocks = data.blocks()
    if len(blocks) > 1:
        scaled = standardise_blocks(data.node_features, blocks, ~_held_out_genes(data, splits))
        return np.concatenate([scaled, np.zeros((1, scaled.shape[1]))]).astype(np.float32)
    # One table: the presence column (1 = has features) as ever, so earlier runs reproduce.
    has = data.has_features if data.has_features is not None else np.ones(data.num_genes, bool)
    scaler = Standardiser.fit(data.node_features, has & ~_held_out_genes(data, splits),
                              "data.node_features")
    scaled = np.where(has[:, None], scaler.transform(data.node_features), 0.0)
    if not has.all():
        scaled = np.concatenate([scaled, has[:, None].astype(np.float64)], axis=1)
    return np.concatenate([scaled, np.zeros((1, scaled.shape[1]))]).astype(np.float32)


def readout_columns(data: PerturbationData) -> np.ndarray:
    """Readout column of every gene (-1 for genes that are not readouts), plus padding."""
    column = np.full(data.num_genes + 1, -1, dtype=np.int32)
    position = data.gene_position()
    for j, gene in enumerate(data.readout_genes.tolist()):
        if gene in position:
            column[position[gene]] = j
    return column


def observed_training_signatures(data, splits, means, sds):
    """Standardised observed signatures of TRAINING rows only, by gene slot.

    Only training rows are ever offered as inputs (e.g. to the cross-type refiner), so a
    validation or test signature can never leak into a prediction or into training.
    """
    types = data.pert_types
    perturbed = sorted({int(i) for t in types for i in data.signatures[t].pert_index})
    slot = np.full(data.num_genes + 1, len(perturbed), dtype=np.int32)
    slot[perturbed] = np.arange(len(perturbed), dtype=np.int32)
    observed = np.zeros((len(types), len(perturbed) + 1, len(data.readout_genes)), np.float32)
    mask = np.zeros((len(types), len(perturbed) + 1), bool)
    for t_id, t in enumerate(types):
        table, train = data.signatures[t], splits[t] == "train"
        rows = slot[table.pert_index[train]]
        observed[t_id, rows] = (table.values[train] - means[t_id]) / sds[t_id]
        mask[t_id, rows] = True
    return observed, mask, slot


def prepare(data: PerturbationData, splits: dict[str, np.ndarray],
            hops: int | None = None, num_shards: int = 1) -> PreparedData:
    """Scalers, graphs and context; with `hops` (model.encoder=sign), also the standardised node
    features propagated over each layer's normalised adjacency 1..hops times (once, here).
    `num_shards`: receiver shards per graph, one per device of the training mesh."""
    types = data.pert_types
    scalers = [Standardiser.fit(data.signatures[t].values, splits[t] == "train",
                                f"signatures of type '{t}'") for t in types]
    means = np.stack([scaler.mean for scaler in scalers])
    sds = np.stack([scaler.sd for scaler in scalers])
    means, sds = np.stack(means).astype(np.float32), np.stack(sds).astype(np.float32)
    observed, observed_mask, observed_slot = observed_training_signatures(data, splits, means, sds)
    features = standardise_features(data, splits)
    propagated = None
    if hops is not None:
        if features is None:
            raise DataError("model.encoder=sign propagates node features, and the data has none")
        propagated = propagated_features(data.layers, features, int(hops))
    return PreparedData(
        data=data, splits=splits, types=types, graphs=multiplex_graphs(data.layers, data.num_genes, num_shards),
        features=features, target_mean=means, target_sd=sds,
        readout_col=readout_columns(data), observed=observed, observed_mask=observed_mask,
        observed_slot=observed_slot, propagated=propagated)


def own_column_shift(prepared: PreparedData) -> np.ndarray:
    """Per type, the mean standardised value of the perturbed gene's own readout column
    over TRAINING rows whose perturbed gene is a readout (0 where there are none)."""
    rows = prepared.rows("train")
    column = prepared.readout_col[rows["pert_index"]]
    shift = np.zeros(len(prepared.types), np.float32)
    for t_id in range(len(prepared.types)):
        hit = (rows["pert_type"] == t_id) & (column >= 0)
        if hit.any():
            shift[t_id] = rows["target"][np.flatnonzero(hit), column[hit]].mean()
    return shift


SKIP_RIDGE_ALPHAS = np.logspace(-1, 4, 11)


def _mean_row_pearson(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean(row_pearson(pred, true)))


def ridge_skip_weights(prepared: PreparedData, alphas=SKIP_RIDGE_ALPHAS):
    """Per type, ridge from the standardised features to the standardised targets.

    Fitted on TRAINING rows; alpha maximises the mean validation Pearson r (in the
    standardised space, i.e. centred on the training mean; without validation rows, the
    first alpha). Returns [(kernel [F, R], bias [R])].
    """
    weights = []
    train, valid = prepared.rows("train"), prepared.rows("valid")
    for t_id in range(len(prepared.types)):
        pick = lambda rows: rows["pert_type"] == t_id  # noqa: E731
        y_va = valid["target"][pick(valid)]
        kernel, bias, _ = ridge_fit(
            prepared.features[train["pert_index"][pick(train)]], train["target"][pick(train)],
            prepared.features[valid["pert_index"][pick(valid)]], y_va,
            alphas if len(y_va) else alphas[:1], score=_mean_row_pearson)
        weights.append((kernel.astype(np.float32), bias.astype(np.float32)))
    return weights


def build_model(model_cfg: TranscriptionNetConfig, prepared: PreparedData, seed: int) -> TranscriptionNet:
    m = model_cfg
    if m.skip_init not in ("zeros", "ridge"):
        raise ValueError(f"model.skip_init must be 'zeros' or 'ridge', got {m.skip_init!r}")
    num_types, num_readouts = len(prepared.types), len(prepared.data.readout_genes)
    refine = (RefinerConfig(num_types, num_readouts, **{k: v for k, v in asdict(m.refine).items()
                                                        if k != "enabled"})
              if m.refine.enabled else None)
    feature_dim = None if prepared.features is None else prepared.features.shape[1]
    if m.encoder == "sign" and (prepared.propagated is None or prepared.propagated.shape[1] != m.hops + 1):
        raise ValueError(f"model.encoder=sign needs features propagated {m.hops} hop(s): "
                         f"prepare(data, splits, hops={m.hops})")
    # model.guard applies to predictions after training (tasks/transcriptionnet/guard.py).
    model = TranscriptionNet(TranscriptionNetModelConfig(
        num_nodes=prepared.data.num_genes + 1, num_layers=len(prepared.graphs), num_types=num_types,
        num_readouts=num_readouts, feature_dim=feature_dim, refine=refine,
        on_target_init=tuple(own_column_shift(prepared).tolist()) if m.on_target else None,
        node_input=m.node_input, hidden=m.hidden, gat_layers=m.gat_layers, heads=m.heads,
        fusion=m.fusion, fusion_dim=m.fusion_dim, head_hidden=m.head_hidden,
        head_blocks=m.head_blocks, dropout=m.dropout, on_target=m.on_target,
        linear_skip=m.linear_skip, encoder=m.encoder, hops=m.hops), rngs=nnx.Rngs(params=seed))
    if m.skip_init == "ridge":
        if model.skip is None:  # before the ridge fits: they cost
            raise ValueError("model.skip_init=ridge needs model.linear_skip=true")
        model.init_linear_start(ridge_skip_weights(prepared))  # fitted here (data work)
    return model


def make_loss_fn(beta: float):
    def loss_fn(model, batch, context, key):
        pred = model(context, batch["pert_index"], batch["pert_type"], deterministic=False,
                     rngs=nnx.Rngs(dropout=key))
        return mse_pearson_loss(pred, batch["target"], batch["mask"], beta)
    return loss_fn


def encode_fn(model, context):
    """The fused gene embeddings [N + 1, D]: the graph pass every prediction shares."""
    embedding, _ = model.embed(context.features, context.graphs, context.propagated)
    return embedding


def predict_fn(model, batch, context, embedding=None):
    """Signatures of a batch: from precomputed embeddings (`encode_fn`) when given."""
    if embedding is None:
        return model(context, batch["pert_index"], batch["pert_type"], deterministic=True)
    return model.decode(context, embedding, batch["pert_index"], batch["pert_type"])


def fusion_weights(model: TranscriptionNet, prepared: PreparedData) -> dict[str, float]:
    """Mean fusion attention per network layer over real (non-padding) genes."""
    _, weights = model.embed(jnp.asarray(prepared.features) if prepared.features is not None else None,
                             prepared.graphs,
                             None if prepared.propagated is None else jnp.asarray(prepared.propagated))
    mean = np.asarray(weights)[:, :prepared.data.num_genes].mean(axis=1)
    return {layer.name: float(w) for layer, w in zip(prepared.data.layers, mean)}


def predict_split(trainer, prepared: PreparedData, split: str) -> dict[str, np.ndarray]:
    """Model predictions per type for the rows of `split` (table order), in signature units."""
    predictions = {}
    for t in prepared.types:
        chosen = prepared.splits[t] == split
        if chosen.any():
            pred = trainer.predict(prepared.query(prepared.data.signatures[t].pert_index[chosen], t))
            predictions[t] = prepared.unscale(pred, t)
    return predictions


def evaluate_split(trainer, prepared: PreparedData, split: str) -> dict[str, dict[str, float]]:
    """Model metrics per type on `split`, in the original signature units."""
    return score_predictions(prepared, predict_split(trainer, prepared, split), split)


# Validation metrics also averaged over types (valid/<metric>; per type: valid/<TYPE>/<metric>).
MEAN_VALID_METRICS = ("pearson_delta", "pearson", "mse", "retrieval_top10")


def validation_metrics(trainer, prepared: PreparedData) -> dict[str, float]:
    per_type = evaluate_split(trainer, prepared, "valid")
    flat = {f"valid/{t}/{k}": v for t, m in per_type.items() for k, v in m.items() if k != "n"}
    for metric in MEAN_VALID_METRICS:
        flat[f"valid/{metric}"] = float(np.mean([m[metric] for m in per_type.values()]))
    return flat


def score_predictions(prepared: PreparedData, per_type: dict[str, np.ndarray], split: str) -> dict:
    """Metrics per type of predictions for the rows of `split` (in table order)."""
    out = {}
    for t, pred in per_type.items():
        t_id = prepared.types.index(t)
        table, chosen = prepared.data.signatures[t], prepared.splits[t] == split
        out[t] = signature_metrics(pred, table.values[chosen], prepared.target_mean[t_id],
                                   own_col=prepared.readout_col[table.pert_index[chosen]])
    return out


def baseline_metrics(prepared: PreparedData, split: str = "test") -> dict:
    """Every baseline, fitted on training rows only, scored on `split`."""
    predictions = fit_predict_baselines(prepared.data, prepared.splits, query_split=split)
    return {name: score_predictions(prepared, per_type, split) for name, per_type in predictions.items()}


def oracle_metrics(prepared: PreparedData, split: str = "test") -> dict | None:
    """Score of the noiseless planted signatures (synthetic data only): the ceiling."""
    oracle = prepared.data.extras.get("oracle_signatures")
    if oracle is None:
        return None
    return score_predictions(
        prepared, {t: oracle[t][prepared.splits[t] == split] for t in prepared.types}, split)


def replicate_ceiling_metrics(prepared: PreparedData, split: str = "test") -> dict | None:
    """Split-half replicate agreement on the `split` rows that have >= 2 replicates (data=cmap):
    half A's mean signature scored as a prediction of half B's with the same metrics (the
    training mean and own readouts as for the methods; rank_score and retrieval rank among
    those rows only). None when the data has no replicates."""
    halves = prepared.data.extras.get(REPLICATE_HALVES)
    if not halves:
        return None
    out = {}
    for t_id, t in enumerate(prepared.types):
        if t not in halves:
            continue
        genes, half_a, half_b = halves[t]
        row_of = {g: i for i, g in enumerate(genes.tolist())}
        table = prepared.data.signatures[t]
        chosen = [i for i in np.flatnonzero(prepared.splits[t] == split)
                  if table.pert_genes[i] in row_of]
        if not chosen:
            continue
        rows = np.asarray([row_of[table.pert_genes[i]] for i in chosen])
        out[t] = signature_metrics(half_a[rows], half_b[rows], prepared.target_mean[t_id],
                                   own_col=prepared.readout_col[table.pert_index[chosen]])
    return out or None
