"""Initialisations that reproduce published runs exactly."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from flaxzoo.zoo.registry import Registry

if TYPE_CHECKING:
  from flax import nnx


def reference_init(model: nnx.Module, seed: int = 13) -> nnx.Module:
  """Sets a single-output linear model to the brain-age reference initialisation.

  `k1, k2 = split(PRNGKey(seed))`, `wk, bk = split(k2)`, `w = normal(wk, (d,))`,
  `b = normal(bk, (1,))`, all with the legacy (non-partitionable) threefry
  that the reference used; `k1` is the data split's key and is unused here.
  With seed 13 and d = 1: w = -0.47798702, b = 1.2634865.

  Args:
    model: a module with `linear.kernel` `[d, 1]` and `linear.bias` `[1]`.
    seed: the run's seed.

  Returns:
    The same model, updated in place.
  """
  import jax
  import jax.numpy as jnp
  import numpy as np

  kernel, bias = model.linear.kernel, model.linear.bias
  if len(kernel.shape) != 2 or kernel.shape[1] != 1:
    raise ValueError(
        f"the reference init needs one output, got a kernel of shape {kernel.shape}"
    )
  d = kernel.shape[0]
  with jax.threefry_partitionable(False):
    # One compiled program per d, the seed its argument: not one per random op (0.36 s -> 0.24 s of a
    # 2-second run), nor one per model of a sweep; the same bits.
    w, b = _reference_draw(d)(np.uint32(seed))
  kernel.set_value(jnp.reshape(w, (d, 1)).astype(kernel.dtype))
  bias.set_value(b.astype(bias.dtype))
  return model


@functools.cache
def _reference_draw(d: int):
  """The jitted `seed -> (w [d], b [1])` of `reference_init`."""
  import jax

  def draw(seed):
    _, k2 = jax.random.split(jax.random.PRNGKey(seed))
    wk, bk = jax.random.split(k2)
    return jax.random.normal(wk, (d,)), jax.random.normal(bk, (1,))

  return jax.jit(draw)


# `fn(model, seed)`, applied after construction; "default" keeps the module's own.
INITIALIZERS: Registry = Registry("init")
INITIALIZERS.register("default", None)
INITIALIZERS.register("reference", reference_init)
