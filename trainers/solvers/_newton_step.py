"""Newton's step: the penalty's curvature, the damped Cholesky solve, and softmax's projection."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from flaxzoo.trainers.solvers._sizes import _low_precision
from flaxzoo.trainers.solvers._staging import Staged


def _penalty_diagonal(data: Staged, l2) -> np.ndarray:
  """`[K, d + 1, k]`: the penalty's Hessian in the standardised features, `l2 / scale²` (0 on the intercept)."""
  with np.errstate(over="ignore"):  # l2 / scale², 0 where l2 is 0 and at most 1e300 (as `_per_scale2`)
    per_row = np.concatenate([np.where(l2[:, None] > 0, np.minimum(l2[:, None] / data.scale / data.scale, 1e300),
                                       0.0), np.zeros((len(l2), 1))], axis=1)
  return np.broadcast_to(per_row[:, :, None], (len(l2), data.d + 1, data.k))


@functools.partial(jax.jit, static_argnames="rows")
def _newton_direction(grad, hessian, penalty, rows=None):
  """The Newton step `H⁻¹ g` of each model (float64, Cholesky with a relative damping floor for a
  flat direction), and for softmax projected onto logits that sum to 0 over classes (the loss does
  not change along that direction; scikit-learn's iterates stay there too)."""
  low = _low_precision(hessian.shape[0], rows) or hessian.dtype == jnp.float32
  hessian = hessian.astype(jnp.float64)
  size = hessian.shape[-1]
  relative = 1e-6 if low else 1e-12  # above the sums' rounding
  # Relative to the data's curvature, not the penalty's: the penalty is exact, and on features ~1e-9 its
  # curvature (l2 / scale²) made a floor that swamped the intercept's (fits never converged).
  floor = relative * jnp.maximum(jnp.max(jnp.abs(jax.vmap(jnp.diagonal)(hessian)), axis=1), 1e-300)
  hessian = hessian + jax.vmap(jnp.diag)(penalty)
  hessian = hessian + floor[:, None, None] * jnp.eye(size)[None]
  factor = jnp.linalg.cholesky(hessian)
  step = jax.vmap(lambda c, g: jax.scipy.linalg.cho_solve((c, True), g))(factor, grad)
  return step, jnp.all(jnp.isfinite(step), axis=1)


def _project_classes(step, k: int, xp=np):
  """Softmax's step `[K, p]` projected onto logits that sum to 0 over the `k` classes (the loss does not change
  along that direction; scikit-learn's iterates stay there too). `xp`: numpy, or jax.numpy on the device."""
  if k == 1:
    return step
  step = step.reshape(len(step), -1, k)
  return (step - xp.mean(step, axis=2, keepdims=True)).reshape(len(step), -1)
