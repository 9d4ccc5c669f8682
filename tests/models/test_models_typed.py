"""The built-in models in gemma's style: one typed config and the rngs, typed contexts (pytrees,
not string-keyed dicts), and the linear start as a model method."""
import dataclasses
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_MODEL
from flax import nnx

from tfnet_jax.models.genonet import GenoNet, GenoNetContext
from tfnet_jax.models.gensan import CrossTypeRefiner
from tfnet_jax.models.tfnet import TFNet, TFNetModelConfig
from tfnet_jax.models.transcriptionnet import (TranscriptionNet, TranscriptionNetContext,
                                               TranscriptionNetModelConfig)


@pytest.mark.parametrize("model", [TranscriptionNet, TFNet, GenoNet, CrossTypeRefiner])
def test_init_takes_one_config_and_keyword_only_rngs(model):
    params = inspect.signature(model.__init__).parameters
    assert list(params) == ["self", "config", "rngs"]
    assert params["config"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert params["rngs"].kind is inspect.Parameter.KEYWORD_ONLY


def test_tfnet_linear_start_is_the_linear_map():
    rng = np.random.default_rng(0)
    coef, intercept = rng.normal(size=(6, 4)), rng.normal(size=4)
    x = rng.normal(size=(9, 6)).astype(np.float32)
    model = TFNet(TFNetModelConfig(6, 4, hidden=(8, 5), linear_skip=True), rngs=nnx.Rngs(0))
    model.init_linear_start(coef, intercept)
    np.testing.assert_allclose(np.asarray(model(x)), x @ coef + intercept, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="linear_skip"):
        TFNet(TFNetModelConfig(6, 4), rngs=nnx.Rngs(0)).init_linear_start(coef, intercept)


def test_transcriptionnet_linear_start_is_each_types_linear_map():
    from tfnet_jax.data.networks import NetworkLayer
    from tfnet_jax.graph.multiplex import multiplex_graphs
    layer = NetworkLayer("toy", senders=np.array([0, 1], np.int32), receivers=np.array([1, 2], np.int32),
                         weights=np.array([2.0, 1.0], np.float32))
    rng = np.random.default_rng(1)
    weights = [(rng.normal(size=(6, 7)).astype(np.float32), rng.normal(size=7).astype(np.float32))
               for _ in range(3)]
    features = rng.normal(size=(5, 6)).astype(np.float32)
    config = TranscriptionNetModelConfig(num_nodes=5, num_layers=2, num_types=3, num_readouts=7,
                                         feature_dim=6, hidden=8, heads=2, fusion_dim=4, head_hidden=16,
                                         head_blocks=1, linear_skip=True)
    model = TranscriptionNet(config, rngs=nnx.Rngs(0))
    model.init_linear_start(weights)
    genes, types = np.array([0, 3, 2, 1]), np.array([0, 1, 2, 2])
    context = TranscriptionNetContext(jnp.asarray(features), multiplex_graphs([layer, layer], 4, edge_multiple=8))
    expected = np.stack([features[g] @ weights[t][0] + weights[t][1] for g, t in zip(genes, types)])
    np.testing.assert_allclose(np.asarray(model(context, jnp.asarray(genes), jnp.asarray(types))),
                               expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="needs model.linear_skip"):
        TranscriptionNet(dataclasses.replace(config, linear_skip=False), rngs=nnx.Rngs(0)
                         ).init_linear_start(weights)


def test_context_is_a_typed_pytree_the_engine_compiles_once(tiny_prepared):
    from jax.sharding import PartitionSpec as P

    from tfnet_jax.schemas.models import TranscriptionNetConfig
    from tfnet_jax.tasks.transcriptionnet import prepare as task
    from tfnet_jax.tasks.transcriptionnet.family import TranscriptionNetFamily
    from tfnet_jax.train.engine import Trainer, TrainConfig
    context = tiny_prepared.context
    assert isinstance(context, TranscriptionNetContext) and not isinstance(context, dict)
    assert context.propagated is None  # an unused optional field: None, no leaves
    specs = TranscriptionNetFamily().context_specs(tiny_prepared)
    assert isinstance(specs, TranscriptionNetContext) and specs.graphs == P("data")
    # One device: tiny_prepared's graphs have one receiver shard.
    cfg = TrainConfig(batch_size=16, eval_batch_size=32, max_steps=10, progress=False, num_devices=1)
    trainer = Trainer(task.build_model(TranscriptionNetConfig(**TINY_MODEL), tiny_prepared, seed=0), cfg,
                      loss_fn=task.make_loss_fn(0.5), predict_fn=task.predict_fn, context=context,
                      context_specs=specs)
    assert isinstance(trainer.context, TranscriptionNetContext)
    assert trainer.context.graphs[0].senders.sharding.spec == P("data")  # the specs reached the leaves
    rows = tiny_prepared.rows("train")
    for step in range(2):
        trainer.step(trainer.train_batch(rows, step), step)
    trainer.set_context(context.replace(features=context.features + 1.0))  # new values, same shapes
    trainer.step(trainer.train_batch(rows, 2), 2)
    assert trainer._train_step._cache_size() == 1


def test_genonet_fold_context_is_a_typed_pytree():
    from tfnet_jax.data.genotype.blocks import Block
    from tfnet_jax.tasks.genonet import prepare as task
    rng = np.random.default_rng(0)
    dosage = rng.integers(0, 3, (20, 2, 4)).astype(np.float32)
    fold = task.prepare_fold(Block(["a", "b"], dosage, np.ones((2, 4), bool), None),
                             rng.normal(size=(20, 2)), np.ones(20, bool), annotations=True)
    assert isinstance(fold.context, GenoNetContext) and fold.context.annotations is None
    assert {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(fold.context)} == {
        ".vmask", ".mu", ".sd", ".active"}
