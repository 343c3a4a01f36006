"""Penalties on the weights (never the biases): L2, L1 and the elastic net, and L1's proximal step for optax.

The trainer minimises `mean loss + l2 / 2 |W|² + l1 |W|₁` over the `kernel` leaves `W`. L2 is smooth: its
gradient joins the loss's. L1 is not: the exact solvers handle it (coordinate descent for least squares,
proximal Newton for the rest, `flaxzoo.trainers.solvers`), and on the optax path `proximal` follows the
optimizer's update with L1's proximal map, soft-thresholding, so that a weight that should be 0 is 0.0:

>>> tx = proximal(optax.sgd(0.1), learning_rate=0.1)             # ISTA: proximal gradient descent
>>> Trainer(model, tx, "logistic", l1=1e-3).fit(train, steps=5000)

Plain proximal gradient (ISTA), not FISTA: FISTA takes its gradient at an extrapolated point, which is not
sparse, and the trainer's parameters are where the gradient is taken; and an optimizer's momentum does not
see the proximal step (sgd with momentum 0.9 wandered at 1.6x the optimum on breast cancer where plain sgd
converged). For speed and exact answers on the zoo's linear models, use the exact solvers (no optimizer).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


def _is_kernel(path) -> bool:
  return "kernel" in jax.tree_util.keystr(path)


def l2_penalty(params) -> jax.Array:
  """`0.5 * sum(kernel ** 2)` over every `kernel` leaf of `params`; biases are not penalised."""
  leaves = [leaf for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0] if _is_kernel(path)]
  if not leaves:
    return jnp.zeros((), jnp.float32)
  return 0.5 * sum(jnp.sum(jnp.square(leaf)) for leaf in leaves)


def l1_penalty(params) -> jax.Array:
  """`sum(|kernel|)` over every `kernel` leaf of `params`; biases are not penalised."""
  leaves = [leaf for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0] if _is_kernel(path)]
  if not leaves:
    return jnp.zeros((), jnp.float32)
  return sum(jnp.sum(jnp.abs(leaf)) for leaf in leaves)


def soft_threshold(values: jax.Array, threshold) -> jax.Array:
  """L1's proximal map: `sign(v) max(|v| - threshold, 0)` (exact zeros)."""
  return jnp.sign(values) * jnp.maximum(jnp.abs(values) - threshold, 0)


class ProximalState(NamedTuple):
  inner: optax.OptState


def proximal(optimizer: optax.GradientTransformation, learning_rate: float) -> optax.GradientTransformationExtraArgs:
  """`optimizer`'s update, then L1's proximal step on the kernels: `W <- soft_threshold(W + update, learning_rate
  * l1)`, where `l1` comes as an extra argument of `update` (`Trainer(l1=...)` passes it; absent or 0: the
  optimizer unchanged). `learning_rate` is the optimizer's step size (sgd's: ISTA, exactly)."""
  inner = optax.with_extra_args_support(optimizer)

  def init(params):
    return ProximalState(inner.init(params))

  def update(updates, state, params=None, *, l1=0.0, **extra):
    if params is None:
      raise ValueError("proximal() needs the parameters in update()")
    updates, inner_state = inner.update(updates, state.inner, params, **extra)
    threshold = learning_rate * l1

    def step(path, update, param):
      if not _is_kernel(path):
        return update
      return soft_threshold(param + update, threshold) - param

    updates = jax.tree_util.tree_map_with_path(step, updates, params)
    return updates, ProximalState(inner_state)

  transformation = optax.GradientTransformationExtraArgs(init, update)
  transformation.proximal_learning_rate = learning_rate  # (Trainer checks that an L1 has its proximal step)
  return transformation
