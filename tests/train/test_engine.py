"""The generic engine: sharding equality, resume, early stopping, static shapes.

Its tests train a tiny model of their own (an encoder shared by every prediction, a head per
row), so they test the engine and no family."""
import json
import logging
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tfnet_jax.errors import ConfigError
from tfnet_jax.train.engine import Trainer, TrainConfig, pad_rows

TABLE_ROWS, TABLE_DIM, INPUT_DIM, OUTPUT_DIM = 30, 4, 3, 2


class TinyNet(nnx.Module):
    """A row of a shared table, encoded once for every prediction, plus a row's own inputs."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.encoder = nnx.Linear(TABLE_DIM, 8, rngs=rngs)
        self.head = nnx.Linear(8 + INPUT_DIM, OUTPUT_DIM, rngs=rngs)
        self.dropout = nnx.Dropout(0.1)

    def embed(self, table):
        return jnp.tanh(self.encoder(table))

    def decode(self, encoded, batch, *, deterministic=True, rngs=None):
        h = jnp.concatenate([encoded[batch["index"]], batch["x"]], axis=-1)
        return self.head(self.dropout(h, deterministic=deterministic, rngs=rngs))


def loss_fn(model, batch, context, key):
    pred = model.decode(model.embed(context["table"]), batch, deterministic=False,
                        rngs=nnx.Rngs(dropout=key))
    mse = (((pred - batch["target"]) ** 2).mean(-1) * batch["mask"]).sum() / batch["mask"].sum()
    return mse, {"mse": mse}


def predict_fn(model, batch, context, encoded=None):
    return model.decode(model.embed(context["table"]) if encoded is None else encoded, batch)


def encode_fn(model, context):
    return model.embed(context["table"])


def tiny_task(seed=0, rows=120):
    """(context, {split: rows}): targets a fixed nonlinear function of the table row and x."""
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(TABLE_ROWS, TABLE_DIM)).astype(np.float32)
    w = rng.normal(size=(TABLE_DIM + INPUT_DIM, OUTPUT_DIM))

    def split(n):
        index = rng.integers(0, TABLE_ROWS, n).astype(np.int32)
        x = rng.normal(size=(n, INPUT_DIM)).astype(np.float32)
        target = np.tanh(np.concatenate([table[index], x], 1) @ w).astype(np.float32)
        return {"index": index, "x": x, "target": target}
    return {"table": table}, {"train": split(rows), "valid": split(40)}


CONTEXT, ROWS = tiny_task()


def validation_metrics(trainer):
    valid = ROWS["valid"]
    pred = trainer.predict({"index": valid["index"], "x": valid["x"]})
    return {"valid/score": -float(np.mean((pred - valid["target"]) ** 2))}


def make_trainer(run_dir=None, seed=0, encode=False, **train):
    cfg = TrainConfig(**{"batch_size": 16, "eval_batch_size": 32, "max_steps": 40, "eval_every": 10,
                         "log_every": 5, "warmup_steps": 5, "progress": False, "seed": seed,
                         "learning_rate": 1e-2, "monitor": "valid/score", **train})
    return Trainer(TinyNet(rngs=nnx.Rngs(seed)), cfg, loss_fn=loss_fn, predict_fn=predict_fn,
                   context=CONTEXT, run_dir=run_dir, encode_fn=encode_fn if encode else None)


def params_of(trainer):
    return [np.asarray(x) for x in jax.tree.leaves(trainer.state)]


def test_pad_rows_masks_padding():
    arrays = {"x": np.arange(5) * 10}
    batch = pad_rows(arrays, np.array([3, 1]), 4)
    assert batch["x"].tolist() == [30, 10, 0, 0]
    assert batch["mask"].tolist() == [1, 1, 0, 0]


def test_same_loss_on_one_and_four_devices():
    assert len(jax.devices()) >= 4, "conftest should fake 4 CPU devices"
    arrays = ROWS["train"]
    losses = {}
    for n in (1, 4):
        trainer = make_trainer(num_devices=n, warmup_steps=1)
        assert trainer.mesh.devices.size == n
        batch = trainer.train_batch(arrays, 0)  # one batch: the loss falls as it is learnt
        losses[n] = [float(trainer.step(batch, s)[0]) for s in range(4)]
    np.testing.assert_allclose(losses[1], losses[4], rtol=2e-5)
    assert losses[1][-1] < losses[1][0]  # it does learn


def test_batch_size_must_divide_devices():
    with pytest.raises(ValueError, match="batch_size=10 is not divisible by the 4 devices"):
        make_trainer(batch_size=10, num_devices=4)


def test_no_recompilation_across_batches(compiles):
    arrays = ROWS["train"]
    trainer = make_trainer()
    per_epoch = -(-len(arrays["index"]) // 16)
    for s in range(per_epoch + 2):  # crosses the padded last batch of an epoch
        trainer.step(trainer.train_batch(arrays, s), s)
    assert compiles["train_step"] == 1
    trainer.predict({"index": ROWS["valid"]["index"], "x": ROWS["valid"]["x"]})
    trainer.predict({"index": ROWS["train"]["index"][:23], "x": ROWS["train"]["x"][:23]})
    assert compiles["predict_step"] == 1


def test_batches_are_a_function_of_seed_and_epoch():
    arrays = dict(ROWS["train"], row=np.arange(len(ROWS["train"]["index"])))
    a, b = make_trainer(), make_trainer()
    np.testing.assert_array_equal(a.train_batch(arrays, 7)["row"], b.train_batch(arrays, 7)["row"])
    n = len(arrays["row"])
    per_epoch = -(-n // 16)
    seen = np.concatenate([a.train_batch(arrays, s)["row"][a.train_batch(arrays, s)["mask"] > 0]
                           for s in range(per_epoch)])
    assert sorted(seen.tolist()) == list(range(n))  # each row once per epoch


def test_full_batch_takes_every_row_each_step(compiles):
    arrays = dict(ROWS["train"], row=np.arange(len(ROWS["train"]["index"]) - 1))  # 119 rows
    arrays = {k: v[:119] for k, v in arrays.items()}
    n = 119
    trainer = make_trainer(full_batch=True, num_devices=4, warmup_steps=1, learning_rate=5e-2)
    batches = [trainer.train_batch(arrays, s) for s in range(3)]
    for batch in batches:  # all n rows, padded up to a multiple of the 4 devices
        assert len(batch["mask"]) == -(-n // 4) * 4 and batch["mask"].sum() == n
        assert sorted(batch["row"][batch["mask"] > 0].tolist()) == list(range(n))
    losses = [float(trainer.step(batch, s)[0]) for s, batch in enumerate(batches)]
    assert losses[2] < losses[0] and compiles["train_step"] == 1  # step 0: warm-up lr 0


class Interrupt(Exception):
    pass


def test_resume_after_interruption_matches_uninterrupted(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="tfnet_jax")
    arrays = ROWS["train"]
    evaluate = validation_metrics

    straight = make_trainer(run_dir=tmp_path / "straight", patience=100)
    straight.fit(arrays, evaluate)

    calls = {"n": 0}

    def dies_at_third_eval(trainer):
        calls["n"] += 1
        if calls["n"] == 3:  # step 30: the last checkpoint is step 20
            raise Interrupt
        return evaluate(trainer)

    run_dir = tmp_path / "interrupted"
    with pytest.raises(Interrupt):
        make_trainer(run_dir=run_dir, patience=100).fit(arrays, dies_at_third_eval)
    resumed = make_trainer(run_dir=run_dir, patience=100)
    meta = resumed.fit(arrays, evaluate)
    # Checkpoints are saved asynchronously: with this tiny model the step-20 save may still be
    # running at the interrupt, so the run resumes from step 20 or from the step-10 one.
    found = re.search(r"Resumed from checkpoint at step (\d+)", caplog.text)
    assert found and int(found.group(1)) in (10, 20)
    assert meta["step"] == 40 and meta["finished"]
    for x, y in zip(params_of(straight), params_of(resumed)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)

    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    straight_steps = [json.loads(line)["step"]
                      for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert steps == straight_steps  # no records repeated or lost by the resume


def test_finished_run_is_not_retrained(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="tfnet_jax")
    arrays = ROWS["train"]
    make_trainer(run_dir=tmp_path, max_steps=20).fit(arrays, validation_metrics)
    again = make_trainer(run_dir=tmp_path, max_steps=20)
    meta = again.fit(arrays, lambda tr: pytest.fail("a finished run must not evaluate again"))
    assert meta["finished"] and "already finished" in caplog.text


def test_early_stopping_keeps_best_checkpoint(tmp_path):
    arrays = ROWS["train"]
    scores = iter([0.5, 0.9, 0.4, 0.3, 0.2, 0.1])
    snapshots = {}

    def evaluate(trainer):
        score = next(scores)
        snapshots[score] = params_of(trainer)
        return {"valid/score": score}

    trainer = make_trainer(run_dir=tmp_path, max_steps=100, patience=3)
    meta = trainer.fit(arrays, evaluate)
    assert meta["best_step"] == 20 and meta["step"] == 50 and meta["best_score"] == 0.9
    for x, y in zip(params_of(trainer), snapshots[0.9]):  # the best state is loaded at the end
        np.testing.assert_array_equal(x, y)


def test_unknown_monitor_is_a_clear_error():
    trainer = make_trainer(monitor="valid/nope", max_steps=10)
    with pytest.raises(ConfigError, match="train.monitor='valid/nope'"):
        trainer.fit(ROWS["train"], lambda tr: {"valid/score": 0.1})


def test_unknown_train_field():
    from tfnet_jax.schemas.typed import typed_group
    with pytest.raises(ConfigError, match=r"train.learnin_rate: unknown key; did you mean train.learning_rate"):
        typed_group("train", {"learnin_rate": 0.1})


# ---------------------------------------------------------------- reset / set_context
def _linear_trainer(context_scale=1.0):
    """A tiny standalone model: the public reset/set_context API, independent of any family."""
    from flax import nnx

    def loss_fn(model, batch, context, key):
        pred = model(batch["x"])[:, 0] * context["scale"]
        return (((pred - batch["y"]) ** 2) * batch["mask"]).sum() / batch["mask"].sum(), {}

    def predict_fn(model, batch, context):
        return model(batch["x"])[:, 0] * context["scale"]

    cfg = TrainConfig(batch_size=8, eval_batch_size=8, max_steps=20, warmup_steps=2, progress=False)
    return Trainer(nnx.Linear(3, 1, rngs=nnx.Rngs(0)), cfg, loss_fn=loss_fn, predict_fn=predict_fn,
                   context={"scale": np.float32(context_scale)})


def _linear_arrays():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3)).astype(np.float32)
    return {"x": x, "y": (x @ np.array([1.0, -2.0, 0.5])).astype(np.float32)}


def _train(trainer, arrays, steps=6):
    for s in range(steps):
        trainer.step(trainer.train_batch(arrays, s), s)
    return params_of(trainer)


def test_reset_trains_bit_identically_to_a_fresh_trainer_without_retracing(compiles):
    arrays = _linear_arrays()
    fresh = _train(_linear_trainer(), arrays)
    trainer = _linear_trainer()
    first = _train(trainer, arrays)
    trainer.reset()
    again = _train(trainer, arrays)
    for a, b, c in zip(fresh, first, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    # A new context of the same shapes: the run equals a fresh trainer built with it.
    trainer.reset(context={"scale": np.float32(2.0)})
    other = _train(trainer, arrays)
    for a, b in zip(_train(_linear_trainer(2.0), arrays), other):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(fresh, other))
    trainer.set_context({"scale": np.float32(3.0)})
    trainer.predict(arrays)
    # Three trainers of one shape: one compile each, none for reset or set_context.
    assert compiles["train_step"] == 3 and compiles["predict_step"] == 1


def test_set_context_of_another_shape_is_a_clear_error():
    trainer = _linear_trainer()
    with pytest.raises(ValueError, match=r"context\['scale'\]: float32\[2\] differs"):
        trainer.set_context({"scale": np.ones(2, np.float32)})
    with pytest.raises(ValueError, match="structure"):
        trainer.set_context({"scale": np.float32(1.0), "extra": np.float32(0.0)})


def test_encoded_once_per_state_and_equal_to_the_whole_model():
    """encode_fn (the shared encoder) runs once per parameter state and predictions built on it
    equal the whole model's, batch by batch."""
    plain = make_trainer(eval_batch_size=16)
    cached = make_trainer(eval_batch_size=16, encode=True)
    query = {"index": ROWS["valid"]["index"], "x": ROWS["valid"]["x"]}
    np.testing.assert_allclose(cached.predict(query), plain.predict(query), rtol=1e-5, atol=1e-6)
    first = cached.encoded()
    assert cached.encoded()[0] is first[0]  # same parameters: not recomputed
    for step in range(3):  # step 0 has learning rate 0 (warm-up)
        cached.step(cached.train_batch(ROWS["train"], step), step)
    after = cached.encoded()[0]
    assert after is not first[0] and np.abs(np.asarray(after) - np.asarray(first[0])).max() > 1e-4
    cached.reset()
    np.testing.assert_allclose(np.asarray(cached.encoded()[0]), np.asarray(first[0]), rtol=1e-6)
