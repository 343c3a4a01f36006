"""Robust and quantile regression, exact: Huber regression with a scale (Newton) here, quantile regression
with an L1 penalty in `flaxzoo.trainers.quantile` (re-exported: `robust.quantile`).

>>> fit = huber(x, y, weight, epsilon=1.35, alpha=1e-4)     # scikit-learn's HuberRegressor objective
>>> fit = quantile(x, y, weight, quantile=0.9, alpha=0.01)   # scikit-learn's QuantileRegressor objective

Both run in float64 on the host, in standardised features (shift and scale from the weighted rows; the
answer mapped back), with one weighted Gram matrix `Zᵀ D Z` a iteration, `Z = [z, 1]`: the same
machinery as the GLMs' IRLS, other row weights. NumPy, not a compiled JAX pass: each fit's rows differ in
number (folds), its iterations are few, and the weighted Gram matrix is one BLAS call on the host.

- `huber`: minimises `mean_w(σ + H_ε(r / σ) σ) + (alpha / S) |w|²` over the coefficients, intercept and
  scale σ > 0 (`r = y - x w - b`, `H_ε(u) = u²` for `|u| <= ε`, else `2 ε |u| - ε²`; S the weights' sum):
  scikit-learn's objective over S. Jointly convex (a perspective); from the ridge least-squares fit, σ is
  set to its exact optimum for the coefficients (`_best_scale`), then a joint Newton step with Armijo's
  rule (damped where it fails), until the gradient's largest entry is below `tol`. Where the optimum has
  σ -> 0 (more rows off an exact fit of a few than ε² - 1 times their number), σ stops at a floor and the
  least-absolute-deviations limit is solved exactly (`_absolute_deviations_finish`).
- `quantile`: `flaxzoo.trainers.quantile`'s (its interior point and vertex also finish Huber's σ -> 0 limit).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from flaxzoo.trainers.host_blas import one_thread
from flaxzoo.trainers.magnitudes import power_of_two_units
from flaxzoo.trainers.quantile import interior_point, quantile, vertex
from flaxzoo.trainers.robust_rows import RobustFit, standardised, usable_rows
from flaxzoo.trainers.solvers import ARMIJO
from flaxzoo.trainers.wide_systems import WideSystem

__all__ = ["RobustFit", "huber", "quantile"]

# Huber's scale stays at or above this times max |y| (scikit-learn bounds it at 10 eps): where more rows lie
# off an exact fit of a few than epsilon² - 1 times their number, the objective falls all the way to σ = 0.
SIGMA_MIN = 10 * float(np.finfo(np.float64).eps)


# Newton's damping (relative to the Hessian's largest diagonal entry), raised where a step fails.
DAMPINGS = (1e-12, 1e-8, 1e-4, 1.0, 1e4)


def huber(x, y, weight=None, epsilon: float = 1.35, alpha: float = 1e-4, tol: float = 1e-5,
          max_iter: int = 100, start: tuple[np.ndarray, float, float] | None = None) -> RobustFit:
  """scikit-learn's `HuberRegressor(epsilon, alpha)` fit of `x [n, d]`, `y [n]`, `weight [n]` (>= 0):
  `start`: `(coef [d], intercept, scale)` (default: the least-squares fit with this ridge); the scale starts at
  its exact optimum for the starting coefficients either way. Its BLAS calls on one thread (`host_blas`)."""
  with one_thread():
    return _huber(x, y, weight, epsilon, alpha, tol, max_iter, start)


def _huber(x, y, weight, epsilon, alpha, tol, max_iter, start) -> RobustFit:
  """`huber`, in the caller's thread limit."""
  x, y, weight = usable_rows(x, y, weight)
  unit = float(power_of_two_units(np.max(np.abs(y), initial=0.0)))
  if unit != 1:  # y ~ 1e150: its squares overflow. The fit of y / unit with alpha x unit, times unit (exact).
    start = None if start is None else (np.asarray(start[0]) / unit, float(start[1]) / unit, float(start[2]) / unit)
    fit = _huber(x, y / unit, weight, epsilon, alpha * unit, tol, max_iter, start)
    return dataclasses.replace(fit, coef=fit.coef * unit, intercept=fit.intercept * unit, scale=fit.scale * unit,
                               objective=fit.objective * unit)
  total = weight.sum()
  v = weight / total
  z, shift, scale = standardised(x, v)
  ridge = float(alpha) / total * np.concatenate([1.0 / scale**2, [0.0]])  # (alpha / S) |w|², w = w_s / scale
  # Wide data (more coefficients than rows) with a ridge: Newton's systems solved in the rows' size.
  wide = z.shape[1] > len(y) and (ridge > 0).any()
  system = WideSystem(z, ridge > 0) if wide else None
  theta, sigma = _huber_start(z, y, v, ridge, system, start, shift, scale)
  parts = _huber_parts(z, y, v, ridge, epsilon, wide)
  floor_sigma = SIGMA_MIN * max(1.0, float(np.max(np.abs(y))))
  sigma = _best_scale(y - z @ theta, v, epsilon, floor_sigma)
  if wide:  # the ridge start fits every row: the optimum is σ -> 0's limit where its exact finish holds there
    # (and the best σ for it is at the rounding of its fitted rows, the finish's own 1e-6 of the targets' spread)
    finished = _absolute_deviations_finish(z, y, v, ridge, epsilon, theta)
    spread = float(np.sqrt(v @ (y - v @ y) ** 2))
    if finished is not None and _best_scale(y - z @ finished, v, epsilon, floor_sigma) <= 1e-6 * spread:
      coef = finished[:-1] / scale
      value = parts(finished, floor_sigma, derivatives=False)
      return RobustFit(coef, float(finished[-1] - shift @ coef), float(floor_sigma), 0, True, float(value))
  theta, sigma, value, n_iter, converged = _huber_newton(parts, z, y, v, ridge, epsilon, theta, sigma, floor_sigma,
                                                         tol, max_iter, system)
  if not converged and sigma <= floor_sigma:  # the limit σ -> 0: least absolute deviations (with the ridge)
    finished = _limit_finish(z, y, v, ridge, epsilon, theta)
    if finished is not None:
      theta, converged = finished, True
      value = parts(theta, sigma, derivatives=False)
  coef = theta[:-1] / scale
  return RobustFit(coef, float(theta[-1] - shift @ coef), float(sigma), n_iter, converged, float(value))


def _huber_start(z, y, v, ridge, system, start, shift, scale):
  """`(theta [p], sigma)`: `start` in the standardised features, else the (ridge) least-squares fit with σ its
  residuals' sd (most rows inliers: Huber ~ squares), solved in the rows' size on wide data."""
  if start is not None:
    coef, intercept, sigma = (np.asarray(start[0], np.float64), float(start[1]), float(start[2]))
    return np.concatenate([coef * scale, [intercept + shift @ coef]]), sigma
  if system is not None:
    theta = system.solve(v, ridge, np.zeros((len(y), 0)), np.zeros((0, 0)), (v * y) @ z)
  else:
    gram = (z * v[:, None]).T @ z + np.diag(ridge)
    theta = np.linalg.lstsq(gram, (v * y) @ z, rcond=None)[0]
  return theta, float(np.sqrt(v @ (y - z @ theta) ** 2)) or 1.0


def _huber_parts(z, y, v, ridge, epsilon, wide: bool):
  """`parts(theta, sigma, derivatives=True) -> value` or `(value, grad [p + 1], Hessian)`: the objective over the
  coefficients and σ; wide data's Hessian as its parts (`_wide_step` solves with them in the rows' size)."""
  p = z.shape[1]
  squares = []  # wide data: z², the Hessian's diagonal each iteration, made at the first (an exact finish needs none)

  def parts(theta, sigma, derivatives=True):
    r = y - z @ theta
    inlier = np.abs(r) <= epsilon * sigma
    f = sigma + np.where(inlier, r**2 / sigma, 2 * epsilon * np.abs(r) - epsilon**2 * sigma)
    value = v @ f + ridge @ theta**2
    if not derivatives:
      return value
    d_r = np.where(inlier, 2 * r / sigma, 2 * epsilon * np.sign(r))
    d_sigma = np.where(inlier, 1 - r**2 / sigma**2, 1 - epsilon**2)
    grad = np.concatenate([-(v * d_r) @ z + 2 * ridge * theta, [v @ d_sigma]])
    curvature = v * inlier
    if wide:  # the Hessian as its parts: zᵀ diag(d) z + diag(2 ridge), bordered by σ's column zᵀ e and corner
      d, e, corner = 2 / sigma * curvature, curvature * 2 * r / sigma**2, curvature @ (2 * r**2 / sigma**3)
      if not squares:
        squares.append(z**2)
      return value, grad, (d, e, corner, max(float(np.max(d @ squares[0] + 2 * ridge)), corner))
    hessian = np.empty((p + 1, p + 1))
    hessian[:p, :p] = (z * (2 / sigma * curvature)[:, None]).T @ z
    hessian[np.arange(p), np.arange(p)] += 2 * ridge
    hessian[:p, p] = hessian[p, :p] = (curvature * 2 * r / sigma**2) @ z
    hessian[p, p] = curvature @ (2 * r**2 / sigma**3)
    return value, grad, hessian

  return parts


def _huber_newton(parts, z, y, v, ridge, epsilon, theta, sigma, floor_sigma, tol, max_iter, system):
  """Joint Newton steps over the coefficients and σ from `(theta, sigma)`, damped more where a step fails, with
  Armijo's rule; σ set to its exact optimum for the coefficients after each step, and the σ -> 0 limit's exact
  finish taken once σ stays at its floor. Returns `(theta, sigma, value, n_iter, converged)`."""

  def projected(grad, sigma):  # σ held at its floor where the objective still falls towards 0
    return np.max(np.abs(grad[:-1] if sigma <= floor_sigma and grad[-1] > 0 else grad))

  value, grad, hessian = parts(theta, sigma)
  n_iter, converged = 0, bool(projected(grad, sigma) <= tol)
  floor_steps = 0  # consecutive iterations with σ at its floor (the optimum is σ -> 0's limit: wide data)
  first_level = 0
  while not converged and n_iter < max_iter:
    held = sigma <= floor_sigma and grad[-1] > 0
    trial, first_level = _damped_step(parts, theta, sigma, value, grad, hessian, held, floor_sigma, projected,
                                      first_level, system, ridge)
    if trial is None:  # no decrease left at float64's precision
      break
    theta, sigma, (value, grad, hessian) = trial
    n_iter += 1
    converged = bool(projected(grad, sigma) <= tol)
    floor_steps = floor_steps + 1 if sigma <= floor_sigma else 0
    if not converged and floor_steps >= 2:  # σ stays at its floor: the limit's exact finish, if it holds now
      finished = _absolute_deviations_finish(z, y, v, ridge, epsilon, theta)
      if finished is not None:
        theta, converged = finished, True
        value = parts(theta, sigma, derivatives=False)
        break
    if not converged:  # σ at its exact optimum for these coefficients: Newton's next step starts from there
      best = _best_scale(y - z @ theta, v, epsilon, floor_sigma)
      if best != sigma:
        candidate = parts(theta, best)
        if candidate[0] <= value:
          sigma, (value, grad, hessian) = best, candidate
          converged = bool(projected(grad, sigma) <= tol)
  return theta, sigma, value, n_iter, converged


def _damped_step(parts, theta, sigma, value, grad, hessian, held: bool, floor_sigma, projected, first_level: int,
                 system, ridge):
  """`(trial, first_level)`: Newton's step, damped more where it fails (a row set fitted exactly leaves no
  curvature along σ: the objective is piecewise linear there, and the undamped step is meaningless; large
  damping is a gradient step, which always descends), accepted by Armijo's rule (`ARMIJO`) or, within float64's
  rounding of the objective (near the optimum), by a smaller gradient: `(theta, sigma, parts)`, None where none
  decreases. Wide data's next iteration starts at the damping that worked, one level below where it worked at
  once (its steps along σ failed at the smallest dampings every time: 40 objective values an iteration)."""
  p = len(theta)
  wide = system is not None
  rounding = 8 * np.finfo(np.float64).eps
  next_level = lambda level: (max(level - 1, 0) if level == first_level else level) if wide else 0
  for level, damping in enumerate(DAMPINGS):
    if level < first_level:
      continue
    if wide:
      step = -_wide_step(system, ridge, hessian, damping, grad, held)
    else:
      matrix = hessian + damping * max(float(np.max(np.abs(np.diag(hessian)))), 1e-300) * np.eye(p + 1)
      if held:
        matrix[-1, :], matrix[:, -1], matrix[-1, -1] = 0.0, 0.0, 1.0
      step = -np.linalg.solve(matrix, np.where(np.arange(p + 1) == p, 0.0, grad) if held else grad)
    slope = grad @ step
    if not slope < 0:
      continue
    # σ stays above its floor and shrinks at most 10x a step (a full Newton step can send it to ~0).
    rate = 1.0 if step[-1] >= 0 else min(1.0, max(0.9 * sigma, sigma - floor_sigma) / -step[-1])
    while rate >= 1e-6:
      trial_theta, trial_sigma = theta + rate * step[:p], max(sigma + rate * step[-1], floor_sigma)
      trial_value = parts(trial_theta, trial_sigma, derivatives=False)  # the derivatives once accepted
      # Armijo; or, within float64's rounding of the objective (near the optimum), a smaller gradient.
      if trial_value <= value + ARMIJO * rate * slope:
        return (trial_theta, trial_sigma, parts(trial_theta, trial_sigma)), next_level(level)
      if trial_value <= value + rounding * abs(value):
        candidate = parts(trial_theta, trial_sigma)
        if projected(candidate[1], trial_sigma) < projected(grad, sigma):
          return (trial_theta, trial_sigma, candidate), next_level(level)
      rate /= 2
  return None, first_level


def _limit_finish(z, y, v, ridge, epsilon, theta):
  """The σ -> 0 limit's exact optimum (least absolute deviations with the ridge) from `theta`, or from the LP's
  vertex where Newton's iterate is too far off to show the fitted rows; None where neither holds."""
  finished = _absolute_deviations_finish(z, y, v, ridge, epsilon, theta)
  if finished is None:  # Newton's iterate is too far off to show the fitted rows: the LP's vertex shows them
    varying = np.any(z != 0, axis=0)  # (a constant column, all 0, would make the LP's steps singular)
    median, _, _ = interior_point(z[:, varying], y, v, 0.5, 1e-12, 100)
    median, _ = vertex(z[:, varying], y, v, 0.5, median, len(y), np.zeros(varying.sum() - 1, bool))
    full = np.zeros(z.shape[1])
    full[varying] = median
    finished = _absolute_deviations_finish(z, y, v, ridge, epsilon, full)
  return finished


def _wide_step(system, ridge, hessian, damping, grad, held):
  """The damped Newton system of `parts`' wide Hessian `(d, e, corner, largest diagonal)` solved in the rows'
  size (`wide_systems`); σ's entry 0 where it is held at its floor, as the dense system's."""
  d, e, corner, largest = hessian
  shift = damping * max(largest, 1e-300)
  diagonal = 2 * ridge + shift
  if held:
    return np.append(system.solve(d, diagonal, np.zeros((len(d), 0)), np.zeros((0, 0)), grad[:-1]), 0.0)
  return system.solve(d, diagonal, e[:, None], np.array([[corner + shift]]), grad)


def _best_scale(residual, v, epsilon, floor):
  """`argmin_σ mean_v(σ + H_ε(r / σ) σ)` for these residuals, σ >= floor: exact. The objective is convex in σ,
  and between consecutive breakpoints `|r_i| / ε` (sorted) the inliers are fixed, where it is `σ D + R / σ +
  C` (D = inliers' weight + outliers' (1 - ε²), R = Σ_in v r², C = 2ε Σ_out v |r|): each piece's minimiser
  clipped to its interval, from cumulative sums, and the best of them."""
  order = np.argsort(np.abs(residual))
  a, w = np.abs(residual)[order] / epsilon, v[order]
  inner_w = np.concatenate([[0.0], np.cumsum(w)])  # inliers' weight with the first k rows inside
  inner_r = np.concatenate([[0.0], np.cumsum(w * (epsilon * a) ** 2)])
  outer_abs = np.concatenate([[0.0], np.cumsum(w * epsilon * a)])
  total_w, total_abs = inner_w[-1], outer_abs[-1]
  low = np.concatenate([[floor], np.maximum(a, floor)])  # piece k: σ in [low_k, high_k], k rows inside
  high = np.concatenate([np.maximum(a, floor), [np.inf]])
  slope = inner_w + (total_w - inner_w) * (1 - epsilon**2)
  with np.errstate(divide="ignore", invalid="ignore"):
    best = np.where(slope > 0, np.sqrt(inner_r / slope), np.inf)
  sigma = np.clip(best, low, np.where(np.isfinite(high), high, np.maximum(low, best)))
  sigma = np.where(np.isfinite(sigma), sigma, low)
  with np.errstate(divide="ignore", invalid="ignore"):
    values = sigma * slope + np.where(inner_r > 0, inner_r / sigma, 0.0) + 2 * epsilon * (total_abs - outer_abs)
  return float(max(sigma[np.argmin(values)], floor))


def _absolute_deviations_finish(z, y, v, ridge, epsilon, theta):
  """Where Huber's optimum has σ -> 0 its objective is `mean_v 2ε|r| + ridge θ²`, minimised where a few
  rows F are fitted exactly: θ and the subgradient's `u_F` in [-1, 1] solve `z_F θ = y_F`, `2 ridge θ -
  Σ_{i∉F} v 2ε sign(r_i) z_i - Σ_F v 2ε u z = 0` (linear). The optimum (θ) where that holds with `|u| <= 1`
  and no other row changes sign; else None (F read from `theta`: residuals below 1e-6 of their median, or
  of the targets' spread)."""
  residual = y - z @ theta
  spread = max(float(np.median(np.abs(residual))), float(np.sqrt(v @ (y - v @ y) ** 2)), 1e-300)
  fitted = np.abs(residual) <= 1e-6 * spread  # (every row, where a plane fits them all)
  signs = np.sign(residual[~fitted])
  z_f, pull = z[fitted], 2 * epsilon * v[fitted]
  g = (2 * epsilon * v[~fitted] * signs) @ z[~fitted]
  # The penalised coefficients are θ_c = (g_c + z_F,cᵀ (pull u)) / (2 ridge_c): what is left is a system in u
  # and the free coefficients (the intercept) of the fitted rows' size, not the coefficients' (wide data).
  c = ridge > 0
  inverse = 1 / (2 * ridge[c])
  z_c, z_o = z_f[:, c], z_f[:, ~c]
  rows, free = len(z_f), int((~c).sum())
  system = np.zeros((rows + free, rows + free))
  system[:rows, :rows] = (z_c * inverse) @ z_c.T * pull[None, :]
  system[:rows, rows:] = z_o
  system[rows:, :rows] = -(z_o.T * pull[None, :])
  rhs = np.concatenate([y[fitted] - z_c @ (inverse * g[c]), g[~c]])
  solution, *_ = np.linalg.lstsq(system, rhs, rcond=None)
  u = solution[:rows]
  finished = np.empty(z.shape[1])
  finished[c] = inverse * (g[c] + z_c.T @ (pull * u))
  finished[~c] = solution[rows:]
  # The whole system, checked as it stands: `z_F θ = y_F` and `2 ridge θ - z_Fᵀ (pull u) = g`.
  lack = np.concatenate([z_f @ finished - y[fitted], 2 * ridge * finished - z_f.T @ (pull * u) - g])
  exact = np.max(np.abs(lack), initial=0.0) <= 1e-9 * (float(np.max(np.abs(np.r_[y[fitted], g]), initial=0.0)) or 1.0)
  kept = np.all(np.sign(y[~fitted] - z[~fitted] @ finished) == signs)
  return finished if exact and kept and np.all(np.abs(u) <= 1 + 1e-9) else None
