"""Least squares from the weighted Gram matrices: the ridge's minimum-norm solve, the elastic net's coordinate
descent (`_normal_equation` runs either)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from flaxzoo.trainers.moments import centred_loss, covariances
from flaxzoo.trainers.penalties import soft_threshold
from flaxzoo.trainers.solvers._grams import _gram_pass, _host_grams
from flaxzoo.trainers.solvers._optimality import violation
from flaxzoo.trainers.solvers._solution import Solution, _from_scaled
from flaxzoo.trainers.solvers._staging import Staged


def _per_scale2(penalty, scale):
  """`penalty / scale²` `[d]`, the L2 penalty's curvature in the standardised features: 0 where the penalty is
  0 and at most 1e300 (x ~ 1e-180: scale² underflows, and XLA turns `p / s / s` into `p / (s s)`: 0 / 0)."""
  inverse = 1 / scale
  return jnp.where(penalty > 0, jnp.minimum(penalty * inverse * inverse, 1e300), 0.0)


@functools.partial(jax.jit, static_argnames="d")
def _normal_solve(gram, l2, scale, d: int):
  """Minimum-norm solutions of K ridge problems from their Gram matrices (float64): `(W_s [K, d, k], b_s, loss)`
  in the standardised features."""
  gram = gram.astype(jnp.float64)
  k = gram.shape[-1] - d - 1

  def one(g, penalty):
    mean, sxx, sxy, syy = covariances(g, d)  # the weights sum to 1: the last column is the means
    # Objective per output t: (1/k) mean (x w_t + b_t - y_t)² + penalty/2 |w_t / scale|²: in the standardised
    # features the normal equation is (sxx + k penalty / 2 diag(1 / scale²)) w_t = sxy_t.
    ridge = 0.5 * k * _per_scale2(penalty, scale)
    # Jacobi-scaled, so the eigenvalue cut-off is relative to comparable columns.
    norm = jnp.sqrt(jnp.diagonal(sxx) + ridge)
    norm = jnp.where(norm > 0, norm, 1.0)
    a = (sxx + jnp.diag(ridge)) / norm[:, None] / norm[None, :]
    values, vectors = jnp.linalg.eigh(a)
    keep = values > jnp.max(values) * d * 1e-13
    inverse = jnp.where(keep, 1.0 / jnp.where(keep, values, 1.0), 0.0)
    w = (vectors * inverse[None, :]) @ (vectors.T @ (sxy / norm[:, None])) / norm[:, None]
    # Rank-deficient: the solutions differ by the null space of the raw features (columns D⁻¹ of the
    # dropped eigenvectors); the minimum-norm one in the raw features (lstsq's) has no part along it.
    # Raw units up to one constant (W_raw = W_s / scale, over the largest 1 / scale): the projection does not
    # depend on it, and 1 / scale of x ~ 1e-180 would overflow the products below.
    unit = (1 / scale) / jnp.max(1 / scale)
    null = jnp.where(keep[None, :], 0.0, vectors) * (unit / norm)[:, None]
    raw = w * unit[:, None]
    # Projection onto span(null): null (nullᵀ null)⁻¹ nullᵀ, the kept columns (zero) made harmless by 1s.
    gram_null = null.T @ null + jnp.diag(keep.astype(null.dtype))
    raw = raw - null @ jnp.linalg.solve(gram_null, null.T @ raw)
    w = raw / unit[:, None]
    intercept = mean[d:] - mean[:d] @ w
    objective = jnp.mean(centred_loss(w, sxx, sxy, syy)) + 0.5 * jnp.sum(_per_scale2(penalty, scale)[:, None] * w**2)
    return w, intercept, objective

  return jax.vmap(one)(gram, l2)


@functools.partial(jax.jit, static_argnames="d")
def _elastic_net_solve(gram, l2, l1, scale, tol, max_sweeps, d: int):
  """K elastic nets from their Gram matrices (float64) by cyclic coordinate descent on the covariances
  (scikit-learn's `precompute=True`; glmnet's covariance updates): `(W_s [K, d, k], b_s, objective, sweeps,
  converged)` in the standardised features. Per output t the objective is `(1/k) mean (x w_t + b_t - y_t)² +
  l2/2 |w_t / scale|² + l1 |w_t / scale|₁`; a coordinate's update soft-thresholds, so an L1 zero is 0.0. It
  stops where the largest violation of the optimality conditions (the minimum-norm subgradient, in the
  standardised features, as the other solvers' gradient) is below `tol` times the targets' (root mean)
  standard deviation (to a power of two), or after `max_sweeps` sweeps: the gradient is in the targets' unit,
  so a fit of y x c (penalties x c) stops at the answer x c (an absolute `tol` stopped y x 1e-5 at all zeros)."""
  gram = gram.astype(jnp.float64)
  k = gram.shape[-1] - d - 1

  def one(g, ridge, lasso):
    mean, sxx, sxy, syy = covariances(g, d)
    # k times the objective: wᵀ sxx w - 2 sxyᵀ w + Σ_j (k ridge_j / 2) w_j² + k lasso_j |w_j|, per output.
    ridge_j, lasso_j = _per_scale2(ridge, scale), lasso / scale
    denominator = 2 * jnp.diagonal(sxx) + k * ridge_j

    def coordinate(j, w):
      rest = sxy[j] - sxx[j] @ w + sxx[j, j] * w[j]  # [k]
      shrunk = soft_threshold(2 * rest, k * lasso_j[j])
      return w.at[j].set(jnp.where(denominator[j] > 0, shrunk / jnp.where(denominator[j] > 0, denominator[j], 1), 0))

    def worst(w):
      return jnp.max(violation((2 / k) * (sxx @ w - sxy) + ridge_j[:, None] * w, w, lasso_j[:, None], jnp))

    def sweep(state):
      w, sweeps, _ = state
      w = jax.lax.fori_loop(0, d, coordinate, w)
      return w, sweeps + 1, worst(w)

    w0 = jnp.zeros((d, k), jnp.float64)
    # syy: each target's variance. Its standard deviation rounded to a power of two: y x 2^k then takes the very
    # same sweeps (and weighted and repeated rows the same as each other), any other scale within a factor √2.
    spread = jnp.sqrt(jnp.maximum(jnp.mean(syy), jnp.finfo(jnp.float64).tiny))
    bound = tol * 2.0 ** jnp.round(jnp.log2(spread))
    w, sweeps, worst = jax.lax.while_loop(lambda s: (s[2] > bound) & (s[1] < max_sweeps), sweep,
                                          (w0, jnp.zeros((), jnp.int64), worst(w0)))
    intercept = mean[d:] - mean[:d] @ w
    objective = (jnp.mean(centred_loss(w, sxx, sxy, syy)) + 0.5 * jnp.sum(ridge_j[:, None] * w**2)
                 + jnp.sum(lasso_j[:, None] * jnp.abs(w)))
    return w, intercept, objective, sweeps, worst <= bound

  return jax.vmap(one)(gram, l2, l1)


def _normal_equation(data: Staged, chunks, l2, l1=None, tol=1e-4, max_iter=1000, grams=None) -> Solution:
  """Least squares from the weighted Gram matrices (`grams [K, D, D]` as given, else summed here): the
  ridge's linear solve, or where any `l1 [K]` > 0 the elastic net's coordinate descent (`_elastic_net_solve`,
  at most `max_iter` sweeps)."""
  size = data.d + data.k + 1
  gram, sketch = _host_grams(data) if grams is None and data.host is not None and chunks.uniform else (None, None)
  if grams is not None:
    total = jax.device_put(grams)
  elif gram is not None:  # the same Gram matrix for every model
    total = jax.device_put(np.broadcast_to(gram, (len(l2), size, size)))
  else:
    total = jax.device_put(np.zeros((len(chunks.groups), size, size), data.dtype))
    for x, y, w in zip(*data.rows(), chunks.rows):
      total = _gram_pass(total, x, y, w, *data.args())
    if len(chunks.groups) != len(l2) or np.any(chunks.group_of != np.arange(len(l2))):  # models that share
      # their weights share their Gram matrix (on the host:
      total = jax.device_put(np.asarray(total)[chunks.group_of])  # an eager gather would be one more program)
  count = len(l2)
  if l1 is None or not np.any(l1 > 0):
    w_s, b_s, objective = _normal_solve(total, jax.device_put(l2), jax.device_put(data.scale), data.d)
    n_iter, converged, solver = np.ones(count, np.int64), np.ones(count, bool), "normal_equation"
  else:
    w_s, b_s, objective, n_iter, converged = (np.asarray(v) for v in _elastic_net_solve(
        total, l2, l1, data.scale, float(tol), int(max_iter), data.d))
    solver = "coordinate_descent"
  coef, intercept = _from_scaled(data, np.asarray(w_s), np.asarray(b_s) + data.y_shift)
  moments = {"gram": np.asarray(total, np.float64), "shift": data.shift, "scale": data.scale, "y_shift": data.y_shift,
             "sketch": sketch}  # (the rows' fingerprint, `_grams.marked_ends`, where the host summed the Gram)
  return Solution(coef, intercept, n_iter, converged, np.asarray(objective), solver, moments)
