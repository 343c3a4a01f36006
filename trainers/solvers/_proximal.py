"""Proximal Newton: Newton's iterations with a coordinate-descent inner step, for an L1 part (glmnet's and glum's
method)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from flaxzoo.trainers.penalties import soft_threshold
from flaxzoo.trainers.solvers._line_search import minimise
from flaxzoo.trainers.solvers._newton_step import _penalty_diagonal
from flaxzoo.trainers.solvers._objective import _objective_parts
from flaxzoo.trainers.solvers._optimality import largest_violation, violation
from flaxzoo.trainers.solvers._solution import Solution, _finish


def _proximal_newton(data, chunks, l2, l1, theta, tol, max_iter) -> Solution:
  """L1 (and L2) penalised logistic, softmax and GLM fits by proximal Newton (glmnet's and glum's method): a
  pass gives the loss, gradient g and Hessian H at θ; coordinate descent on the penalised quadratic model
  `gᵀΔ + ½ Δᵀ(H + l2)Δ + l1 |θ + Δ|₁` (`_lasso_quadratic`) soft-thresholds each coefficient, so its zeros are
  0.0; a step halves until the objective falls by a fraction of the model's decrease (Armijo on the
  composite objective). It stops where the largest violation of the optimality conditions (the minimum-norm
  subgradient in the standardised features, as the elastic net's) is below `tol`. The Hessian comes from the
  row sample on large data (a preconditioner: the gradient, from every row, decides convergence)."""
  count = len(theta)
  penalty = _penalty_diagonal(data, l2)
  per_row = np.concatenate([1.0 / data.scale, [0.0]])  # |w_j| = |w_s,j| / scale_j; the intercept is free
  lasso = (l1[:, None, None] * np.broadcast_to(per_row[None, :, None], (1, data.d + 1, data.k))).reshape(count, -1)

  measure = lambda grad, t: largest_violation(grad, t.reshape(count, -1), lasso)

  def evaluate(t):  # the composite objective: the loss with both penalties
    loss, grad, hessian = _objective_parts(data, chunks, t, l2, penalty, True)
    return loss + np.sum(lasso * np.abs(t.reshape(count, -1)), axis=1), grad, hessian

  def direction(theta, value, grad, hessian):
    flat = theta.reshape(count, -1)
    # The model's minimiser u = θ + Δ: min ½uᵀAu - bᵀu + lasso |u|₁, A = H + l2, b = Aθ - g, from u = θ.
    eye = np.eye(flat.shape[1])
    matrix = np.asarray(hessian, np.float64) + np.einsum("kp,pq->kpq", penalty.reshape(count, -1), eye)
    target = np.einsum("kpq,kq->kp", matrix, flat) - grad
    # The model solved to 1e-6 of the violation, squared near the optimum: Newton's quadratic convergence,
    # and a last step fixed by the point it starts from (not by when coordinate descent stopped), so that
    # weighted and repeated rows end at the same answer.
    worst = measure(grad, theta)
    inner_tol = np.maximum(1e-6 * worst * np.minimum(worst, 1.0), 1e-14)
    u = np.asarray(_lasso_quadratic(matrix, target, lasso, flat, inner_tol, 100 * flat.shape[1]))
    # The model's decrease (< 0 unless at the optimum: else the model is stuck): the linear term and the change
    # of the L1 norm. The line search steps along -(flat - u), Armijo's slope the decrease's opposite.
    decrease = np.sum(grad * (u - flat), axis=1) + np.sum(lasso * (np.abs(u) - np.abs(flat)), axis=1)
    return flat - u, -decrease, decrease < 0, hessian

  theta, value, n_iter, converged, _ = minimise(theta, evaluate, direction, measure, tol, max_iter, data.dtype)
  fit = _finish(data, theta, value, n_iter, converged, "newton")
  if data.k > 1:  # softmax: the loss ignores a shift of every class's intercept; scikit-learn's sum to 0
    fit.intercept -= fit.intercept.mean(axis=1, keepdims=True)
  return fit


@jax.jit
def _lasso_quadratic(matrix, target, lasso, start, tol, max_sweeps):
  """`[K, p]`: `argmin_u ½uᵀAu - bᵀu + Σ_j lasso_j |u_j|` per model (`matrix` A `[K, p, p]` positive
  semi-definite, `target` b, `lasso` >= 0 `[K, p]`) by cyclic coordinate descent from `start`, until the
  largest violation of its optimality conditions is below `tol [K]`, or `max_sweeps` sweeps."""

  def one(a, b, lam, u0, limit):
    diagonal = jnp.diagonal(a)
    # A flat coordinate (no curvature, no penalty): a tiny ridge keeps the update finite.
    diagonal = jnp.maximum(diagonal, 1e-12 * jnp.maximum(jnp.max(diagonal), 1e-300))

    def coordinate(j, u):
      rest = b[j] - a[j] @ u + a[j, j] * u[j]
      return u.at[j].set(soft_threshold(rest, lam[j]) / diagonal[j])

    def worst(u):
      return jnp.max(violation(a @ u - b, u, lam, jnp))

    def sweep(state):
      u, sweeps, _ = state
      u = jax.lax.fori_loop(0, u.shape[0], coordinate, u)
      return u, sweeps + 1, worst(u)

    u, _, _ = jax.lax.while_loop(lambda s: (s[2] > limit) & (s[1] < max_sweeps), sweep,
                                 (u0, jnp.zeros((), jnp.int64), worst(u0)))
    return u

  return jax.vmap(one, in_axes=(0, 0, 0, 0, 0))(matrix, target, lasso, start, tol)
