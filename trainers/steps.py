"""Pure training and evaluation steps over an explicit state pytree.

The NNX model is split once into a static `graphdef` and arrays; the steps
merge them back inside the compiled function, which costs nothing at run time
(calling `nnx.jit` instead costs ~400 µs a call, more than a whole brain-age
step).

Losses are reduced as `sum(scale * loss)` with `scale = weight / count`
precomputed per batch (`batching.arrange`), `count` being the real examples
of the whole batch: across devices under `pmap` (`axis_name` set) the sums
are `psum`-ed, never a mean of per-device means, so padding and uneven
shards change nothing, and a step needs one all-reduce.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.flatten_util import ravel_pytree

from flaxzoo.trainers.penalties import l1_penalty, l2_penalty

# A batch of at least this many `row_chunk`s is streamed through the step in chunks.
STREAM_MIN_CHUNKS = 16

# {"x": [b, d], "y": [b] or [b, k], "weight": [b] (0 = padding), "scale": [b] (weight / batch count)}
Batch = dict[str, jax.Array]


@flax.struct.dataclass
class TrainState:
  """Everything a training step reads and writes.

  Attributes:
    params: the model's `nnx.Param` state.
    opt_state: the optax optimizer state.
    step: number of steps taken, int32 scalar.
    rng: PRNG key of the run; batch order is a function of (rng, step).
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


def _psum(tree, axis_name):
  """`psum` of a pytree as ONE all-reduce of one flat buffer.

  Every array of a pytree given to `psum` is its own all-reduce operand, and on the CPU each operand
  is its own rendezvous of all the devices: a step's loss, kernel and bias gradients took three
  (an epoch on 8 devices: 124 ms; the same numbers in one buffer: 58 ms).
  """
  if axis_name is None:
    return tree
  flat, unflatten = ravel_pytree(tree)
  return unflatten(jax.lax.psum(flat, axis_name))


def is_penalised(l2) -> bool:
  """Whether a step computes the L2 penalty: any `l2` but the Python number 0 (a traced value may be
  non-zero)."""
  return not (isinstance(l2, (int, float)) and l2 == 0)


def _value_and_grad(data_loss, params, batch: Batch, row_chunk: int | None, shards: int | None, constrain):
  """`data_loss(params, batch)` and its gradient: streamed through in chunks of `row_chunk` rows (a batch of
  at least `STREAM_MIN_CHUNKS` of them), as the mesh's shards' sums in one flat buffer, or at once."""
  rows = batch["x"].shape[0]
  if row_chunk and rows >= STREAM_MIN_CHUNKS * row_chunk and rows % row_chunk == 0:
    chunks = jax.tree.map(lambda v: v.reshape((rows // row_chunk, row_chunk) + v.shape[1:]), batch)

    def add_chunk(carry, chunk):
      value, grad = jax.value_and_grad(lambda p: data_loss(p, chunk))(params)
      return jax.tree.map(jnp.add, carry, (value, grad)), None

    zeros = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
    return jax.lax.scan(add_chunk, zeros, chunks)[0]
  if shards and rows % shards == 0:
    # jit over a Mesh: each shard's loss and gradient as one flat vector, summed over the shards'
    # axis: one all-reduce of one buffer (XLA's own partitioning reduces each array on its own).
    split = constrain(jax.tree.map(lambda v: v.reshape((shards, rows // shards) + v.shape[1:]), batch))

    def shard_sums(part):
      return ravel_pytree(jax.value_and_grad(lambda p: data_loss(p, part))(params))[0]

    unflatten = ravel_pytree((jnp.zeros((), jnp.float32), params))[1]
    return unflatten(jnp.sum(jax.vmap(shard_sums)(split), axis=0))
  return jax.value_and_grad(lambda p: data_loss(p, batch))(params)


def make_train_step(apply_fn, per_example_loss_fn, tx: optax.GradientTransformation, axis_name=None, l2: float = 0.0,
                    row_chunk: int | None = None, shards: int | None = None, constrain=None, l1: float = 0.0):
  """`train_step(state, batch) -> (state, loss)`: one gradient step, pure.

  Args:
    apply_fn: `(params, x) -> outputs`.
    per_example_loss_fn: `(outputs, labels) -> [batch]`.
    tx: the optimizer. It also gets optax's extra arguments `value`, `grad`
      and `value_fn` (the whole batch's objective, summed over devices), so
      that line-search optimizers such as `optax.lbfgs` work; others ignore them.
    axis_name: the `pmap` axis to sum gradients over, or None (one device,
      or `jit` over a mesh, where the sums are global already).
    l2: weight of `losses.l2_penalty`, added once after the sum over devices;
      a Python number (0: no penalty computed) or a traced value (`Sweep`: one
      per model, inside `vmap`).
    l1: weight of `penalties.l1_penalty`, in the reported objective; the
      optimizer gets it as the extra argument `l1` (`penalties.proximal`
      takes L1's proximal step with it; other optimizers ignore it).
    shards, constrain: under `jit` over a Mesh, the batch's row shards and a
      function that pins axis 0 of a pytree to the mesh's data axis: the
      gradient is then summed over shards in one flat buffer (one all-reduce).
    row_chunk: a batch of at least `STREAM_MIN_CHUNKS` times this many rows
      (a whole multiple of it) is streamed through the loss in chunks of
      `row_chunk` rows, gradients summed in a `lax.scan`: each chunk is read
      once for the forward and the backward pass while it is in cache,
      instead of the whole batch twice. Smaller batches are not: a rolled
      loop of a few chunks costs more than it saves (an 8192-row batch took
      1.9x as long as in 2 chunks of 4096).
  """

  penalised = is_penalised(l2)

  def penalty(params):  # the smooth part, differentiated
    return l2 * l2_penalty(params) if penalised else jnp.zeros((), jnp.float32)

  lasso = {} if isinstance(l1, (int, float)) and l1 == 0 else {"l1": l1}

  def data_loss(params, part):  # the weighted sum over `part`'s rows
    return jnp.sum(part["scale"] * per_example_loss_fn(apply_fn(params, part["x"]), part["y"]))

  def train_step(state: TrainState, batch: Batch):
    def objective(params):  # the same value on every device
      return _psum(data_loss(params, batch), axis_name) + penalty(params)

    loss, grads = _value_and_grad(data_loss, state.params, batch, row_chunk, shards, constrain)
    loss, grads = _psum((loss, grads), axis_name)
    if penalised:
      extra, extra_grads = jax.value_and_grad(penalty)(state.params)
      loss, grads = loss + extra, jax.tree.map(jnp.add, grads, extra_grads)
    updates, opt_state = tx.update(
        grads, state.opt_state, state.params, value=loss, grad=grads, value_fn=objective, **lasso
    )
    params = optax.apply_updates(state.params, updates)
    if lasso:  # the reported objective includes the L1 term (at the step's starting point, as the loss)
      loss = loss + l1 * l1_penalty(state.params)
    return state.replace(params=params, opt_state=opt_state, step=state.step + 1), loss

  return train_step


def make_eval_step(apply_fn, sums_fn, axis_name=None):
  """`eval_step(params, batch, label_shift) -> {sum name: scalar}` (see `metrics`), summed over devices."""

  def eval_step(params, batch: Batch, label_shift):
    outputs = apply_fn(params, batch["x"])
    if "offset" in batch:  # (a run's `--offset`: added to the linear predictor)
      outputs = outputs + batch["offset"][:, None].astype(outputs.dtype)
    sums = sums_fn(outputs, batch["y"], batch["weight"], label_shift)
    return _psum(sums, axis_name)

  return eval_step


def make_statistics_step(affine_fn, tx: optax.GradientTransformation, l2: float = 0.0):
  """`step(state, stats) -> (state, loss)`: one gradient step of full-batch least squares from its
  sufficient statistics (`flaxzoo.trainers.statistics`): O(d²), the data is not read. `affine_fn(params)
  -> (W, b)` (`statistics.make_affine_fn`); `l2` as `make_train_step`'s."""
  from flaxzoo.trainers.statistics import statistics_loss

  penalised = is_penalised(l2)

  def step(state: TrainState, stats):
    def objective(params):
      value = statistics_loss(affine_fn, params, stats)
      return value + l2 * l2_penalty(params) if penalised else value

    loss, grads = jax.value_and_grad(objective)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params, value=loss, grad=grads, value_fn=objective)
    params = optax.apply_updates(state.params, updates)
    return state.replace(params=params, opt_state=opt_state, step=state.step + 1), loss

  return step
