"""Core-TF selection: nested sets from one ranking, one fine-tune, one compiled scorer."""
import numpy as np
import pytest
from flax import nnx

from tfnet_jax.analysis import tf_selection as sel
from tfnet_jax.data.expression.synthetic import GRNConfig, make_grn
from tfnet_jax.data.splits import split_samples
from tfnet_jax.eval.regression import expression_metrics
from tfnet_jax.models.tfnet import TFNet, TFNetModelConfig
from tfnet_jax.tasks.tfnet import prepare as task
from tfnet_jax.train.engine import TrainConfig, Trainer

TINY_GRN = dict(num_samples=300, num_tfs=16, num_masters=3, num_targets=40, num_states=4)


@pytest.fixture(scope="module")
def trained():
    data = make_grn(GRNConfig(**TINY_GRN))
    prepared = task.prepare(data, split_samples(data, seed=0))
    model = TFNet(TFNetModelConfig(16, 40, hidden=(32,), linear_skip=True), rngs=nnx.Rngs(0))
    cfg = TrainConfig(max_steps=150, batch_size=32, eval_batch_size=64, eval_every=50, log_every=50,
                      warmup_steps=10, learning_rate=3e-3, weight_decay=1e-4, progress=False,
                      monitor="valid/variance_explained", num_devices=1)
    trainer = Trainer(model, cfg, loss_fn=task.loss_fn, predict_fn=task.predict_fn, context={})
    trainer.fit(prepared.rows("train"), lambda tr: task.validation_metrics(tr, prepared))
    return prepared, trainer


def test_nested_sizes_and_masks():
    assert sel.nested_sizes(16, 0.3, 3) == [16, 11, 8, 6, 4, 3]
    assert sel.nested_sizes(100, 0.2, 5)[:4] == [100, 80, 64, 51]
    assert sel.nested_sizes(4, 0.2, 5) == [4]
    masks = sel.nested_masks(np.array([0.1, 3.0, 2.0, 2.0, 0.5]), [5, 3, 1])
    np.testing.assert_array_equal(masks, [[1, 1, 1, 1, 1], [0, 1, 1, 1, 0], [0, 1, 0, 0, 0]])
    with pytest.raises(ValueError, match="drop_fraction"):
        sel.nested_sizes(10, 1.0)


def test_set_scorer_matches_expression_metrics(trained):
    prepared, trainer = trained
    scorer = sel.SetScorer(prepared, chunk=48)  # 30 valid / 60 test rows: padded last chunk
    masks = np.ones((2, 16), np.float32)
    masks[1, :8] = 0
    for split in ("valid", "test"):
        got = scorer.metrics(trainer, masks, split)
        want = expression_metrics(task.predict_split(trainer, prepared, split), prepared.targets(split))
        for key in sel.SCORE_KEYS:
            assert got[0][key] == pytest.approx(want[key], rel=1e-4, abs=1e-5)
        assert got[1]["variance_explained"] < got[0]["variance_explained"]


def test_selection_finds_the_planted_masters_with_one_fine_tune_and_fixed_compiles(
        trained, monkeypatch):
    prepared, trainer = trained
    masters = set(prepared.data.extras["core_tfs"])
    built = []

    class CountingTrainer(Trainer):
        def __init__(self, *args, **kwargs):
            built.append(1)
            super().__init__(*args, **kwargs)
    monkeypatch.setattr(sel, "Trainer", CountingTrainer)
    full_before = np.asarray(trainer.predict({"x": prepared.inputs("valid")}))
    table = sel.select_core_tfs(trainer, prepared, steps=60, drop_fraction=0.1, min_tfs=3, evals=3)
    # 12 candidate sets, yet one fine-tune trainer, one train-step and one scorer compile.
    assert table["n_tfs"].tolist() == sel.nested_sizes(16, 0.1, 3) and len(table) == 13
    assert len(built) == 1
    # (the module-level scorer may have compiled these shapes for an earlier test: at most 1)
    assert table.attrs["compiles"]["fine_tune_step"] == 1 and table.attrs["compiles"]["set_scorer"] <= 1
    # The trained model is left as it was.
    np.testing.assert_array_equal(full_before, trainer.predict({"x": prepared.inputs("valid")}))
    # Nested sets; the last (3 TFs) is exactly the planted masters.
    kept = [set(t.split(",")) for t in table["tfs"]]
    assert all(a >= b for a, b in zip(kept, kept[1:]))
    assert kept[-1] == masters
    sets = sel.smallest_sets(table)
    assert masters <= set(sets["80%"]["tfs"]) and sets["80%"]["n_tfs"] <= sets["95%"]["n_tfs"]
    assert sets["80%"]["valid_share_of_full"] >= 0.8
    # The masters alone keep most of the fit once the model has learned to do without the rest.
    assert table["valid_variance_explained"].iloc[-1] > 0.6 * table["valid_variance_explained"].iloc[0]


def test_gradient_importance_is_the_mean_absolute_jacobian(trained):
    import jax
    prepared, trainer = trained
    x = prepared.inputs("train")[:10]
    model = trainer.model
    got = sel.gradient_importance(model, x, chunk=4)  # 3 chunks, the last padded
    jac = np.asarray(jax.jit(jax.jacfwd(model))(x))  # [rows, targets, rows, TFs]
    per_row = jac[np.arange(len(x)), :, np.arange(len(x)), :]  # each row's own [targets, TFs]
    np.testing.assert_allclose(got, np.abs(per_row).mean(axis=(0, 1)), rtol=1e-4, atol=1e-7)


def test_nested_linear_path_is_masking_each_set():
    import jax.numpy as jnp
    rng = np.random.default_rng(0)
    for n in (1, 7, 100):  # one block, blocks of one TF, blocks with a padded tail
        x, weight = rng.normal(size=(5, n)), rng.normal(size=(n, 3))
        masks = sel.nested_masks(rng.normal(size=n), sel.nested_sizes(n, 0.2, 1))[::-1]
        got = sel._nested_linear(jnp.asarray(x, jnp.float32), jnp.asarray(weight, jnp.float32),
                                 jnp.asarray(masks))
        np.testing.assert_allclose(got, np.einsum("rn,kn,nT->krT", x, masks, weight),
                                   rtol=1e-4, atol=1e-4)


def test_set_scorer_nested_and_any_masks_agree(trained):
    prepared, trainer = trained
    scorer = sel.SetScorer(prepared)
    nested = sel.nested_masks(np.arange(16.0), [12, 7, 2])
    loose = np.vstack([nested, 1 - nested[-1:]])  # not nested: the plain path for every set
    np.testing.assert_allclose(scorer.sse(trainer, nested, "valid"),
                               scorer.sse(trainer, loose, "valid")[:3], rtol=1e-4)
