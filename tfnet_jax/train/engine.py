"""The one training engine for every model family.

A family hands the engine an NNX model, a pure `loss_fn(model, batch, context, key)`, a
pure `predict_fn(model, batch, context)`, a `context` pytree that every step needs
(graphs, node features) and per-example arrays (sharded along the batch). The engine
knows nothing about biology.

Data parallelism: `jax.jit` over a 1-axis mesh ('data'); batches are sharded with
NamedSharding(P('data')), parameters and optimiser state are replicated, and the context
is replicated except where `context_specs` shards it (e.g. graph edge blocks split by
receiver, one per device: tfnet_jax.graph.attention). Steps are traced under the mesh
(`jax.set_mesh`), so a model can `shard_map` its own work over the data axis.
Batches are padded to a fixed size with a 0/1 `mask`, so each step compiles once.
Batch order is a pure function of (seed, epoch): a resumed run sees exactly the batches
an uninterrupted run would. Across processes (jax.distributed, see train/distributed.py) the
mesh spans every process's devices, each process feeds the rows of its own devices, and the
global batch is the same as with one process.
"""
from __future__ import annotations

import functools
import logging
import math
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P
from tqdm.auto import tqdm

from tfnet_jax.train import metrics_log
from tfnet_jax.errors import ConfigError, RunDirError, TrainingError
from tfnet_jax.schemas import TrainConfig  # noqa: F401 (re-exported: defined with the configs)
from tfnet_jax.train import distributed
from tfnet_jax.train.checkpoint import Checkpoints, remove_partial_saves
from tfnet_jax.train.optim import make_optimizer, make_schedule

log = logging.getLogger(__name__)


DATA_AXIS = "data"


# ---------------------------------------------------------------- mesh and batches
def check_num_devices(num_devices: int | None) -> None:
    """train.num_devices within the visible devices (called before any data is loaded, too)."""
    if num_devices is not None and not 1 <= num_devices <= jax.device_count():
        raise ConfigError(f"config: train.num_devices={num_devices}: {jax.device_count()} "
                          f"device(s) are visible; use 1..{jax.device_count()} or null (all)")


def make_data_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    """The one-axis data mesh over the first `num_devices` devices (None: all). Made once per
    device set and shared: a run's prepare step and every trainer get the same mesh."""
    check_num_devices(num_devices)
    devices = jax.devices()
    return _mesh(tuple(devices if num_devices is None else devices[:num_devices]))


@functools.lru_cache(maxsize=8)
def _mesh(devices: tuple) -> jax.sharding.Mesh:
    distributed.check_mesh(list(devices))
    return jax.make_mesh((len(devices),), (DATA_AXIS,), devices=devices,
                         axis_types=(jax.sharding.AxisType.Auto,))


def padded_index(index: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """`index` padded with row 0 to `size`, and the 0/1 mask of its real rows."""
    real = len(index)
    padded = np.concatenate([index, np.zeros(size - real, dtype=index.dtype)])
    return padded, (np.arange(size) < real).astype(np.float32)


def pad_rows(arrays: dict[str, np.ndarray], index: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Rows `index` of every array, padded with row 0 to `size`, plus a 0/1 `mask`."""
    padded, mask = padded_index(index, size)
    batch = {name: value[padded] for name, value in arrays.items()}
    batch["mask"] = mask
    return batch


def _context_shardings(mesh, context, specs):
    """A NamedSharding per context leaf: `specs` (a pytree prefix of PartitionSpecs) or replicated."""
    if specs is None:
        return jax.tree.map(lambda _: NamedSharding(mesh, P()), context)
    return jax.tree.map(lambda spec, subtree: jax.tree.map(lambda _: NamedSharding(mesh, spec), subtree),
                        specs, context, is_leaf=lambda x: isinstance(x, P))


def _num_rows(arrays: dict[str, np.ndarray]) -> int:
    sizes = {name: len(value) for name, value in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"per-example arrays differ in length: {sizes}")
    return next(iter(sizes.values()))


# ---------------------------------------------------------------- the trainer
class Trainer:
    def __init__(self, model: nnx.Module, cfg: TrainConfig, *, loss_fn: Callable,
                 predict_fn: Callable, context, run_dir: str | Path | None = None,
                 encode_fn: Callable | None = None, context_specs=None):
        """encode_fn(model, context) -> pytree: work every prediction shares (e.g. a graph
        encoder's node embeddings), computed once per parameter state and handed to
        `predict_fn(model, batch, context, encoded)`; None: `predict_fn(model, batch, context)`.
        context_specs: a pytree prefix of the context with a PartitionSpec per subtree (None:
        all replicated), e.g. the context's dataclass with P("data") for its graphs, P() elsewhere."""
        self.cfg = cfg
        self.mesh = make_data_mesh(cfg.num_devices)
        n_dev = self.mesh.devices.size
        for name in ("batch_size", "eval_batch_size"):
            if getattr(cfg, name) % n_dev:
                raise ConfigError(f"config: train.{name}={getattr(cfg, name)} is not divisible by the "
                                 f"{n_dev} devices of the mesh")
        self.replicated = NamedSharding(self.mesh, P())
        self.sharded = NamedSharding(self.mesh, P(DATA_AXIS))
        self.schedule = make_schedule(cfg.schedule, cfg.learning_rate, cfg.max_steps, cfg.warmup_steps)
        optimizer = nnx.Optimizer(model, make_optimizer(cfg.optimizer, self.schedule,
                                                        cfg.weight_decay, cfg.grad_clip), wrt=nnx.Param)
        self.graphdef, state = nnx.split((model, optimizer))
        # A host copy: the device state is donated to every step, so it cannot be kept.
        self.initial_state = jax.device_get(state)
        self.state = jax.device_put(state, self.replicated)
        self.context_shardings = _context_shardings(self.mesh, context, context_specs)
        self.context = jax.device_put(context, self.context_shardings)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.base_key = jax.random.key(cfg.seed)
        graphdef = self.graphdef

        def train_step(state, batch, context, key, step):
            model, optimizer = nnx.merge(graphdef, state)
            step_key = jax.random.fold_in(key, step)
            grad_fn = nnx.value_and_grad(lambda m: loss_fn(m, batch, context, step_key), has_aux=True)
            (loss, aux), grads = grad_fn(model)
            optimizer.update(model, grads)
            return nnx.state((model, optimizer)), loss, aux

        def predict_step(state, batch, context, *encoded):
            model, _ = nnx.merge(graphdef, state)
            return predict_fn(model, batch, context, *encoded)

        def encode_step(state, context):
            model, _ = nnx.merge(graphdef, state)
            return encode_fn(model, context)

        self._train_step = jax.jit(train_step, donate_argnums=0,
                                   out_shardings=(self.replicated, self.replicated, self.replicated))
        self._predict_step = jax.jit(predict_step)
        self._encode_step = None if encode_fn is None else jax.jit(encode_step,
                                                                    out_shardings=self.replicated)
        self._encoded_for, self._encoded = None, None  # (the state it belongs to, encode_fn's output)

    # ------------------------------------------------------------ helpers
    @property
    def model(self) -> nnx.Module:
        model, _ = nnx.merge(self.graphdef, self.state)
        return model

    def reset(self, state=None, context=None) -> None:
        """Back to `state` (default: the state at construction), optionally with a new context.

        Shapes and dtypes stay those the steps were compiled for, so nothing recompiles: a
        loop over folds or blocks of one shape runs one program (see tasks/genonet/fit.py).
        """
        self.state = jax.device_put(self.initial_state if state is None else state, self.replicated)
        self._encoded_for = None
        if context is not None:
            self.set_context(context)

    def set_context(self, context) -> None:
        """Replace the context with one of the same structure, shapes and dtypes (no recompile)."""
        old = jax.tree_util.tree_flatten_with_path(self.context)
        new = jax.tree_util.tree_flatten_with_path(context)
        if old[1] != new[1]:
            raise ValueError(f"context: structure {new[1]} differs from the compiled {old[1]}")
        for (path, was), (_, now) in zip(old[0], new[0]):
            if np.shape(now) != np.shape(was) or np.asarray(now).dtype != was.dtype:
                raise ValueError(f"context{jax.tree_util.keystr(path)}: {np.asarray(now).dtype}"
                                 f"{list(np.shape(now))} differs from the compiled "
                                 f"{was.dtype}{list(was.shape)}")
        self.context = jax.device_put(context, self.context_shardings)
        self._encoded_for = None

    def _put_batch(self, batch: dict[str, np.ndarray]):
        if distributed.is_multiprocess():  # a whole batch given: each process takes its rows
            return distributed.global_rows(batch, np.arange(_num_rows(batch)),
                                           batch["mask"], self.sharded)
        return jax.device_put(batch, self.sharded)

    def _put_rows(self, arrays: dict[str, np.ndarray], index: np.ndarray, size: int):
        """Rows `index` of `arrays` as a padded, sharded batch of `size` rows."""
        if distributed.is_multiprocess():  # each process gathers only its own devices' rows
            return distributed.global_rows(arrays, *padded_index(index, size), self.sharded)
        return jax.device_put(pad_rows(arrays, index, size), self.sharded)

    def train_batch_size(self, num_rows: int) -> int:
        """cfg.batch_size, or with cfg.full_batch every row (padded to the device count)."""
        if not self.cfg.full_batch:
            return self.cfg.batch_size
        n_dev = self.mesh.devices.size
        return max(1, math.ceil(num_rows / n_dev)) * n_dev

    def train_index(self, num_rows: int, step: int) -> tuple[np.ndarray, int]:
        """Rows of global step `step` and the batch size: deterministic in (seed, epoch)."""
        size = self.train_batch_size(num_rows)
        per_epoch = math.ceil(num_rows / size)
        epoch, position = divmod(step, per_epoch)
        order = np.random.default_rng([self.cfg.seed, epoch]).permutation(num_rows)
        return order[position * size:(position + 1) * size], size

    def train_batch(self, arrays: dict[str, np.ndarray], step: int) -> dict[str, np.ndarray]:
        """The batch of global step `step`: deterministic in (seed, epoch)."""
        return pad_rows(arrays, *self.train_index(_num_rows(arrays), step))

    def step(self, batch: dict, step: int):
        """One optimiser step on `batch` (host arrays, or device arrays from `_put_rows`);
        returns (loss, aux) as device scalars."""
        if not all(isinstance(value, jax.Array) for value in batch.values()):
            batch = self._put_batch(batch)
        with jax.set_mesh(self.mesh):
            self.state, loss, aux = self._train_step(
                self.state, batch, self.context, self.base_key, jnp.int32(step))
        return loss, aux

    def encoded(self) -> tuple:
        """encode_fn's output for the current parameters and context (computed once per state;
        every step, reset, restore or new context makes a new one); () without encode_fn."""
        if self._encode_step is None:
            return ()
        if self._encoded_for is not self.state:
            with jax.set_mesh(self.mesh):
                self._encoded = self._encode_step(self.state, self.context)
            self._encoded_for = self.state
        return (self._encoded,)

    def predict(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Predictions for every row of `arrays`, in fixed-size padded batches."""
        n = _num_rows(arrays)
        size = self.cfg.eval_batch_size
        outputs = []
        encoded = self.encoded()
        for start in range(0, n, size):
            index = np.arange(start, min(start + size, n))
            with jax.set_mesh(self.mesh):
                out = self._predict_step(self.state, self._put_rows(arrays, index, size),
                                         self.context, *encoded)
            outputs.append(distributed.to_host(out)[: len(index)])
        return np.concatenate(outputs) if outputs else np.zeros((0,))

    def restore(self, checkpoint_dir: str | Path, which: str = "best") -> dict:
        """Load parameters from `checkpoint_dir` ('best' or 'latest'); returns its meta."""
        folder = Path(checkpoint_dir) / which
        if which not in ("best", "latest"):
            raise ConfigError(f"config: which={which!r}: expected one of best, latest")
        if not folder.is_dir() or not any(folder.iterdir()):  # checked first: opening creates it
            raise RunDirError(f"{folder}: no {which} checkpoint; the run did not train to an "
                              f"evaluation: re-run training into it")
        ckpt = Checkpoints(checkpoint_dir)
        try:
            state, meta = ckpt.restore(nnx.to_pure_dict(self.state), which=which)
        except Exception as err:  # a partial copy, a foreign file, another model's shapes
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise RunDirError(f"{folder}: the {which} checkpoint cannot be restored "
                              f"({type(err).__name__}: {first}); re-run training into a new "
                              f"run dir") from err
        finally:
            ckpt.close()
        self._load_pure(state)
        return meta

    def _load_pure(self, pure_state):
        state = jax.device_get(self.state)
        nnx.replace_by_pure_dict(state, pure_state)
        self.state = jax.device_put(state, self.replicated)

    def _better(self, score: float, best: float | None) -> bool:
        if best is None or not math.isfinite(best):
            return math.isfinite(score)
        return score > best if self.cfg.monitor_mode == "max" else score < best

    # ------------------------------------------------------------ metrics log
    def _metrics_path(self) -> Path | None:
        """RUN/metrics.jsonl; None without a run dir, and on every process but the first."""
        if self.run_dir is None or jax.process_index() != 0:
            return None
        return self.run_dir / metrics_log.FILE_NAME

    def _start_log(self, restored_step: int | None):
        """From scratch: an empty log; resumed: only the records up to the restored
        checkpoint, so a resumed log has no repeats and no gaps."""
        path = self._metrics_path()
        if path is not None:
            if restored_step is None:
                metrics_log.reset(path)
            else:
                metrics_log.keep_until(path, restored_step)

    def _log(self, record: dict):
        path = self._metrics_path()
        if path is not None:
            metrics_log.append(path, record)

    # ------------------------------------------------------------ fit
    def fit(self, train_arrays: dict[str, np.ndarray],
            evaluate: Callable[["Trainer"], dict[str, float]],
            on_eval: Callable[[int, dict[str, float]], None] | None = None) -> dict:
        """Train until max_steps or early stopping; then load the best checkpoint.

        `evaluate(trainer)` returns validation metrics; `cfg.monitor` picks the one that
        drives early stopping and the best checkpoint. Resumes from `run_dir/checkpoints`.
        `on_eval(step, metrics)` sees each evaluation once it is logged and checkpointed (e.g.
        a sweep's pruner); an exception it raises ends the fit, resumable from that checkpoint.
        """
        cfg = self.cfg
        n_train = _num_rows(train_arrays)
        if n_train == 0:
            raise ValueError("no training examples")
        ckpt = None
        meta = {"step": 0, "best_score": None, "best_step": None, "bad_evals": 0, "finished": False}
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if jax.process_index() == 0:  # a killed save's half-written step, before orbax lists steps
                remove_partial_saves(self.run_dir / "checkpoints")
            distributed.barrier("partial saves removed")  # before any process lists the steps
            ckpt = Checkpoints(self.run_dir / "checkpoints", cfg.keep_checkpoints, cfg.monitor_mode)
            found = ckpt.resume(nnx.to_pure_dict(self.state))  # sets aside what is unusable
            resumed = found is not None
            if resumed:
                state, meta = found
                self._load_pure(state)
                verb = "already finished" if meta["finished"] else "resuming"
                message = f"Resumed from checkpoint at step {meta['step']} in {self.run_dir} ({verb})"
                log.info(message)
            self._start_log(meta["step"] if resumed else None)

        step = meta["step"]
        progress = tqdm(total=cfg.max_steps, initial=step, disable=not cfg.progress or meta["finished"]
                        or not distributed.is_primary(),
                        desc="train", dynamic_ncols=True, leave=False)
        running, best_in_memory = [], None
        while not meta["finished"]:
            loss, aux = self.step(self._put_rows(train_arrays, *self.train_index(n_train, step)), step)
            step += 1
            running.append(loss)
            progress.update(1)
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                losses = np.asarray(jax.device_get(running))
                if not np.all(np.isfinite(losses)):
                    raise TrainingError(f"non-finite training loss at step {step}; lower "
                                             f"train.learning_rate or check the data")
                record = {"step": step, "train/loss": float(losses.mean()),
                          "lr": float(self.schedule(step))}
                record.update({f"train/{k}": float(v) for k, v in jax.device_get(aux).items()})
                self._log(record)
                progress.set_postfix(loss=f"{record['train/loss']:.4f}",
                                     best=meta["best_score"] and f"{meta['best_score']:.4f}")
                running = []
            if step % cfg.eval_every == 0 or step == cfg.max_steps:
                metrics = evaluate(self)
                if cfg.monitor not in metrics:
                    raise ConfigError(f"config: train.monitor={cfg.monitor!r} is not among the validation "
                                   f"metrics {sorted(metrics)}")
                score = float(metrics[cfg.monitor])
                is_best = self._better(score, meta["best_score"])
                if is_best:
                    meta.update(best_score=score, best_step=step, bad_evals=0)
                else:
                    meta["bad_evals"] += 1
                meta["step"] = step
                meta["finished"] = step >= cfg.max_steps or meta["bad_evals"] >= cfg.patience
                self._log({"step": step, **{k: float(v) for k, v in metrics.items()}})
                if ckpt is not None:
                    ckpt.save(step, nnx.to_pure_dict(jax.device_get(self.state)), dict(meta), score,
                              is_best)
                elif is_best:
                    best_in_memory = jax.device_get(self.state)
                if on_eval is not None:
                    try:
                        on_eval(step, metrics)
                    except BaseException:
                        if ckpt is not None:  # the run stops here: finish its last checkpoint
                            ckpt.wait()
                            ckpt.close()
                        raise
        progress.close()

        if ckpt is not None:
            ckpt.wait()
            if ckpt.latest_step("best") is not None:
                best_state, _ = ckpt.restore(nnx.to_pure_dict(self.state), which="best")
                self._load_pure(best_state)
            ckpt.close()
        elif best_in_memory is not None:
            self.state = jax.device_put(best_in_memory, self.replicated)
        return meta
