"""Sufficient statistics of full-batch least squares: every step after one pass over the data is O(d²).

With the MSE loss, an affine model `f(x) = x W + b` and the whole (weighted)
training set in every step, the loss depends on the data only through its
weighted moments:

  mean_w |f(x) - y|² = tr(Wᵀ Sxx W) - 2 tr(Wᵀ Sxy) + tr(Syy) + |mx W + b - my|²   (per output, averaged)

with `mx`, `my` the weighted means and `Sxx`, `Sxy`, `Syy` the weighted
(co)variances. One pass computes them (`moments`, the memory floor of the
fit); then any optax optimizer runs on `statistics_loss` for as many steps
as it likes without reading the data again. Over several devices the
moments are summed once, not once a step.

Accuracy: the moments are taken about a shift close to the means (the mean
of the first rows), so that the covariances are not small differences of
large float32 sums; `W` and `b` come from the model's own `affine_map()`
(for the linear models: the kernel and the bias as they are), so the
gradient reaches the model's parameters exactly, whatever their layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from flaxzoo.trainers.batching import arrange, make_layout
from flaxzoo.trainers.history import _as_numpy
from flaxzoo.trainers.moments import centred_loss, covariances
from flaxzoo.trainers.standardisation import SHIFT_ROWS

# Rows a block of the one pass: its `[rows, d + k + 1]` block stays in cache.
BLOCK_ROWS = 8192

Statistics = dict[str, jax.Array]  # {"mean_x" [d], "mean_y" [k], "sxx" [d, d], "sxy" [d, k], "syy" [k]}


def is_affine(model: nnx.Module) -> bool:
  """Whether the model's outputs are affine in its inputs: it says so with `affine_map() -> (W [d, k], b [k])`."""
  return callable(getattr(model, "affine_map", None))


def make_affine_fn(graphdef, rest):
  """`affine_fn(params) -> (W [d, k], b [k])` of a split affine model (its `affine_map`)."""
  return lambda params: nnx.merge(graphdef, params, rest).affine_map()


def shift_of(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """`(shift_x [d], shift_y [k])`: the mean of the first `SHIFT_ROWS` rows, float32 (host)."""
  head_y = np.asarray(y[:SHIFT_ROWS], np.float64).reshape(min(len(y), SHIFT_ROWS), -1)
  return (np.mean(np.asarray(x[:SHIFT_ROWS], np.float64), axis=0).astype(np.float32),
          np.mean(head_y, axis=0).astype(np.float32))


def moments(x, y, weight, shift_x, shift_y, chunk: int = BLOCK_ROWS) -> jax.Array:
  """The weighted Gram matrix `Zᵀ diag(weight) Z` of `Z = [x - shift_x, y - shift_y, 1]`, `[d+k+1, d+k+1]`.

  One pass over `x [n, d]`, `y [n] or [n, k]`, `weight [n]` in chunks of
  `chunk` rows. Sums of several parts (devices, processes) add up.
  """
  n = x.shape[0]
  y = y.reshape(n, -1).astype(jnp.float32)

  def part(xs, ys, ws):
    z = jnp.concatenate([xs - shift_x[None, :], ys - shift_y[None, :], jnp.ones((xs.shape[0], 1), jnp.float32)],
                        axis=1)
    return jnp.dot((z * ws[:, None]).T, z, precision=jax.lax.Precision.HIGHEST)

  full = n // chunk
  rest = n - full * chunk
  size = x.shape[1] + y.shape[1] + 1
  total = jnp.zeros((size, size), jnp.float32)
  if rest:
    total = part(x[full * chunk:], y[full * chunk:], weight[full * chunk:])
  if full:
    def add(i, acc):
      take = lambda v: jax.lax.dynamic_slice_in_dim(v, i * chunk, chunk)
      return acc + part(take(x), take(y), take(weight))

    total = jax.lax.fori_loop(0, full, add, total)
  return total


def statistics_of(gram: jax.Array, shift_x, shift_y) -> Statistics:
  """Means and (co)variances from `moments`' Gram matrix (its last row and column are the sums)."""
  d = shift_x.shape[0]
  count = gram[-1, -1]
  sums, sxx, sxy, syy = covariances(gram / count, d)  # sums: the means of x - shift_x, then of y - shift_y
  return {"mean_x": shift_x + sums[:d], "mean_y": shift_y + sums[d:], "sxx": sxx, "sxy": sxy, "syy": syy,
          "count": count}


@jax.jit
def weighted_statistics(x, y, weight, shift_x, shift_y) -> Statistics:
  """`statistics_of(moments(...))` on one device: what `Trainer` and `Sweep` both call (the same
  compiled program: the same numbers for the same rows and weights)."""
  return statistics_of(moments(x, y, weight, shift_x, shift_y), shift_x, shift_y)


def placed_statistics(placement, data, compiled=None):
  """`(statistics, compiled)`: the sufficient statistics of `data` (`(x, y)` or `{"x", "y", "weight"}`) on the
  `placement`'s devices, and the compiled program of several devices (`compiled`: an earlier one, reused).

  On one device, arrays already there (`jax.Array`) are read where they are: no copy of the data.
  """
  device = placement.devices[0]
  given = dict(data) if isinstance(data, Mapping) else dict(zip(("x", "y"), data, strict=True))
  if placement.mode == "none" and all(isinstance(v, jax.Array) and v.devices() == {device} for v in given.values()):
    x, y = given["x"], given["y"]
    if x.ndim != 2 or x.shape[0] == 0 or any(v.shape[0] != x.shape[0] for v in given.values()):
      raise ValueError(f"train: x must be [examples, features] with as many rows in each array, got"
                       f" {', '.join(f'{k} {tuple(v.shape)}' for k, v in given.items())}")
    shift = shift_of(np.asarray(x[:SHIFT_ROWS]), np.asarray(y[:SHIFT_ROWS]))
    weight = given.get("weight")
    weight = jnp.ones(x.shape[0], jnp.float32) if weight is None else weight.astype(jnp.float32)
    return weighted_statistics(x, y, weight, *jax.device_put(shift, device)), compiled
  arrays = _as_numpy(data, "train")
  shift = shift_of(arrays["x"], arrays["y"])
  if placement.mode == "none":
    weight = arrays.get("weight", np.ones(len(arrays["x"]), np.float32)).astype(np.float32)
    return weighted_statistics(*jax.device_put((arrays["x"], arrays["y"], weight, *shift), device)), compiled
  layout = make_layout(len(arrays["x"]), None, placement.num_shards)
  blocks = placement.put_blocks(arrange(arrays, layout))
  shift = placement.put_state(shift)
  if compiled is None:

    def compute(shift, blocks):
      x, y, weight = blocks["x"][0], blocks["y"][0], blocks["weight"][0]
      if placement.mode == "mesh":  # each shard's moments, summed once over the shards
        shards = placement.num_shards
        split = placement.constrain_shards(
            [v.reshape((shards, v.shape[0] // shards) + v.shape[1:]) for v in (x, y, weight)])
        gram = jnp.sum(jax.vmap(lambda a, b, c: moments(a, b, c, *shift))(*split), axis=0)
      else:
        gram = jax.lax.psum(moments(x, y, weight, *shift), placement.axis_name)
      return statistics_of(gram, *shift)

    compiled = placement.compile(compute)
  return compiled(shift, blocks), compiled


def statistics_loss(affine_fn, params, stats: Statistics) -> jax.Array:
  """The weighted mean squared error (averaged over outputs) of the affine model, from `stats`."""
  w, b = affine_fn(params)
  offset = stats["mean_x"] @ w + b - stats["mean_y"]  # [k]: the error of the prediction at the mean
  return jnp.mean(centred_loss(w, stats["sxx"], stats["sxy"], stats["syy"]) + offset**2)


def applies(loss: Any, affine: bool, full_batch: bool) -> bool:
  """Whether the statistics are exact for this loss and batch: MSE (by name, or `losses.squared_errors`),
  an affine model (`is_affine`), full batch."""
  from flaxzoo.trainers.losses import squared_errors

  mse = (isinstance(loss, str) and loss == "mse") or loss is squared_errors
  return mse and full_batch and affine


def chosen(mode: str, loss: Any, affine: bool, full_batch: bool) -> bool:
  """Whether a fit runs from the statistics under `mode` (`auto`: where `applies`; `off`: never; `on`:
  always, a ValueError where they do not apply)."""
  exact = applies(loss, affine, full_batch)
  if mode == "on" and not exact:
    raise ValueError("statistics='on' needs the MSE loss, an affine model (linear_regression) and a full batch")
  return exact and mode != "off"


STATISTICS_MODES = ("auto", "on", "off")


def check_mode(mode: str) -> str:
  if mode not in STATISTICS_MODES:
    raise ValueError(f"statistics must be one of {', '.join(STATISTICS_MODES)}, got {mode!r}")
  return mode

