"""Robust and quantile regression, exact: Huber regression with a scale (Newton) and quantile regression
with an L1 penalty (a primal-dual interior-point method, then the optimal vertex).

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
- `quantile`: minimises `mean_w ρ_q(r) + alpha |w|₁` (`ρ_q(r) = q r⁺ + (1 - q) r⁻`) as its dual linear
  programme, `max yᵀa : Zᵀa = (1 - q) Zᵀs, 0 <= a <= s` (Koenker & Portnoy's Frisch-Newton), the L1
  penalty as pseudo-rows `±c_j e_j` (target 0) of weight `alpha S / (scale_j c_j)`, by Mehrotra's
  predictor-corrector. Its
  iterates stay inside; the optimum of an LP is a vertex, where p rows fit exactly: those rows are read off
  the last iterate and solved for exactly, so that a coefficient whose penalty row is among them is 0.0, as
  scikit-learn's (HiGHS) vertex. The vertex is kept only where its objective is no worse.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from flaxzoo.trainers.host_blas import one_thread
from flaxzoo.trainers.magnitudes import power_of_two_units
from flaxzoo.trainers.wide_systems import WideSystem

# Huber's scale stays at or above this times max |y| (scikit-learn bounds it at 10 eps): where more rows lie
# off an exact fit of a few than epsilon² - 1 times their number, the objective falls all the way to σ = 0.
SIGMA_MIN = 10 * float(np.finfo(np.float64).eps)


@dataclasses.dataclass
class RobustFit:
  """`coef [d]`, `intercept`, `scale` (Huber's σ; quantile: None), `n_iter`, `converged`, `objective` (the
  mean objective minimised)."""

  coef: np.ndarray
  intercept: float
  scale: float | None
  n_iter: int
  converged: bool
  objective: float


def _standardised(x: np.ndarray, v: np.ndarray):
  """`(Z [n, d + 1], shift [d], scale [d])`: `Z = [(x - shift) / scale, 1]` with the weighted mean and
  standard deviation (`v` sums to 1). A constant column (its spread at the rounding of its mean: the weighted
  mean of a column of ones is not exactly 1) is all 0 in Z, with scale O(1): not a copy of the intercept."""
  n, d = x.shape
  shift = v @ x
  z = np.empty((n, d + 1))  # one allocation, filled in place: 200k x 64 rows are not copied three times
  centred = np.subtract(x, shift, out=z[:, :d])
  scale = np.sqrt(np.maximum(v @ centred**2 if n * d <= 1 << 20 else np.einsum("i,ij,ij->j", v, centred, centred),
                             0.0))
  constant = scale <= 64 * np.finfo(np.float64).eps * np.maximum(np.abs(shift), np.finfo(np.float64).tiny)
  scale = np.where(constant, np.maximum(np.abs(shift), 1.0), scale)
  centred /= scale
  centred[:, constant] = 0.0
  z[:, d] = 1.0
  return z, shift, scale


def _weights(x, y, weight):
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64).reshape(-1)
  weight = np.ones(len(y)) if weight is None else np.asarray(weight, np.float64).reshape(-1)
  if len(x) != len(y) or len(weight) != len(y):
    raise ValueError(f"x, y and weight differ in rows: {len(x)}, {len(y)}, {len(weight)}")
  if not (np.all(np.isfinite(weight)) and weight.min() >= 0 and weight.sum() > 0):
    raise ValueError("weight must be finite, >= 0, with a positive entry")
  keep = weight > 0  # rows of weight 0 change nothing (and the LP's bounds 0 <= a <= 0 would pin them)
  if keep.all():  # (no copy of the rows)
    return x, y, weight
  return x[keep], y[keep], weight[keep]


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
  x, y, weight = _weights(x, y, weight)
  unit = float(power_of_two_units(np.max(np.abs(y), initial=0.0)))
  if unit != 1:  # y ~ 1e150: its squares overflow. The fit of y / unit with alpha x unit, times unit (exact).
    start = None if start is None else (np.asarray(start[0]) / unit, float(start[1]) / unit, float(start[2]) / unit)
    fit = _huber(x, y / unit, weight, epsilon, alpha * unit, tol, max_iter, start)
    return dataclasses.replace(fit, coef=fit.coef * unit, intercept=fit.intercept * unit, scale=fit.scale * unit,
                               objective=fit.objective * unit)
  total = weight.sum()
  v = weight / total
  z, shift, scale = _standardised(x, v)
  p = z.shape[1]
  ridge = float(alpha) / total * np.concatenate([1.0 / scale**2, [0.0]])  # (alpha / S) |w|², w = w_s / scale
  # Wide data (more coefficients than rows) with a ridge: Newton's systems solved in the rows' size.
  penalised = ridge > 0
  wide = p > len(y) and penalised.any()
  none = (np.zeros((len(y), 0)), np.zeros((0, 0)))
  squares = z**2 if wide else None  # (the Hessian's diagonal, each iteration)
  system = WideSystem(z, penalised) if wide else None
  if start is None and wide:
    theta = system.solve(v, ridge, *none, (v * y) @ z)
    sigma = float(np.sqrt(v @ (y - z @ theta) ** 2)) or 1.0
  elif start is None:  # the (ridge) least-squares fit, σ its residuals' sd: most rows inliers, Huber ~ squares
    gram = (z * v[:, None]).T @ z + np.diag(ridge)
    theta = np.linalg.lstsq(gram, (v * y) @ z, rcond=None)[0]
    sigma = float(np.sqrt(v @ (y - z @ theta) ** 2)) or 1.0
  else:
    coef, intercept, sigma = (np.asarray(start[0], np.float64), float(start[1]), float(start[2]))
    theta = np.concatenate([coef * scale, [intercept + shift @ coef]])

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
      return value, grad, (d, e, corner, max(float(np.max(d @ squares + 2 * ridge)), corner))
    hessian = np.empty((p + 1, p + 1))
    hessian[:p, :p] = (z * (2 / sigma * curvature)[:, None]).T @ z
    hessian[np.arange(p), np.arange(p)] += 2 * ridge
    hessian[:p, p] = hessian[p, :p] = (curvature * 2 * r / sigma**2) @ z
    hessian[p, p] = curvature @ (2 * r**2 / sigma**3)
    return value, grad, hessian

  floor_sigma = SIGMA_MIN * max(1.0, float(np.max(np.abs(y))))

  def projected(grad, sigma):  # σ held at its floor where the objective still falls towards 0
    return np.max(np.abs(grad[:-1] if sigma <= floor_sigma and grad[-1] > 0 else grad))

  sigma = _best_scale(y - z @ theta, v, epsilon, floor_sigma)
  if wide:  # the ridge start fits every row: the optimum is σ -> 0's limit where its exact finish holds there
    # (and the best σ for it is at the rounding of its fitted rows, the finish's own 1e-6 of the targets' spread)
    finished = _absolute_deviations_finish(z, y, v, ridge, epsilon, theta)
    spread = float(np.sqrt(v @ (y - v @ y) ** 2))
    if finished is not None and _best_scale(y - z @ finished, v, epsilon, floor_sigma) <= 1e-6 * spread:
      coef = finished[:-1] / scale
      value = parts(finished, floor_sigma, derivatives=False)
      return RobustFit(coef, float(finished[-1] - shift @ coef), float(floor_sigma), 0, True, float(value))
  value, grad, hessian = parts(theta, sigma)
  n_iter, converged = 0, bool(projected(grad, sigma) <= tol)
  floor_steps = 0  # consecutive iterations with σ at its floor (the optimum is σ -> 0's limit: wide data)
  first_level = 0
  rounding = 8 * np.finfo(np.float64).eps
  while not converged and n_iter < max_iter:
    held = sigma <= floor_sigma and grad[-1] > 0
    trial = None
    # Newton, damped more where its step fails: a row set fitted exactly leaves no curvature along σ (the
    # objective is piecewise linear there), and the undamped step is meaningless; large damping is a
    # gradient step, which always descends.
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
        if trial_value <= value + 1e-4 * rate * slope:
          trial = (trial_theta, trial_sigma, parts(trial_theta, trial_sigma))
          break
        if trial_value <= value + rounding * abs(value):
          candidate = parts(trial_theta, trial_sigma)
          if projected(candidate[1], trial_sigma) < projected(grad, sigma):
            trial = (trial_theta, trial_sigma, candidate)
            break
        rate /= 2
      if trial is not None:
        # Wide data: the next iteration starts at the damping that worked, one level below where it worked at
        # once (its Newton steps along σ failed at the smallest dampings every time: 40 objective values an
        # iteration spent)
        first_level = (max(level - 1, 0) if level == first_level else level) if wide else 0
        break
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
  if not converged and sigma <= floor_sigma:  # the limit σ -> 0: least absolute deviations (with the ridge)
    finished = _absolute_deviations_finish(z, y, v, ridge, epsilon, theta)
    if finished is None:  # Newton's iterate is too far off to show the fitted rows: the LP's vertex shows them
      varying = np.any(z != 0, axis=0)  # (a constant column, all 0, would make the LP's steps singular)
      median, _, _ = _interior_point(z[:, varying], y, v, 0.5, 1e-12, 100)
      median, _ = _vertex(z[:, varying], y, v, 0.5, median, len(y), np.zeros(varying.sum() - 1, bool))
      full = np.zeros(z.shape[1])
      full[varying] = median
      finished = _absolute_deviations_finish(z, y, v, ridge, epsilon, full)
    if finished is not None:
      theta, converged = finished, True
      value = parts(theta, sigma, derivatives=False)
  coef = theta[:-1] / scale
  return RobustFit(coef, float(theta[-1] - shift @ coef), float(sigma), n_iter, converged, float(value))


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


def quantile(x, y, weight=None, quantile: float = 0.5, alpha: float = 1.0, tol: float = 1e-10,
             max_iter: int = 100) -> RobustFit:
  """scikit-learn's `QuantileRegressor(quantile, alpha)` fit of `x [n, d]`, `y [n]`, `weight [n]` (>= 0).
  `tol`: the duality gap relative to the objective; `max_iter`: interior-point iterations. Its BLAS calls
  on one thread (`host_blas`)."""
  with one_thread():
    return _quantile(x, y, weight, quantile, alpha, tol, max_iter)


def _quantile(x, y, weight, quantile, alpha, tol, max_iter) -> RobustFit:
  x, y, weight = _weights(x, y, weight)
  total = weight.sum()
  z, shift, scale = _standardised(x, weight / total)
  varying = np.concatenate([np.any(z[:, :-1] != 0, axis=0), [True]])  # a constant column's coefficient is 0
  z_all, z = z, (z if varying.all() else z[:, varying])
  n, p = z.shape
  d = p - 1
  # The L1 penalty as pseudo-rows: weight c on the rows e_j and -e_j (target 0) adds c |w_s,j|.
  penalty = float(alpha) * total / scale[varying[:-1]]
  pseudo = penalty > 0
  # A row scaled by c with its weight divided by c adds the same: each pseudo-row takes the rows' mean weight
  # (bounds of one size keep the interior-point iterates well scaled; 1e5 apart they overflowed).
  mean = float(weight.mean())
  unit = np.eye(p)[:d][pseudo] * (penalty[pseudo] / mean)[:, None]
  rows = np.vstack([z, unit, -unit]) if pseudo.any() else z
  targets = np.concatenate([y, np.zeros(2 * pseudo.sum())])
  upper = np.concatenate([weight, np.full(2 * pseudo.sum(), mean)])
  beta, n_iter, converged = _interior_point(rows, targets, upper, float(quantile), tol, max_iter)
  beta, certified = _vertex(rows, targets, upper, float(quantile), beta, n, pseudo)
  converged = converged or certified
  objective = _pinball(targets - rows @ beta, upper, quantile) / total
  full = np.zeros(z_all.shape[1])
  full[varying] = beta
  coef = full[:-1] / scale
  return RobustFit(coef, float(full[-1] - shift @ coef), None, n_iter, converged, float(objective))


def _pinball(residual, weight, q):
  return float(weight @ np.where(residual >= 0, q * residual, (q - 1) * residual))


def _interior_point(z, y, upper, q, tol, max_iter):
  """`(β [p], iterations, converged)`: `argmin_β Σ upper_i ρ_q(y_i - z_i β)` through its dual, `max yᵀa :
  zᵀa = (1 - q) zᵀupper, 0 <= a <= upper`, by Mehrotra's predictor-corrector; `t = upper - a`, and the dual
  slacks `w - s = y - zβ` (w, s >= 0). Each iteration solves one weighted least squares `zᵀDz`."""
  a = (1 - q) * upper  # feasible: zᵀa = b
  b = z.T @ a
  t = upper - a
  root = np.sqrt(upper)
  with np.errstate(divide="ignore", invalid="ignore"):  # a singular R: collinear columns (below)
    start = _rows_factor(z, upper, root)
    beta = _qr_solve(start, root * y, np.zeros(z.shape[1]))
    singular = np.abs(np.diagonal(start[2]))
    conditioning = (singular.max() / singular.min()) ** 2 if singular.min() > 0 else np.inf  # about zᵀUz's
  if not np.all(np.isfinite(beta)):  # collinear columns: the minimum-norm start
    beta = np.linalg.lstsq(z * root[:, None], y * root, rcond=None)[0]
  r = y - z @ beta
  # The gap is relative to the objective's scale, `Σ upper |y|`, with no floor in absolute units: y x 1e-10 or
  # weights of 1e-12 stop where y and weights of 1 do (a floor of 1 stopped them at once, 5% from the optimum).
  scale_obj = float(upper @ np.abs(y)) or float(upper.sum())
  spread = max(float(np.mean(np.abs(r))), 1e-12 * scale_obj / float(upper.sum()), np.finfo(np.float64).tiny)
  w, s = np.maximum(r, 0) + spread, np.maximum(-r, 0) + spread  # w - s = r (dual feasible)
  best, best_merit, since = beta, np.inf, 0
  for iteration in range(1, max_iter + 1):
    primal = y @ a
    dual = b @ beta + upper @ w
    r_p = b - z.T @ a
    r_d = y - z @ beta - w + s
    # The gap, and what the equality constraints lack (a near the optimum loses them to rounding on badly
    # scaled rows: the gap then stalls, and the best iterate so far is kept).
    merit = (abs(dual - primal) + np.abs(r_p) @ np.abs(beta) + upper @ np.abs(r_d)) / scale_obj
    if merit < best_merit:
      best, best_merit, since = beta, merit, 0
    else:
      since += 1
    if merit <= tol:
      return beta, iteration - 1, True
    if since >= 5:
      return best, iteration - 1, False

    state = (a, t, s, w)
    factors = _factor(z, state, conditioning)
    d_a, d_beta, d_s, d_w = _direction(z, state, factors, r_p, r_d, -a * s, -t * w)  # affine scaling (predictor)
    step_p, step_d = _lengths(state, d_a, d_s, d_w)
    mu = (a @ s + t @ w) / (2 * len(a))
    mu_aff = ((a + step_p * d_a) @ (s + step_d * d_s) + (t - step_p * d_a) @ (w + step_d * d_w)) / (2 * len(a))
    centring = (mu_aff / mu) ** 3  # Mehrotra's corrector: centred, and the predictor's second-order term
    d_a, d_beta, d_s, d_w = _direction(z, state, factors, r_p, r_d, centring * mu - a * s - d_a * d_s,
                                       centring * mu - t * w + d_a * d_w)
    factors = None  # (freed before the next one is made: one factor of the rows at a time)
    step_p, step_d = (0.99995 * v for v in _lengths(state, d_a, d_s, d_w))
    a, t = a + step_p * d_a, t - step_p * d_a  # (t kept on its own: upper - a cancels near the bound)
    beta, s, w = beta + step_d * d_beta, s + step_d * d_s, w + step_d * d_w
  return best, max_iter, False


def _factor(z, state, conditioning):
  """`(D, √D, factor)`: `a s = μ`, `t w = μ` linearised (Δt = -Δa) leave the normal equations `zᵀDz Δβ = ...`,
  `D = 1 / (s / a + w / t)`, solved through the R of `√D z = QR` (once an iteration). Near the end D spans
  ~1e15 and the product's squared condition number stalled badly scaled problems: R from a QR factor of the
  rows there; before, where the product's condition (`conditioning`, zᵀz's, times D's spread) leaves the
  refined solve exact, from the product's Cholesky factor (a tenth of the time)."""
  a, t, s, w = state
  diag = 1.0 / (s / a + w / t)
  root = np.sqrt(diag)
  return diag, root, _rows_factor(z, diag, root, conditioning)


def _rows_factor(z, diag, root, conditioning=1.0):
  """`[z, √D, R, kind]` for `_qr_solve`: R of the product's Cholesky factor where it is well conditioned, else
  of a QR factor of the rows."""
  try:
    r_factor = _cholesky_r(z, diag)
    spread = np.abs(np.diagonal(r_factor))
    if conditioning * (spread.max() / spread.min()) ** 2 <= CHOLESKY_CONDITION:
      return [z, root, r_factor, "cholesky"]
  except np.linalg.LinAlgError:
    pass
  return [*_qr(z, root), "qr"]


# Where the product zᵀDz's condition number (estimated from its factor's diagonal) is below this, its Cholesky
# factor serves as R, and the corrected semi-normal solve is checked to converge (else R comes from a QR).
CHOLESKY_CONDITION = 1e10


def _cholesky_r(z, diag):
  """The upper Cholesky factor of `zᵀ diag(D) z`, summed `QR_ROWS` rows at a time (no copy of the rows)."""
  gram = np.zeros((z.shape[1], z.shape[1]))
  for start in range(0, len(z), QR_ROWS):
    block = z[start:start + QR_ROWS]
    gram += block.T @ (diag[start:start + QR_ROWS, None] * block)
  return np.linalg.cholesky(gram).T


# Rows of `√D z` factored at a time: the QR factor's R is carried from block to block (TSQR), so the rows are
# never copied whole (numpy's `qr` of all of them, with Q, peaked at 10x the data).
QR_ROWS = 16384


def _qr(z, root):
  """`(z, √D, R)`: R of the QR factor of `√D z` `[p, p]`, by blocks of `QR_ROWS` rows stacked under the R so
  far; Q is never formed (`_qr_solve` applies it through z)."""
  from scipy.linalg import qr

  p = z.shape[1]
  r_factor = np.zeros((0, p))
  for start in range(0, len(z), QR_ROWS):
    block = np.vstack([r_factor, z[start:start + QR_ROWS] * root[start:start + QR_ROWS, None]])
    r_factor = np.triu(qr(block, mode="r", overwrite_a=True, check_finite=False)[0][:p])
  if len(r_factor) < p:  # fewer rows than columns: R is square and singular
    r_factor = np.vstack([r_factor, np.zeros((p - len(r_factor), p))])
  return z, root, r_factor


def _qr_solve(factor, scaled_rhs, r_p):
  """`Δβ` of `zᵀDz Δβ = zᵀ√D scaled_rhs - r_p` from the R of `√D z = QR`: the least-squares part by the
  corrected semi-normal equations (R⁻¹R⁻ᵀ Aᵀc, then once more on its residual: as accurate as applying Qᵀ
  where cond(A) u is small, Björck), then `- R⁻¹R⁻ᵀ r_p`."""
  from scipy.linalg import solve_triangular

  z, root, r_factor, kind = factor

  singular = not np.all(np.diagonal(r_factor) != 0)

  def normal(v):  # (RᵀR)⁻¹ v; its minimum-norm solution where R is singular (collinear columns)
    if singular:
      return np.linalg.lstsq(r_factor.T @ r_factor, v, rcond=None)[0]
    return solve_triangular(r_factor, solve_triangular(r_factor, v, trans="T"))

  x = normal(z.T @ (root * scaled_rhs))
  correction = normal(z.T @ (root * (scaled_rhs - root * (z @ x))))
  if kind == "cholesky" and not np.linalg.norm(correction) <= 1e-8 * np.linalg.norm(x + correction):
    factor[:] = [*_qr(z, root), "qr"]  # the product's factor was too rough here: R from the rows, for the rest
    return _qr_solve(factor, scaled_rhs, r_p)
  return x + correction - normal(r_p)


def _direction(z, state, factors, r_p, r_d, r_as, r_tw):
  """The Newton direction `(Δa, Δβ, Δs, Δw)` for the complementarity targets `r_as`, `r_tw`."""
  a, t, s, w = state
  diag, root, factor = factors
  rhs = r_d - r_tw / t + r_as / a
  # zᵀDz Δβ = zᵀD rhs - r_p  ->  R Δβ = Qᵀ(√D rhs) - R⁻ᵀ r_p
  d_beta = _qr_solve(factor, root * rhs, r_p)
  d_a = diag * (rhs - z @ d_beta)
  return d_a, d_beta, (r_as - s * d_a) / a, (r_tw + w * d_a) / t


def _lengths(state, d_a, d_s, d_w):
  """The primal and dual step lengths (<= 1) to the boundary of `a, t >= 0` and `s, w >= 0`."""
  a, t, s, w = state

  def limit(v, dv):
    falling = dv < 0
    return min(1.0, float(np.min(-v[falling] / dv[falling]))) if falling.any() else 1.0

  return min(limit(a, d_a), limit(t, -d_a)), min(limit(s, d_s), limit(w, d_w))


def _vertex(z, y, upper, q, beta, n, pseudo):
  """`(β, certified)`: the optimal vertex near the interior-point answer `beta`. The rows it fits (residuals
  below 1e-6 of their median: near the optimum the others stay O(median)) are fitted exactly, by least
  squares on the coefficients whose penalty rows are not among them (those are 0.0); `beta` where that is
  no better. `certified`: the vertex is optimal by LP duality, its p fitted rows' dual values `a_B`
  (`z_Bᵀ a_B = (1 - q) zᵀu - z_Nᵀ a_N`, `a_N` at the bound of its residual's sign) exist within `[0, u_B]`
  (a zero coefficient's pair of rows: `[-u, u]`)."""
  p = z.shape[1]
  residual = np.abs(y - z @ beta)
  fitted = residual <= 1e-6 * max(float(np.median(residual)), 1e-300)
  penalised = np.flatnonzero(pseudo)
  # Pseudo-rows n.. are +e_j, then -e_j, for the penalised j in order.
  pseudo_rows = np.flatnonzero(fitted[n:])
  zeroed = np.unique(penalised[pseudo_rows % len(penalised)]) if len(penalised) and len(pseudo_rows) else []
  free = np.setdiff1d(np.arange(p), zeroed)
  data_rows = np.flatnonzero(fitted[:n])
  candidate = np.zeros(p)
  if len(data_rows) < len(free):
    return beta, False
  system = z[np.ix_(data_rows, free)]
  if len(free) and np.linalg.matrix_rank(system) < len(free):
    return beta, False
  if len(free):
    candidate[free] = np.linalg.lstsq(system, y[data_rows], rcond=None)[0]
  if _pinball(y - z @ candidate, upper, q) > _pinball(y - z @ beta, upper, q) * (1 + 1e-12) + 1e-300:
    return beta, False
  r = y - z @ candidate
  fitted = np.abs(r) <= 1e-9 * max(float(np.median(np.abs(r))), 1e-300)
  # A zero coefficient fits both its pseudo-rows: their duals enter as one, a₊ - a₋ in [-u, u] on the row +e_j.
  minus = np.zeros(len(y), bool)
  minus[n + len(penalised):] = fitted[n + len(penalised):]
  basis = fitted & ~minus
  a = np.where(r > 0, upper, 0.0)
  a[minus] = 0.0
  low = np.where(np.arange(len(y)) >= n, -upper, 0.0)[basis]
  rhs = (1 - q) * (z.T @ upper) - z.T @ np.where(basis, 0.0, a)  # (no copy of the other rows)
  if basis.sum() < p:
    return candidate, False
  # Dual values in their bounds that meet the equations (more fitted rows than p: a degenerate vertex,
  # ties in y): bounded least squares, feasible where its residual is rounding.
  from scipy.optimize import lsq_linear

  dual = lsq_linear(z[basis].T, rhs, bounds=(low, upper[basis]), method="bvls")
  return candidate, bool(np.max(np.abs(z[basis].T @ dual.x - rhs)) <= 1e-9 * (float(np.max(np.abs(rhs))) or 1.0))
