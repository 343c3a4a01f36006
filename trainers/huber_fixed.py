"""Huber regression at a fixed scale, exact: the Trainer's `huber:EPSILON` loss (optax's `huber_loss`).

>>> fit = huber_fixed(x, y, weight, epsilon=0.1, l2=0.0)   # mean_w h_ε(y - x w - b) + l2 / 2 |w|²

`h_ε(r) = r² / 2` for `|r| <= ε`, else `ε (|r| - ε / 2)`. Unlike scikit-learn's HuberRegressor (`robust.huber`)
no scale is fitted: ε is in the targets' units. The loss is convex and piecewise quadratic, so Newton's steps
(with the solvers' one line search, `solvers.minimise`) end once the set of rows inside ε settles. Float64 on
the host, in standardised features, as `robust`.
"""

from __future__ import annotations

import numpy as np

from flaxzoo.trainers.host_blas import one_thread
from flaxzoo.trainers.robust_rows import RobustFit, standardised, usable_rows
from flaxzoo.trainers.solvers import largest_violation, minimise

# The curvature an outside row lends Newton's matrix, relative to an inside row's: it has none, and where few
# rows are inside the matrix is singular; the step is then a damped one (the gradient stays exact, so the
# optimum is the same; near it, Newton's convergence slows by this factor at most).
OUTSIDE_CURVATURE = 1e-4


def huber_fixed(x, y, weight=None, epsilon: float = 1.35, l2: float = 0.0, tol: float = 1e-4, max_iter: int = 100,
                start: tuple[np.ndarray, float] | None = None) -> RobustFit:
  """The fit of `x [n, d]`, `y [n]`, `weight [n]` (>= 0): `(coef [d], intercept)` from `start` (default: the
  least-squares fit, where most rows are inside ε), until the gradient's largest entry (in the standardised
  features) is below `tol` times the targets' spread (to a power of two: y x 2^k takes the same steps)."""
  with one_thread(scipy=False):
    x, y, weight = usable_rows(x, y, weight)
    v = weight / weight.sum()
    z, shift, scale = standardised(x, v)
    ridge = float(l2) * np.concatenate([1.0 / scale**2, [0.0]])  # l2 / 2 |w|², w = w_s / scale
    if start is None:
      theta = np.linalg.lstsq((z * v[:, None]).T @ z + np.diag(ridge), (v * y) @ z, rcond=None)[0]
    else:
      coef = np.asarray(start[0], np.float64).reshape(-1)
      theta = np.concatenate([coef * scale, [float(start[1]) + shift @ coef]])
    spread = float(np.sqrt(v @ (y - v @ y) ** 2))
    unit = 2.0 ** np.round(np.log2(spread)) if spread > 0 else 1.0

    def evaluate(t):  # one model: `[1, p]`
      r = y - z @ t[0]
      inside = np.abs(r) <= epsilon
      value = v @ np.where(inside, 0.5 * r**2, epsilon * (np.abs(r) - 0.5 * epsilon)) + 0.5 * ridge @ t[0] ** 2
      grad = -(v * np.where(inside, r, epsilon * np.sign(r))) @ z + ridge * t[0]
      curvature = v * np.where(inside, 1.0, OUTSIDE_CURVATURE)
      return np.array([value]), grad[None], ((z * curvature[:, None]).T @ z + np.diag(ridge))[None]

    def direction(t, value, grad, hessian):
      step = np.linalg.lstsq(hessian[0], grad[0], rcond=None)[0]
      return step[None], np.array([grad[0] @ step]), np.array([grad[0] @ step > 0]), hessian

    measure = lambda grad, _: largest_violation(grad)
    theta, value, n_iter, converged, _ = minimise(theta[None], evaluate, direction, measure, tol * unit,
                                                  max_iter, np.float64)
  coef = theta[0, :-1] / scale
  return RobustFit(coef, float(theta[0, -1] - shift @ coef), None, int(n_iter[0]), bool(converged[0]), float(value[0]))
