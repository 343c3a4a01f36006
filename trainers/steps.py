"""Pure training and evaluation steps over an explicit state pytree.

The NNX model is split once into a static `graphdef` and arrays; the steps
merge them back inside `jax.jit`, which costs nothing at run time (calling
`nnx.jit` instead costs ~400 µs a call, more than a whole brain-age step).
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax
from flax import nnx

Batch = dict[str, jax.Array]  # {"x": [b, d], "y": [b] or [b, k], "weight": [b] (optional)}


@flax.struct.dataclass
class TrainState:
  """Everything a training step reads and writes.

  Attributes:
    params: the model's `nnx.Param` state.
    opt_state: the optax optimizer state.
    step: number of steps taken, int32 scalar.
    rng: PRNG key of the run; batch order is a function of (rng, epoch, step).
  """

  params: Any
  opt_state: Any
  step: jax.Array
  rng: jax.Array


def make_apply_fn(graphdef, rest) -> Callable[[Any, jax.Array], jax.Array]:
  """`apply_fn(params, x [b, d]) -> outputs [b, k]` for a split NNX model."""

  def apply_fn(params, x):
    return nnx.merge(graphdef, params, rest)(x)

  return apply_fn


def make_train_step(apply_fn, loss_fn, tx: optax.GradientTransformation):
  """`train_step(state, batch) -> (state, loss)`: one gradient step, pure."""

  def train_step(state: TrainState, batch: Batch):
    def objective(params):
      return loss_fn(apply_fn(params, batch["x"]), batch["y"], batch.get("weight"))

    loss, grads = jax.value_and_grad(objective)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return state.replace(params=params, opt_state=opt_state, step=state.step + 1), loss

  return train_step


def make_eval_step(apply_fn, sums_fn):
  """`eval_step(params, batch) -> {sum name: scalar}` (see `metrics`)."""

  def eval_step(params, batch: Batch):
    return sums_fn(apply_fn(params, batch["x"]), batch["y"], batch.get("weight"))

  return eval_step


def make_batch_fn(num_examples: int, batch_size: int | None):
  """`batch_fn(data, step, rng) -> batch`: the batch of a given step.

  Full batch when `batch_size` is None or covers the data. Otherwise each
  epoch visits a fresh permutation, `permutation(fold_in(rng, epoch))`, in
  `ceil(n / batch_size)` batches; the last is padded with weight-0 examples,
  so every example counts once per epoch. Being a function of (rng, step),
  the order does not depend on how the steps were chunked or resumed.
  """
  if batch_size is None or batch_size >= num_examples:
    return lambda data, step, rng: data

  batches_per_epoch = -(-num_examples // batch_size)
  padding = batches_per_epoch * batch_size - num_examples

  def batch_fn(data, step, rng):
    epoch, position = jnp.divmod(step, batches_per_epoch)
    order = jax.random.permutation(jax.random.fold_in(rng, epoch), num_examples)
    order = jnp.concatenate([order, jnp.zeros(padding, order.dtype)])
    weights = jnp.concatenate([jnp.ones(num_examples), jnp.zeros(padding)])
    start = position * batch_size
    indices = jax.lax.dynamic_slice(order, (start,), (batch_size,))
    batch = {key: jnp.take(value, indices, axis=0) for key, value in data.items()}
    weight = jax.lax.dynamic_slice(weights, (start,), (batch_size,))
    if "weight" in data:
      weight = weight * batch["weight"]
    batch["weight"] = weight.astype(data["x"].dtype)
    return batch

  return batch_fn
