"""`Trainer`: fits an NNX model with any optax optimizer, steps fused on device.

>>> trainer = Trainer(LinearRegression(1, rngs=nnx.Rngs(0)), optax.sgd(0.05), "mse",
...                   parallel="auto")  # all local devices: jit over a Mesh
>>> history = trainer.fit((x, y), steps=15000, eval_data={"test": (x_test, y_test)})
>>> trainer.evaluate((x_test, y_test))["r2"]
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

from flaxzoo.trainers import losses as losses_lib
from flaxzoo.trainers import metrics as metrics_lib
from flaxzoo.trainers import solvers as solvers_lib
from flaxzoo.trainers import statistics as statistics_lib
from flaxzoo.trainers.batching import (
  arrange,
  eval_blocks,
  make_epoch_order_fn,
  make_layout,
  make_take_fn,
  take_block,
)
from flaxzoo.trainers.exact import fit_trainer
from flaxzoo.trainers.history import Data, DivergedError, History, _as_numpy, check_fit_arguments
from flaxzoo.trainers.loop import drive, make_fused_loop
from flaxzoo.trainers.placement import Placement, make_placement, to_host
from flaxzoo.trainers.steps import (
  STREAM_MIN_CHUNKS,
  TrainState,
  make_apply_fn,
  make_eval_step,
  make_statistics_step,
  make_train_step,
)

# Batches of at least STREAM_MIN_CHUNKS * ROW_CHUNK rows a device go through the
# step in chunks of ROW_CHUNK rows (padded to a whole number of chunks).
ROW_CHUNK = 4096

class Trainer:
  """Trains an NNX model with a pure compiled step; many steps per compiled call.

  Args:
    model: an `nnx.Module` mapping `[batch, d]` to `[batch, k]`.
    optimizer: any `optax.GradientTransformation`; None: an exact solver (`solver="auto"`).
    loss: `"mse"`, `"logistic"`, `"softmax"`, a log-link GLM's half deviance
      (`"poisson"`, `"gamma"`, `"tweedie:P"`; the model's outputs are log means,
      as the zoo's `glm`), `"huber:EPSILON"`, `"quantile:Q"` (`losses.get_loss`),
      or a per-example callable `(outputs [b, k], labels [b]) -> [b]`.
    seed: seeds the batch order of mini-batch training.
    parallel: `"auto"`, `"none"` (jit, one device), `"pmap"` or `"mesh"`
      (data-parallel over `devices`); see `flaxzoo.trainers.placement`.
    devices: how many local devices; default all.
    task: `"regression"` or `"classification"` (metrics); inferred from a
      named loss.
    label_scale, label_unit: report regression errors also in these units
      (brain age: 100, "years" → `mae_years`, `rmse_years`).
    l2: minimise `mean loss + l2 * 0.5 * sum(kernel ** 2)` (biases are not
      penalised): scikit-learn's `C = 1 / (n * l2)` for n training examples.
    l1: adds `l1 * sum(|kernel|)` (`flaxzoo.trainers.penalties`): the exact
      solvers fit it (coordinate descent, proximal Newton); the optax path
      needs an optimizer wrapped by `penalties.proximal`, whose step makes
      the zeros exact.
    row_chunk: a batch of at least 16 such chunks a device is streamed
      through the step in chunks of this many rows (None: never).
    statistics: `"auto"` trains full-batch MSE of an affine model (the
      linear models) from the data's sufficient statistics — one pass over
      the data, then O(d²) a step, exact (`flaxzoo.trainers.statistics`);
      `"off"` always runs the per-example path; `"on"` requires the
      statistics (ValueError where they do not apply).
    solver: `"optax"` takes `fit`'s steps with `optimizer`; `"normal_equation"`
      (MSE), `"newton"` or `"lbfgs"` (logistic, softmax) fit a zoo linear model
      exactly on the full batch (`flaxzoo.trainers.solvers`; `fit`'s `steps` is
      then the iteration cap); `"auto"`: an exact solver when no `optimizer`
      is given and one applies, else optax.
    tol: the iterative exact solvers stop when the largest entry of the mean
      objective's gradient is below it.

  The same data and seed give the same parameters in every mode and on any
  number of devices, to float rounding.
  """

  def __init__(
      self,
      model: nnx.Module,
      optimizer: optax.GradientTransformation | None = None,
      loss: str | Callable = "mse",
      *,
      seed: int = 0,
      parallel: str = "auto",
      devices: int | None = None,
      task: str | None = None,
      label_scale: float | None = None,
      label_unit: str | None = None,
      l2: float = 0.0,
      row_chunk: int | None = ROW_CHUNK,
      statistics: str = "auto",
      solver: str = "auto",
      tol: float = 1e-6,
      l1: float = 0.0,
  ):
    self.statistics = statistics_lib.check_mode(statistics)
    self.solver = solvers_lib.check_solver(solver)
    self._optimizer_given = optimizer is not None
    self._proximal = getattr(optimizer, "proximal_learning_rate", None) is not None
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < float("inf"):
      raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    self.tol = float(tol)
    self._affine = statistics_lib.is_affine(model)
    self._loss_spec = loss
    self.graphdef, params, self._rest = nnx.split(model, nnx.Param, ...)
    # Extra args (value, value_fn) reach line-search optimizers; the rest ignore them.
    # Without an optimizer the exact solvers fit (`solver`); sgd only keeps the optax state well-formed.
    self.tx = optax.with_extra_args_support(optimizer if optimizer is not None else optax.sgd(0.01))
    if isinstance(l2, bool) or not isinstance(l2, (int, float)) or not l2 >= 0:
      raise ValueError(f"l2 must be a number >= 0, got {l2!r}")
    self.l2 = float(l2)
    if isinstance(l1, bool) or not isinstance(l1, (int, float)) or not 0 <= l1 < float("inf"):
      raise ValueError(f"l1 must be a finite number >= 0, got {l1!r}")
    self.l1 = float(l1)
    self.loss_fn = losses_lib.get_loss(loss)
    self.task = task or metrics_lib.TASK_OF_LOSS.get(loss if isinstance(loss, str) else "", "regression")
    self.label_scale, self.label_unit = label_scale, label_unit
    self.seed = seed
    self.placement: Placement = make_placement(parallel, devices)
    self.state = TrainState(
        params=params,
        opt_state=self.tx.init(params),
        step=jnp.zeros((), jnp.int32),
        rng=jax.random.PRNGKey(seed),
    )
    self._apply_fn = make_apply_fn(self.graphdef, self._rest)
    axis_name = self.placement.axis_name
    # A full batch of many rows is streamed through the step in chunks (see
    # steps.make_train_step); not under a Mesh, where the rows are sharded.
    self.row_chunk = None if self.placement.mode == "mesh" else row_chunk
    shards, constrain = None, None
    if self.placement.mode == "mesh":
      shards, constrain = self.placement.num_shards, self.placement.constrain_shards
    self._train_step = make_train_step(self._apply_fn, self.loss_fn, self.tx, axis_name, self.l2, self.row_chunk,
                                       shards, constrain, self.l1)
    sums = metrics_lib.sums_of(self.task, losses_lib.mean_of(self._loss_spec))  # a log link: of exp(outputs)
    eval_step = make_eval_step(self._apply_fn, sums, axis_name)
    def evaluate_blocks(params, blocks, shift):  # metric sums added up over the blocks
      add = lambda k, total: jax.tree.map(jnp.add, total, eval_step(params, take_block(blocks, k), shift))
      return jax.lax.fori_loop(1, jax.tree.leaves(blocks)[0].shape[0], add,
                               eval_step(params, take_block(blocks, 0), shift))

    self._evaluate = self.placement.compile(evaluate_blocks, num_broadcast=1)
    self._eval_blocks: dict[tuple, tuple[Any, Any]] = {}
    self._predict = jax.jit(self._apply_fn)
    self._loops: dict[tuple[int, str], Callable] = {}
    self._statistics_step = (make_statistics_step(statistics_lib.make_affine_fn(self.graphdef, self._rest), self.tx,
                                                  self.l2) if self._affine else None)
    self._moments = None
    self._steps: dict[tuple[int, str], Callable] = {}

  @property
  def step(self) -> int:
    return int(to_host(self.state.step))

  @property
  def params(self):
    """The current parameters as NumPy arrays (an `nnx.State`)."""
    return to_host(self.state.params)

  @property
  def model(self) -> nnx.Module:
    """A new NNX model holding the current parameters."""
    return nnx.merge(self.graphdef, to_host(self.state.params), self._rest)

  def fused_loop(self, num_blocks: int, shuffle: str = "blocks", layout=None):
    """The compiled `run(state, blocks, num_logs, steps_per_log)` for device blocks (see `loop`).

    `shuffle="rows"` needs the data's `layout` (its batches gather rows by index).
    """
    key = (num_blocks, shuffle, layout if shuffle == "rows" else None)
    if key not in self._loops:
      run = make_fused_loop(self._train_step, make_epoch_order_fn(num_blocks, shuffle, layout), num_blocks,
                            make_take_fn(shuffle, layout))
      self._loops[key] = self.placement.compile(run, num_static=2)
    return self._loops[key]

  def chosen_solver(self, num_examples: int, batch_size: int | None = None) -> str:
    """The solver `fit` runs with this batch size: `optax`, `normal_equation`, `newton` or `lbfgs`."""
    full_batch = batch_size is None or batch_size >= num_examples
    solver = "optax" if self.solver == "auto" and self._optimizer_given else self.solver
    num_params = 0
    if self._affine:
      kernel, _ = statistics_lib.make_affine_fn(self.graphdef, self._rest)(self.state.params)
      num_params = (kernel.shape[0] + 1) * kernel.shape[1]
    chosen = solvers_lib.choose(solver, self._loss_spec, self._affine, full_batch, num_params, l1=bool(self.l1),
                                l2=bool(self.l2))
    if self.l1 and chosen == "optax" and not self._proximal:
      raise ValueError("Trainer: l1 on the optax path needs an optimizer wrapped by"
                       " flaxzoo.trainers.penalties.proximal(optimizer, learning_rate), whose step makes the zeros"
                       " exact; or no optimizer (an exact solver)")
    if chosen == "optax" and not self._optimizer_given:
      raise ValueError("Trainer: no optimizer was given and no exact solver applies (they need the loss mse, logistic"
                       " or softmax, a zoo linear model and a full batch): pass an optax optimizer")
    return chosen

  def uses_statistics(self, num_examples: int, batch_size: int | None = None) -> bool:
    """Whether `fit` with this batch size trains from the sufficient statistics (see `statistics`)."""
    full_batch = batch_size is None or batch_size >= num_examples
    if self.l1 and self.statistics == "on":
      raise ValueError("statistics='on' fits L2 only; an l1 penalty needs the per-example path or an exact solver")
    return not self.l1 and statistics_lib.chosen(self.statistics, self._loss_spec, self._affine, full_batch)

  def statistics_of(self, data: Data):
    """The sufficient statistics of `data` (weighted by its `weight`), on this trainer's devices.

    On one device, arrays already there (`jax.Array`) are read where they are: no copy of the data.
    """
    stats, self._moments = statistics_lib.placed_statistics(self.placement, data, self._moments)
    return stats

  def layout_blocks(self, data: Data, batch_size: int | None = None, shuffle: str = "blocks", name="train"):
    """Host data → device blocks for this trainer's devices (see `batching`)."""
    arrays = _as_numpy(data, name)
    layout = make_layout(len(arrays["x"]), batch_size, self.placement.num_shards)
    if self.row_chunk and layout.block_size >= STREAM_MIN_CHUNKS * self.row_chunk * layout.num_shards:
      layout = make_layout(len(arrays["x"]), batch_size, self.placement.num_shards, self.row_chunk)
    # The one-time row permutation of block shuffling, seeded; none for full batch.
    order = None
    if shuffle == "blocks" and layout.num_blocks > 1:
      order = np.random.default_rng(self.seed).permutation(layout.num_examples)
    return layout, self.placement.put_blocks(arrange(arrays, layout, order))

  def fit(
      self,
      train: Data,
      *,
      steps: int,
      batch_size: int | None = None,
      shuffle: str = "blocks",
      eval_data: Mapping[str, Data] | None = None,
      log_every: int = 1000,
      checkpoint_every: int | None = None,
      on_checkpoint: Callable[[Trainer], None] | None = None,
      should_stop: Callable[[], bool] | None = None,
      hooks: Sequence[tuple[int, Callable[[Trainer, History], None]]] = (),
      on_progress: Callable[[int, History], None] | None = None,
      final_metrics: bool = True,
  ) -> History:
    """Takes `steps` more optimizer steps on `train`.

    Args:
      train: `(x [n, d], y [n])` or a dict with `x`, `y` and optionally
        `weight [n]`.
      steps: number of steps, > 0.
      batch_size: None (or >= n) for full-batch gradient descent; else
        mini-batches (the last one of an epoch may be smaller).
      shuffle: `"blocks"` (rows permuted once, batch order reshuffled every
        epoch; see `flaxzoo.trainers.batching`), `"rows"` (a fresh permutation
        of the rows every epoch) or `"none"` (data order).
      eval_data: `{name: data}` evaluated with the final parameters.
      log_every: record the loss every this many steps (blocks of
        `log_every` steps run inside one compiled call).
      checkpoint_every: call `on_checkpoint(self)` whenever the step count
        reaches a multiple of this, and at the end.
      on_checkpoint: e.g. saves `self.state`; the fused loop stops there.
      should_stop: polled between compiled calls (about every 1000 steps);
        True ends `fit` early with `self.state` at the step reached and
        `history.stopped` set (e.g. on SIGTERM, to save and exit).
      hooks: `(every, fn)` pairs: `fn(self, history)` runs whenever the step
        count reaches a multiple of `every`, and at the end, before
        `on_checkpoint` (e.g. evaluate and log metrics).
      on_progress: `fn(step, history)` after every compiled call (progress bars).
      final_metrics: evaluate `train` and `eval_data` at the end (`history.metrics`).

    Returns:
      A `History` of logged losses and final metrics (also of `train`).

    Raises:
      DivergedError: the loss or the parameters stopped being finite (checked
        once per block of `log_every` steps, on device); `self.state` is then
        the last finite state, and no hook or `on_checkpoint` saw the others.
    """
    check_fit_arguments(steps, log_every, batch_size, shuffle)
    if shuffle == "rows" and self.placement.mode == "pmap":
      # Each pmap device holds its own rows: a global row permutation would
      # need every device's data. jit over a Mesh gathers across devices.
      raise ValueError("shuffle 'rows' needs parallel 'none' or 'mesh', not 'pmap'")
    num_examples = len(train["x"] if isinstance(train, Mapping) else train[0])
    solver = self.chosen_solver(num_examples, batch_size)
    if solver != "optax":
      return fit_trainer(self, train, solver, steps, eval_data, hooks, on_checkpoint, on_progress, final_metrics)
    if isinstance(train, Mapping) and "offset" in train:
      raise ValueError("an offset is fitted by the exact solvers (solver='auto', full batch), not optax's steps")
    run, blocks = self._optax_program(train, num_examples, batch_size, shuffle)
    start = time.perf_counter()
    history = self._drive(run, blocks, steps, log_every, checkpoint_every, on_checkpoint, should_stop, hooks,
                          on_progress)
    jax.block_until_ready(self.state)
    history.train_seconds = time.perf_counter() - start
    if history.stopped or not final_metrics:
      return history
    history.metrics["train"] = self.evaluate(train)
    for name, split in (eval_data or {}).items():
      history.metrics[name] = self.evaluate(split)
    return history

  def _drive(self, run, blocks, steps, log_every, checkpoint_every, on_checkpoint, should_stop, hooks,
             on_progress) -> History:
    """`steps` optax steps by `run` over `blocks` (`loop.drive`): a divergence raises, hooks and saves run where
    due."""
    history = History()
    placement = self.placement
    first, end = self.step, self.step + steps
    # The loop stops wherever a hook or a save is due, and at the end.
    periodic = [(every, fn) for every, fn in hooks]
    if on_checkpoint:
      periodic.append((checkpoint_every, lambda trainer, _: on_checkpoint(trainer)))

    def absorb(before, state, logged_steps, logged_losses, current):
      # Reading the losses waits for the call: never many calls in flight.
      logged_steps = to_host(placement.unreplicate(logged_steps)).tolist()
      logged_losses = to_host(placement.unreplicate(logged_losses))
      if not np.all(np.isfinite(logged_losses)):  # NaN also marks non-finite parameters (see `loop`)
        self.state = placement.unreplicate(before)
        raise DivergedError(logged_steps[int(np.argmin(np.isfinite(logged_losses)))], current)
      history.steps += logged_steps
      history.losses += logged_losses.tolist()
      return state

    def at_stop(state, step: int) -> None:  # the hooks and saves due there
      self.state = placement.unreplicate(state)
      for every, fn in periodic:
        if step == end or (every and step % every == 0):
          fn(self, history)

    state = drive(placement.put_state(self.state), lambda state, *sizes: run(state, blocks, *sizes), first, end,
                  log_every, [every for every, _ in periodic], absorb, at_stop, history, should_stop, on_progress)
    self.state = placement.unreplicate(state)
    return history

  def _optax_program(self, train: Data, num_examples: int, batch_size: int | None, shuffle: str):
    """`(run, blocks)`: the fused loop of optax steps and what it reads (the statistics, or the data's blocks)."""
    if self.uses_statistics(num_examples, batch_size):
      # Full-batch least squares: one pass for the statistics, then steps that never read the data.
      blocks = self.statistics_of(train)
      if "statistics" not in self._loops:
        run = make_fused_loop(self._statistics_step, lambda epoch, rng: jnp.zeros((1,), jnp.int32), 1,
                              lambda stats, order, position: stats)
        self._loops["statistics"] = self.placement.compile(run, num_static=2)
      run = self._loops["statistics"]
    else:
      layout, blocks = self.layout_blocks(train, batch_size, shuffle)
      run = self.fused_loop(layout.num_blocks, shuffle, layout)
    return run, blocks

  def evaluate(self, data: Data) -> dict[str, Any]:
    """Metrics of the current parameters on `data`.

    Regression: mse, rmse, mae, r2 (and errors in `label_unit`).
    Classification: accuracy, balanced_accuracy, log_loss, confusion, and for
    two classes roc_auc (exact, from the scores on the host).
    """
    arrays = _as_numpy(data, "eval")
    blocks = eval_blocks(self.placement, self._eval_blocks, data, arrays)
    params = self.placement.put_state(self.state.params)
    shift = np.float32(np.mean(arrays["y"])) if self.task == "regression" else np.float32(0)
    sums = to_host(self.placement.unreplicate(self._evaluate(params, blocks, shift)))
    if self.task == "regression":
      return metrics_lib.finalize_regression(sums, self.label_scale, self.label_unit)
    metrics = metrics_lib.finalize_classification(sums)
    if len(metrics["confusion"]) == 2:
      weights = arrays.get("weight")
      keep = slice(None) if weights is None else weights > 0
      scores = self.predict(arrays["x"][keep])[:, -1]
      metrics["roc_auc"] = metrics_lib.roc_auc(scores, arrays["y"][keep])
    return metrics

  def predict(self, x, offset=None) -> np.ndarray:
    """Model outputs `[n, k]` for inputs `x [n, d]` (on one device), plus `offset [n]` where given."""
    outputs = np.asarray(self._predict(to_host(self.state.params), jnp.asarray(x)))
    return outputs if offset is None else outputs + np.asarray(offset, outputs.dtype)[:, None]

  @property
  def link(self) -> str:
    """`"log"` where the loss takes the outputs as log means (`losses.LOG_LINK`), else `"identity"`."""
    named = isinstance(self._loss_spec, str)
    return "log" if named and losses_lib.split_loss(self._loss_spec)[0] in losses_lib.LOG_LINK else "identity"

  def predict_means(self, x, offset=None) -> np.ndarray:
    """The predicted means `[n, k]`: `predict` through the loss's inverse link (`exp` for a log link)."""
    from flaxzoo.zoo.links import inverse_link

    return inverse_link(self.link, self.predict(x, offset))
