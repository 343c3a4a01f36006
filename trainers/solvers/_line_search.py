"""The one backtracking line search (Armijo's rule) of every iterative solver, on the host and in a program.

Each pending model tries `θ - rate step`; it is accepted on a sufficient decrease (`accepted`), else its rate
halves, and below 1e-10 the model is stuck (no decrease left at the pass's precision). Newton (host and
device), proximal Newton and L-BFGS search with `search_step`; the host solvers iterate with `minimise`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from flaxzoo.trainers.solvers._optimality import running

ARMIJO = 1e-4


class Search(NamedTuple):
  """The iterates of K models during a line search (a pytree: the device loop carries it too)."""

  theta: Any  # [K, ...]
  value: Any  # [K]: the objective at theta
  grad: Any  # [K, p]
  hessian: Any  # [K, p, p], or None
  n_iter: Any  # [K]: accepted steps
  stuck: Any  # [K]
  rate: Any  # [K]
  pending: Any  # [K]: still searching


def accepted(pending, rate, slope, value, t_value, measure, t_measure, dtype, xp=np):
  """Armijo's sufficient decrease along `-step` (`slope = gradᵀ step > 0`); or, where the change is below the
  pass dtype's rounding of the objective (float32 near the optimum), a smaller `measure` (the largest
  violation of the optimality conditions). `xp`: numpy, or jax.numpy on the device."""
  armijo = t_value <= value - ARMIJO * rate * slope
  rounding = 8 * float(np.finfo(dtype).eps) * xp.maximum(xp.abs(value), 1e-30)
  return pending & (armijo | ((t_value <= value + rounding) & (t_measure < measure)))


def search_step(state: Search, step, slope, evaluate, measure, dtype, xp=np):
  """One trial for every pending model: `(state, accept [K], trial, its gradient)`. `evaluate(θ) -> (value [K],
  grad [K, p], Hessian [K, p, p] or None)`; `measure(grad, θ) -> [K]`, the largest violation."""
  theta, value, grad, hessian, n_iter, stuck, rate, pending = state
  shape = (-1,) + (1,) * (theta.ndim - 1)
  trial = xp.where(pending.reshape(shape), theta - rate.reshape(shape) * step.reshape(theta.shape), theta)
  t_value, t_grad, t_hessian = evaluate(trial)
  accept = accepted(pending, rate, slope, value, t_value, measure(grad, theta), measure(t_grad, trial), dtype, xp)
  stuck = stuck | (pending & ~accept & (rate < 1e-10))
  theta = xp.where(accept.reshape(shape), trial, theta)
  value, grad = xp.where(accept, t_value, value), xp.where(accept[:, None], t_grad, grad)
  if t_hessian is not None:
    hessian = xp.where(accept[:, None, None], t_hessian, hessian)
  pending = pending & ~accept & ~stuck
  n_iter = n_iter + accept.astype(n_iter.dtype)
  return Search(theta, value, grad, hessian, n_iter, stuck, xp.where(pending, rate / 2, rate), pending), accept, \
      trial, t_grad


def minimise(theta, evaluate, direction, measure, tol: float, max_iter: int, dtype, on_accept=None):
  """The host's iterations of K models from `theta [K, ...]` until each converges (`measure <= tol`), is stuck
  or has taken `max_iter` steps: `direction(θ, value, grad, Hessian) -> (step, slope, movable [K], Hessian)`
  (a model that cannot move is stuck), then the line search; `on_accept(accept, trial, t_grad, before)` sees
  each accepted trial (L-BFGS's curvature pairs). Returns `(theta, value, n_iter, converged, Hessian)`."""
  value, grad, hessian = evaluate(theta)
  count = len(theta)
  n_iter, stuck = np.zeros(count, np.int64), np.zeros(count, bool)
  converged = measure(grad, theta) <= tol
  while True:
    active = running(converged, stuck, n_iter, max_iter)
    if not active.any():
      break
    step, slope, movable, hessian = direction(theta, value, grad, hessian)
    stuck |= active & ~movable
    state = Search(theta, value, grad, hessian, n_iter, stuck, np.ones(count), active & movable)
    while state.pending.any():
      before = state
      state, accept, trial, t_grad = search_step(state, step, slope, evaluate, measure, dtype)
      if on_accept is not None:
        on_accept(accept, trial, t_grad, before)
    theta, value, grad, hessian, n_iter, stuck = state[:6]
    converged |= measure(grad, theta) <= tol
  return theta, value, n_iter, converged, hessian
