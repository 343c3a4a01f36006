"""`Sweep`: many models of one architecture trained at once, in one compiled program.

>>> sweep = Sweep([LinearRegression(3, rngs=nnx.Rngs(13))] * 6, optax.sgd,
...               {"learning_rate": [0.01, 0.05, 0.1] * 2}, "mse")
>>> history = sweep.fit((x, y), steps=15000, weights=fold_masks)   # weights [6, n]: 2 folds x 3 rates
>>> sweep.evaluate((x, y), weights=1 - fold_masks)[0]["mae"]

Every model carries its own parameters, optimizer state, seed, numeric
hyperparameters (`optax.inject_hyperparams`: learning rate, momentum, …) and
L2 weight on a leading model axis; the data is stored once, and a model's
rows (a fold) are its example weights. Each model ends where `Trainer.fit`
takes the same settings alone (on its own rows), to float rounding:

- full-batch least squares (MSE, an affine model) runs from the
  sufficient statistics (`statistics`), computed once per distinct weight
  vector: a fold × learning-rate grid is `folds` one-pass statistics and
  then O(d²) steps for every model;
- other full-batch losses: every model reads the one copy of the rows, with
  its weights;
- mini-batches: the models' batches are the ones `Trainer.fit` would draw
  on their rows with their seed (`batching`), gathered by row index from the
  one copy (shared outright when every model has the same rows and seed).

A model whose loss or parameters stop being finite is marked diverged at
that logged step and keeps its last finite parameters; the others go on.
On several devices the model axis is split over a Mesh (each device trains
its share of the models on a full copy of the data; no all-reduce a step).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from flaxzoo.trainers import losses as losses_lib
from flaxzoo.trainers import metrics as metrics_lib
from flaxzoo.trainers import solvers as solvers_lib
from flaxzoo.trainers import statistics as statistics_lib
from flaxzoo.trainers import sweep_batches
from flaxzoo.trainers.exact import fit_sweep
from flaxzoo.trainers.history import SweepHistory, _as_numpy, check_fit_arguments
from flaxzoo.trainers.loop import drive, make_fused_loop
from flaxzoo.trainers.placement import make_placement, to_host
from flaxzoo.trainers.steps import TrainState, make_apply_fn, make_statistics_step, make_train_step
from flaxzoo.trainers.sweep_optimizers import _initialiser, _keys, _per_model, _transform, rolled_back
from flaxzoo.trainers.weights import checked_weights
from flaxzoo.zoo.models import StackedModels, stack_models

# Steps of the statistics path a loop iteration (160 brain-age models, 15000 steps: 61 ms → 55 ms).
STATISTICS_UNROLL = 8
# Evaluation computes K models' outputs for this many rows at a time.
EVAL_ROWS = 65536


class Sweep:
  """Trains `len(models)` models of one architecture at once.

  Args:
    models: the initial models (same class and shapes), one per setting; or `flaxzoo.zoo.create_models`'s
      `StackedModels` (one init program for all, the set-up O(1) in Python per model).
    optimizer: a function of the numeric hyperparameters returning an optax
      transform, e.g. `optax.sgd` or `lambda learning_rate: optax.sgd(learning_rate, momentum=0.9)`.
    hyperparams: `{argument: [value per model]}` for `optimizer`.
    loss: `"mse"`, `"logistic"`, `"softmax"` or a per-example callable.
    l2: one value, or one per model (see `Trainer`).
    seeds: one seed, or one per model: the batch order of mini-batch training.
    parallel, devices: `"none"` (one device) or `"mesh"` (the models split
      over `devices` devices); `"auto"`: mesh on more than one device.
    task, label_scale, label_unit: as `Trainer` (metrics).
    statistics: `"auto"`, `"on"` or `"off"`, as `Trainer`.
    solver: `"optax"` (steps of `optimizer`), or an exact solver of
      `flaxzoo.trainers.solvers` (`"auto"`: `choose`'s): the K models are K solves
      in one program over the one copy of the rows (Huber and the pinball loss: one
      after another), each with its weights and penalties; `fit`'s `steps` caps the
      iterations. `tol` as `Trainer`'s.
    l1: one value, or one per model: `l1 |W|₁` beside the L2 (a regularisation
      path x folds, fitted by the exact solvers: coordinate descent, proximal
      Newton; exact zeros).
  """

  def __init__(self, models: Sequence[nnx.Module] | StackedModels,
               optimizer: Callable[..., optax.GradientTransformation] = optax.sgd,
               hyperparams: Mapping[str, Sequence[float]] | None = None, loss: str | Callable = "mse", *,
               l2: float | Sequence[float] = 0.0, seeds: int | Sequence[int] = 0, parallel: str = "auto",
               devices: int | None = None, task: str | None = None, label_scale: float | None = None,
               label_unit: str | None = None, statistics: str = "auto", solver: str = "optax", tol: float = 1e-6,
               l1: float | Sequence[float] = 0.0):
    self.solver = solvers_lib.check_solver(solver)
    if optimizer is None:  # as Trainer: the exact solvers fit; sgd only keeps the optax state well-formed
      if self.solver == "optax":
        raise ValueError("optimizer is None: give an optax optimizer function (optax.sgd, optax.adam) for"
                         " solver='optax', or an exact solver (solver='auto')")
      optimizer = optax.sgd
    elif not callable(optimizer):
      raise TypeError(f"optimizer must be a function of the hyperparameters returning an optax transform"
                      f" (optax.sgd), got {type(optimizer).__name__}")
    self.tol = float(tol)
    stacked = models if isinstance(models, StackedModels) else stack_models(models)
    self.num_models = count = stacked.count
    graphdef, rest = stacked.graphdef, stacked.rest
    self.graphdef, self._rest = graphdef, rest
    self._apply_fn = make_apply_fn(graphdef, rest)
    self.loss_fn = losses_lib.get_loss(loss)
    self.task = task or metrics_lib.TASK_OF_LOSS.get(loss if isinstance(loss, str) else "", "regression")
    self.label_scale, self.label_unit = label_scale, label_unit
    self.statistics = statistics_lib.check_mode(statistics)
    self._loss_spec = loss
    self._affine = statistics_lib.is_affine(stacked.model(0))
    hyperparams = dict(hyperparams or {"learning_rate": 0.01})
    self.hyperparams = {k: _per_model(v, count, k).astype(np.float32) for k, v in hyperparams.items()}
    self._l2_64 = _per_model(l2, count, "l2").astype(np.float64)  # the exact solvers' (float64) penalties
    self.l2 = self._l2_64.astype(np.float32)
    if not np.all(np.isfinite(self.l2) & (self.l2 >= 0)):
      raise ValueError(f"l2 must be numbers >= 0, got {self.l2.tolist()}")
    self._l1_64 = _per_model(l1, count, "l1").astype(np.float64)
    if not np.all(np.isfinite(self._l1_64) & (self._l1_64 >= 0)):
      raise ValueError(f"l1 must be numbers >= 0, got {self._l1_64.tolist()}")
    self.seeds = _per_model(seeds, count, "seeds").astype(np.int64)
    first = tuple((k, float(v[0])) for k, v in self.hyperparams.items())
    self.tx = _transform(optimizer, first)
    if parallel not in ("auto", "none", "mesh"):
      raise ValueError(f"a sweep runs with parallel 'none' or 'mesh' (the models split over the devices),"
                       f" not {parallel!r}")
    self.placement = make_placement(parallel, devices)
    # The model axis is padded to a whole number of models a device (copies of the last model).
    shards = self.placement.num_shards
    self._padded = -(-count // shards) * shards
    pad = lambda v: np.concatenate([v, np.repeat(v[-1:], self._padded - count, axis=0)]) if len(v) < self._padded \
        else v
    params = jax.tree.map(lambda v: pad(np.asarray(v)), stacked.params)
    hyper = {k: pad(v) for k, v in self.hyperparams.items()}

    opt_state = _initialiser(optimizer, first)(params, hyper)
    self.state = TrainState(params=params, opt_state=to_host(opt_state), step=np.zeros((), np.int32),
                            rng=pad(np.asarray(_keys(self.seeds))))
    self._l2 = pad(self.l2)
    # -1: finite so far; else the first logged step where the model was not.
    self.diverged_step = np.full(count, -1, np.int64)
    self._loops: dict[Any, Callable] = {}
    self._eval: dict[Any, Callable] = {}

  # Placement of the model axis.

  def _model_sharding(self):
    if self.placement.mode == "none":
      return self.placement.devices[0]
    return NamedSharding(self.placement.mesh, P(self.placement.mesh.axis_names[0]))

  def _replicated(self):
    if self.placement.mode == "none":
      return self.placement.devices[0]
    return NamedSharding(self.placement.mesh, P())

  def _put_models(self, tree):
    return jax.device_put(tree, self._model_sharding())

  def _put_shared(self, tree):
    return jax.device_put(tree, self._replicated())

  def _put_state(self, state: TrainState) -> TrainState:
    return TrainState(params=self._put_models(state.params), opt_state=self._put_models(state.opt_state),
                      step=self._put_shared(state.step), rng=self._put_models(state.rng))

  def saved_state(self) -> TrainState:
    """The state to checkpoint: host arrays of the `K` models (without the padding of the model axis to the
    device count), so that it restores on any number of devices (`restore_state`)."""
    state = to_host(self.state)
    trim = lambda v: v[:self.num_models]
    return state.replace(params=jax.tree.map(trim, state.params), opt_state=jax.tree.map(trim, state.opt_state),
                         rng=trim(state.rng))

  def restore_state(self, state: TrainState) -> None:
    """Takes a `saved_state` (of this sweep's `K` models) back, padded for this sweep's devices."""
    state = to_host(state)
    extra = self._padded - self.num_models
    pad = lambda v: np.concatenate([v, np.repeat(v[-1:], extra, axis=0)]) if extra else v
    self.state = state.replace(params=jax.tree.map(pad, state.params), opt_state=jax.tree.map(pad, state.opt_state),
                               rng=pad(state.rng))

  @property
  def diverged(self) -> np.ndarray:
    """`[K]` bool: the models that stopped being finite."""
    return self.diverged_step >= 0

  @property
  def step(self) -> int:
    return int(np.asarray(to_host(self.state.step)))

  def params(self, k: int):
    """Model `k`'s parameters (NumPy, an `nnx.State`)."""
    return jax.tree.map(lambda v: np.asarray(v)[k], to_host(self.state.params))

  def model(self, k: int) -> nnx.Module:
    """A new NNX model holding model `k`'s current parameters."""
    return nnx.merge(self.graphdef, self.params(k), self._rest)

  # Training.

  def _weights(self, weights, n: int, dtype=np.float32) -> np.ndarray:
    """Per-model example weights `[K_padded, n]`, checked."""
    if weights is None:
      weights = np.ones((self.num_models, n), dtype)
    weights = np.asarray(weights, dtype)
    if weights.ndim == 1:
      weights = np.broadcast_to(weights, (self.num_models, n))
    if weights.shape != (self.num_models, n):
      raise ValueError(f"weights must be [models, examples] = [{self.num_models}, {n}], got {weights.shape}")
    checked_weights(weights)
    if self._padded > self.num_models:
      weights = np.concatenate([weights, np.repeat(weights[-1:], self._padded - self.num_models, axis=0)])
    return weights

  def _model_step(self, data_axis, weight_axis=0):
    """`step(state, batch) -> (state, loss [K])` for every model at once: `Trainer`'s own step
    (`steps.make_train_step`) under `vmap`, each model with its L2; the batch's rows (`data_axis`) and
    weights (`weight_axis`) per model (0) or shared (None)."""
    apply_fn, loss_fn, tx = self._apply_fn, self.loss_fn, self.tx
    axes = {"x": data_axis, "y": data_axis, "weight": weight_axis, "scale": weight_axis}
    return self._vmapped(lambda l2: make_train_step(apply_fn, loss_fn, tx, l2=l2), axes)

  def _statistics_step(self):
    """The same for full-batch least squares: `steps.make_statistics_step` under `vmap`."""
    affine_fn = statistics_lib.make_affine_fn(self.graphdef, self._rest)
    return self._vmapped(lambda l2: make_statistics_step(affine_fn, self.tx, l2=l2), 0)

  def _vmapped(self, make_step, batch_axes):
    """`make_step(l2)`'s step for every model: its parameters, optimizer state and L2 on the model axis
    (no L2 at all when every model's is 0, as `Trainer` with `l2=0`)."""
    l2 = jnp.asarray(self._l2) if np.any(self.l2) else None

    def one(params, opt_state, model_l2, batch):
      state = TrainState(params=params, opt_state=opt_state, step=jnp.zeros((), jnp.int32), rng=None)
      state, loss = make_step(0.0 if model_l2 is None else model_l2)(state, batch)
      return state.params, state.opt_state, loss

    stepped = jax.vmap(one, in_axes=(0, 0, None if l2 is None else 0, batch_axes))

    def step(state: TrainState, batch):
      params, opt_state, loss = stepped(state.params, state.opt_state, l2, batch)
      return state.replace(params=params, opt_state=opt_state, step=state.step + 1), loss

    return step

  @staticmethod
  def _finite(state: TrainState, loss):
    """Each model's loss, NaN where its parameters are not all finite (one look on the host)."""
    leaves = [jnp.all(jnp.isfinite(leaf.reshape(leaf.shape[0], -1)), axis=1) for leaf in jax.tree.leaves(state.params)]
    return jnp.where(jnp.all(jnp.stack(leaves), axis=0), loss, jnp.nan)

  def _step_key(self):
    return tuple(sorted(self.hyperparams)), bool(np.any(self.l2))

  def fit(self, train, *, steps: int, weights=None, batch_size: int | None = None, shuffle: str = "blocks",
          log_every: int = 1000, checkpoint_every: int | None = None,
          on_checkpoint: Callable[[Sweep], None] | None = None, should_stop: Callable[[], bool] | None = None,
          on_progress: Callable[[int, SweepHistory], None] | None = None) -> SweepHistory:
    """Takes `steps` more steps of every model.

    Args:
      train: `(x [n, d], y [n])` or `{"x", "y"}`, stored once for all models.
      weights: `[K, n]` example weights per model (a fold: 1 on its training
        rows, 0 elsewhere), or `[n]` for all; default all ones.
      batch_size, shuffle, log_every: as `Trainer.fit`.
      checkpoint_every, on_checkpoint, should_stop, on_progress: as
        `Trainer.fit` (`on_checkpoint(self)` at multiples of
        `checkpoint_every` and at the end).
    """
    if shuffle == "rows":
      raise ValueError("a sweep shuffles 'blocks' or 'none'; 'rows' (a fresh permutation per model and epoch) is"
                       " not supported yet")
    check_fit_arguments(steps, log_every, batch_size, shuffle)
    arrays = _as_numpy(train, "train")
    solver = self.chosen_solver(len(arrays["x"]), batch_size)
    if solver != "optax":  # float64 weights: an exact solve answers float64 data at float64 precision
      weights = self._weights(weights, len(arrays["x"]), np.float64)
      return fit_sweep(self, arrays, weights, solver, steps, on_checkpoint, on_progress)
    weights = self._weights(weights, len(arrays["x"]))
    prepared = sweep_batches.prepare(self, arrays, weights, batch_size, shuffle)
    path, key, make_step, order_fn, take, num_blocks, blocks = prepared
    if key not in self._loops:
      run = make_fused_loop(make_step(), order_fn, num_blocks, take, finite_fn=self._finite,
                            unroll=STATISTICS_UNROLL if path == "statistics" else 1,
                            fixed_order=path == "statistics")
      self._loops[key] = jax.jit(run, static_argnums=(2, 3))
    run = self._loops[key]
    history = SweepHistory(path=path)
    start = time.perf_counter()

    def absorb(before, state, logged_steps, logged_losses, current):
      logged_losses = np.asarray(to_host(logged_losses))[:, :self.num_models]  # waits for the call
      state = rolled_back(self, state, before, np.asarray(to_host(logged_steps)), logged_losses)
      history.steps += np.asarray(to_host(logged_steps)).tolist()
      history.losses += logged_losses.tolist()
      return state

    def at_stop(state, _) -> None:
      self.state = to_host(state)
      if on_checkpoint:
        on_checkpoint(self)

    state = drive(self._put_state(self.state), lambda state, *sizes: run(state, blocks, *sizes), self.step,
                  self.step + steps, log_every, [checkpoint_every if on_checkpoint else None], absorb, at_stop,
                  history, should_stop, on_progress)
    self.state = to_host(state)
    history.train_seconds = time.perf_counter() - start
    return history

  def chosen_solver(self, num_examples: int, batch_size: int | None = None) -> str:
    """`optax` or the exact solver that `fit` runs (ValueError where a named one cannot apply)."""
    lasso = bool(np.any(self._l1_64 > 0))
    if self.solver == "optax" and lasso:
      raise ValueError("a Sweep's L1 penalty is fitted by the exact solvers: solver='auto' (not optax steps)")
    if self.solver == "optax":
      return "optax"
    num_params = 0
    if self._affine:
      kernel, _ = self._affine_maps()
      num_params = (kernel.shape[1] + 1) * kernel.shape[2]
    full_batch = batch_size is None or batch_size >= num_examples
    chosen = solvers_lib.choose(self.solver, self._loss_spec, self._affine, full_batch, num_params, l1=lasso,
                                l2=bool(np.any(self._l2_64 > 0)))
    if chosen == "optax" and lasso:
      raise ValueError("a Sweep's L1 penalty needs an exact solver: a zoo linear model, a named loss, full batch")
    return chosen

  def _affine_maps(self):
    """`(kernel [K_padded, d, k], bias [K_padded, k])` of the current parameters (an affine model)."""
    if not self._affine:
      raise ValueError("the exact solvers need an affine model (the zoo's linear models)")
    model = nnx.merge(self.graphdef, to_host(self.state.params), self._rest)  # arrays with a model axis
    return tuple(np.asarray(v, np.float64) for v in model.affine_map())

  # Evaluation.

  def evaluate(self, data, weights=None) -> list[dict[str, Any]]:
    """Each model's metrics on `data` weighted by its row of `weights [K, n]` (default all rows), as
    `Trainer.evaluate` (regression: mse, rmse, mae, r2; classification: accuracy, log loss, … and
    roc_auc for two classes)."""
    arrays = _as_numpy(data, "eval")
    n = len(arrays["x"])
    weights = self._weights(weights, n)
    sums_fn = metrics_lib.sums_of(self.task, losses_lib.mean_of(self._loss_spec))
    apply_fn = self._apply_fn
    if "sums" not in self._eval:
      def sums(params, x, y, weights, shift):
        return jax.vmap(lambda p, w, s: sums_fn(apply_fn(p, x), y, w, s))(params, weights, shift)

      self._eval["sums"] = jax.jit(sums)
    if self.task == "regression":  # each model's label mean: R2's sums stay well conditioned
      y64 = arrays["y"].astype(np.float64).reshape(n, -1).mean(axis=1)
      shift = ((weights @ y64) / weights.sum(axis=1)).astype(np.float32)
    else:
      shift = np.zeros(self._padded, np.float32)
    params = self._put_models(self.state.params)
    total = None
    for start in range(0, n, EVAL_ROWS):
      part = slice(start, start + EVAL_ROWS)
      sums = self._eval["sums"](params, self._put_shared(arrays["x"][part]), self._put_shared(arrays["y"][part]),
                                self._put_models(weights[:, part]), self._put_models(shift))
      sums = to_host(sums)
      total = sums if total is None else jax.tree.map(np.add, total, sums)
    results = []
    for k in range(self.num_models):
      model_sums = jax.tree.map(lambda v, k=k: v[k], total)
      if self.task == "regression":
        results.append(metrics_lib.finalize_regression(model_sums, self.label_scale, self.label_unit))
        continue
      metrics = metrics_lib.finalize_classification(model_sums)
      if len(metrics["confusion"]) == 2:
        keep = weights[k] > 0
        scores = np.asarray(apply_fn(self.params(k), jnp.asarray(arrays["x"][keep])))[:, -1]
        metrics["roc_auc"] = metrics_lib.roc_auc(scores, arrays["y"][keep])
      results.append(metrics)
    return results

  def predict(self, x) -> np.ndarray:
    """Every model's outputs `[K, n, k]`."""
    if "outputs" not in self._eval:
      self._eval["outputs"] = jax.jit(jax.vmap(self._apply_fn, in_axes=(0, None)))
    return np.asarray(self._eval["outputs"](self.state.params, jnp.asarray(x)))[:self.num_models]
