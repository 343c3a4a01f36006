"""`Trainer`: fits an NNX model with any optax optimizer, steps fused on device.

>>> trainer = Trainer(LinearRegression(1, rngs=nnx.Rngs(0)), optax.sgd(0.05), "mse")
>>> history = trainer.fit((x, y), steps=15000, eval_data={"test": (x_test, y_test)})
>>> trainer.evaluate((x_test, y_test))["r2"]
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from flaxzoo.trainers import losses as losses_lib
from flaxzoo.trainers import metrics as metrics_lib
from flaxzoo.trainers.loop import make_fused_loop
from flaxzoo.trainers.steps import TrainState, make_apply_fn, make_batch_fn, make_eval_step, make_train_step

Data = tuple[Any, Any] | Mapping[str, Any]  # (x [n, d], y [n]) or {"x": ..., "y": ..., "weight": ...}


@dataclasses.dataclass
class History:
  """What `fit` logged: loss every `log_every` steps and final metrics."""

  steps: list[int] = dataclasses.field(default_factory=list)
  losses: list[float] = dataclasses.field(default_factory=list)
  metrics: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
  train_seconds: float = 0.0


def _as_arrays(data: Data, name: str) -> dict[str, jax.Array]:
  if isinstance(data, Mapping):
    arrays = dict(data)
  else:
    x, y = data
    arrays = {"x": x, "y": y}
  x = np.asarray(arrays["x"])
  if x.ndim != 2:
    raise ValueError(f"{name}: x must be [examples, features], got shape {x.shape}")
  for key, value in arrays.items():
    if len(value) != len(x):
      raise ValueError(f"{name}: {key} has {len(value)} rows but x has {len(x)}")
  if len(x) == 0:
    raise ValueError(f"{name}: no examples")
  return {key: jnp.asarray(value) for key, value in arrays.items()}


class Trainer:
  """Trains an NNX model with a pure, jitted step; many steps per compiled call.

  Args:
    model: an `nnx.Module` mapping `[batch, d]` to `[batch, k]`.
    optimizer: any `optax.GradientTransformation`; default `optax.sgd(0.01)`.
    loss: `"mse"`, `"logistic"`, `"softmax"` or a callable
      `(outputs, labels, weights) -> scalar`.
    seed: seeds the batch order of mini-batch training.
    task: `"regression"` or `"classification"` (metrics); inferred from a
      named loss.
    label_scale, label_unit: report regression errors also in these units
      (brain age: 100, "years" → `mae_years`, `rmse_years`).
  """

  def __init__(
      self,
      model: nnx.Module,
      optimizer: optax.GradientTransformation | None = None,
      loss: str | Callable = "mse",
      *,
      seed: int = 0,
      task: str | None = None,
      label_scale: float | None = None,
      label_unit: str | None = None,
  ):
    self.graphdef, params, self._rest = nnx.split(model, nnx.Param, ...)
    self.tx = optimizer if optimizer is not None else optax.sgd(0.01)
    self.loss_fn = losses_lib.get_loss(loss)
    self.task = task or metrics_lib.TASK_OF_LOSS.get(loss if isinstance(loss, str) else "", "regression")
    self.label_scale, self.label_unit = label_scale, label_unit
    self.state = TrainState(
        params=params,
        opt_state=self.tx.init(params),
        step=jnp.zeros((), jnp.int32),
        rng=jax.random.key(seed),
    )
    self._apply_fn = make_apply_fn(self.graphdef, self._rest)
    self._train_step = make_train_step(self._apply_fn, self.loss_fn, self.tx)
    self._eval_step = jax.jit(make_eval_step(self._apply_fn, metrics_lib.SUMS[self.task]))
    self._predict = jax.jit(self._apply_fn)
    self._loops: dict[tuple[int, int | None], Callable] = {}
    self._steps: dict[tuple[int, int | None], Callable] = {}

  @property
  def step(self) -> int:
    return int(self.state.step)

  @property
  def model(self) -> nnx.Module:
    """A new NNX model holding the current parameters."""
    return nnx.merge(self.graphdef, self.state.params, self._rest)

  def _fused_loop(self, num_examples: int, batch_size: int | None):
    key = (num_examples, batch_size)
    if key not in self._loops:
      self._loops[key] = make_fused_loop(self._train_step, make_batch_fn(num_examples, batch_size))
    return self._loops[key]

  def _single_step(self, num_examples: int, batch_size: int | None):
    key = (num_examples, batch_size)
    if key not in self._steps:
      batch_fn = make_batch_fn(num_examples, batch_size)
      self._steps[key] = jax.jit(
          lambda state, data: self._train_step(state, batch_fn(data, state.step, state.rng))
      )
    return self._steps[key]

  def fit(
      self,
      train: Data,
      *,
      steps: int,
      batch_size: int | None = None,
      eval_data: Mapping[str, Data] | None = None,
      log_every: int = 1000,
      fused: bool = True,
  ) -> History:
    """Takes `steps` more optimizer steps on `train`.

    Args:
      train: `(x [n, d], y [n])` or a dict with `x`, `y` and optionally
        `weight [n]`.
      steps: number of steps, > 0.
      batch_size: None (or >= n) for full-batch gradient descent; else
        mini-batches of a seeded per-epoch shuffle.
      eval_data: `{name: data}` evaluated with the final parameters.
      log_every: record the loss every this many steps.
      fused: run `log_every`-step blocks inside one compiled call (default);
        False runs a Python loop over a jitted single step (slow; for
        checking the fused loop).

    Returns:
      A `History` of logged losses and final metrics (also of `train`).
    """
    if not isinstance(steps, (int, np.integer)) or steps <= 0:
      raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not isinstance(log_every, (int, np.integer)) or log_every <= 0:
      raise ValueError(f"log_every must be a positive integer, got {log_every!r}")
    if batch_size is not None and batch_size <= 0:
      raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    data = _as_arrays(train, "train")
    num_examples = len(data["x"])
    history = History()
    start = time.perf_counter()
    if fused:
      run = self._fused_loop(num_examples, batch_size)
      blocks = [(steps // log_every, log_every), (1, steps % log_every)]
      for num_logs, steps_per_log in blocks:
        if num_logs and steps_per_log:
          self.state, logged_steps, logged_losses = run(self.state, data, num_logs, steps_per_log)
          history.steps += np.asarray(logged_steps).tolist()
          history.losses += np.asarray(logged_losses).tolist()
    else:
      step_fn = self._single_step(num_examples, batch_size)
      for i in range(1, steps + 1):
        self.state, loss = step_fn(self.state, data)
        if i % log_every == 0 or i == steps:
          history.steps.append(self.step)
          history.losses.append(float(loss))
    jax.block_until_ready(self.state)
    history.train_seconds = time.perf_counter() - start
    history.metrics["train"] = self.evaluate(data)
    for name, split in (eval_data or {}).items():
      history.metrics[name] = self.evaluate(split)
    return history

  def evaluate(self, data: Data) -> dict[str, float]:
    """Metrics of the current parameters on `data` (regression: mse, rmse, mae, r2)."""
    sums = self._eval_step(self.state.params, _as_arrays(data, "eval"))
    if self.task == "regression":
      return metrics_lib.finalize_regression(sums, self.label_scale, self.label_unit)
    return metrics_lib.finalize_classification(sums)

  def predict(self, x) -> np.ndarray:
    """Model outputs `[n, k]` for inputs `x [n, d]`."""
    return np.asarray(self._predict(self.state.params, jnp.asarray(x)))
