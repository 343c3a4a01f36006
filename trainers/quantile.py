"""Quantile regression with an L1 penalty, exact: `quantile(x, y, weight, quantile, alpha)`, scikit-learn's
`QuantileRegressor` objective `mean_w ρ_q(r) + alpha |w|₁` (`ρ_q(r) = q r⁺ + (1 - q) r⁻`).

Its dual linear programme, `max yᵀa : Zᵀa = (1 - q) Zᵀs, 0 <= a <= s` (Koenker & Portnoy's Frisch-Newton),
the L1 penalty as pseudo-rows `±c_j e_j` (target 0) of weight `alpha S / (scale_j c_j)`, by Mehrotra's
predictor-corrector. Its iterates stay inside; the optimum of an LP is a vertex, where p rows fit exactly:
those rows are read off the last iterate and solved for exactly, so that a coefficient whose penalty row is
among them is 0.0, as scikit-learn's (HiGHS) vertex. The vertex is kept only where its objective is no worse.
"""

from __future__ import annotations

import numpy as np

from flaxzoo.trainers.host_blas import one_thread
from flaxzoo.trainers.robust_rows import RobustFit, pinball, standardised, usable_rows


def quantile(x, y, weight=None, quantile: float = 0.5, alpha: float = 1.0, tol: float = 1e-10,
             max_iter: int = 100) -> RobustFit:
  """scikit-learn's `QuantileRegressor(quantile, alpha)` fit of `x [n, d]`, `y [n]`, `weight [n]` (>= 0).
  `tol`: the duality gap relative to the objective; `max_iter`: interior-point iterations. Its BLAS calls
  on one thread (`host_blas`)."""
  with one_thread():
    return _quantile(x, y, weight, quantile, alpha, tol, max_iter)


def _quantile(x, y, weight, quantile, alpha, tol, max_iter) -> RobustFit:
  x, y, weight = usable_rows(x, y, weight)
  total = weight.sum()
  z, shift, scale = standardised(x, weight / total)
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
  beta, n_iter, converged = interior_point(rows, targets, upper, float(quantile), tol, max_iter)
  # (Converged already: the vertex's certificate, a bounded least squares, would change no answer)
  beta, certified = vertex(rows, targets, upper, float(quantile), beta, n, pseudo, certify=not converged)
  converged = converged or certified
  objective = pinball(targets - rows @ beta, upper, quantile) / total
  full = np.zeros(z_all.shape[1])
  full[varying] = beta
  coef = full[:-1] / scale
  return RobustFit(coef, float(full[-1] - shift @ coef), None, n_iter, converged, float(objective))


def interior_point(z, y, upper, q, tol, max_iter):
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
    diagonal = np.abs(np.diagonal(start[2]))
    conditioning = (diagonal.max() / diagonal.min()) ** 2 if diagonal.min() > 0 else np.inf  # about zᵀUz's
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


def vertex(z, y, upper, q, beta, n, pseudo, certify: bool = True):
  """`(β, certified)`: the optimal vertex near the interior-point answer `beta`. The rows it fits (residuals
  below 1e-6 of their median: near the optimum the others stay O(median)) are fitted exactly, by least
  squares on the coefficients whose penalty rows are not among them (those are 0.0); `beta` where that is
  no better. `certified`: the vertex is optimal by LP duality, its p fitted rows' dual values `a_B`
  (`z_Bᵀ a_B = (1 - q) zᵀu - z_Nᵀ a_N`, `a_N` at the bound of its residual's sign) exist within `[0, u_B]`
  (a zero coefficient's pair of rows: `[-u, u]`); not asked (False) without `certify`."""
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
  if pinball(y - z @ candidate, upper, q) > pinball(y - z @ beta, upper, q) * (1 + 1e-12) + 1e-300:
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
  if basis.sum() < p or not certify:
    return candidate, False
  # Dual values in their bounds that meet the equations (more fitted rows than p: a degenerate vertex,
  # ties in y): bounded least squares, feasible where its residual is rounding.
  from scipy.optimize import lsq_linear

  dual = lsq_linear(z[basis].T, rhs, bounds=(low, upper[basis]), method="bvls")
  return candidate, bool(np.max(np.abs(z[basis].T @ dual.x - rhs)) <= 1e-9 * (float(np.max(np.abs(rhs))) or 1.0))
