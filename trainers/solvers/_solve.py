"""`solve`: K models fitted on the staged rows by the solver `choose` picks (or the one named)."""

from __future__ import annotations

import jax
import numpy as np

from flaxzoo.trainers.solvers._choice import choose
from flaxzoo.trainers.solvers._grams import _mixed_grams
from flaxzoo.trainers.solvers._lbfgs import _lbfgs
from flaxzoo.trainers.solvers._least_squares import _normal_equation
from flaxzoo.trainers.solvers._newton import _newton
from flaxzoo.trainers.solvers._proximal import _proximal_newton
from flaxzoo.trainers.solvers._solution import Solution, _to_scaled
from flaxzoo.trainers.solvers._staging import Staged
from flaxzoo.trainers.solvers._weights import chunked_weights
from flaxzoo.trainers.weights import checked_weights


def solve(data: Staged, weights, l2, solver: str = "auto", tol: float = 1e-4, max_iter: int = 100,
          start: tuple[np.ndarray, np.ndarray] | None = None, l1=None, mix=None, hessian=None) -> Solution:
  """Fits K models on the staged rows: `weights [K, n]` (>= 0, any scale), `l2 [K]` (>= 0), and `l1 [K]`
  (>= 0: `l1 |W|₁` beside `l2 / 2 |W|²`; least squares by coordinate descent on the Gram matrix, `max_iter`
  sweeps; the other losses by proximal Newton, `_proximal_newton`, `max_iter` Newton steps).

  `start`: `(coef [K, d, k], intercept [K, k])` to start the iterative solvers from (default zero, as
  scikit-learn's). `mix [K, G]` (>= 0): model k's weights are `Σ_g mix[k, g] weights[g]` (`weights [G, n]`):
  a grid over folds needs no copy of the weights a model, and least squares sums each part's rows once
  (the folds' held-out parts: every training fold's Gram matrix from one pass). `hessian [p, p]`: Newton's
  loss Hessian near every model's optimum, in the standardised features (a fit's, for refits of resampled
  weights from it): every step takes it and no pass makes one (the chord method; `_newton_iterations`).
  Float32 weights stay float32 (a bootstrap's `[models, rows]` counts: no float64 copy). Returns a `Solution`.
  """
  weights = np.atleast_2d(weights if _float32(weights) else np.asarray(weights, np.float64))
  if mix is not None:
    mix = np.atleast_2d(np.asarray(mix, np.float64))
    if mix.ndim != 2 or mix.shape[1] != len(weights) or not (np.all(np.isfinite(mix)) and mix.min() >= 0):
      raise ValueError(f"mix must be [models, {len(weights)}] finite numbers >= 0, got shape {mix.shape}")
    checked_weights(weights, positive=False)
    if data.loss != "mse":  # the iterative solvers' passes read every model's weights
      weights, mix = mix @ weights, None
  count = len(weights) if mix is None else len(mix)
  l2 = _penalty("l2", l2, count)
  l1 = None if l1 is None else _penalty("l1", l1, count)
  proximal = l1 is not None and np.any(l1 > 0) and data.loss != "mse"
  solver = choose(solver, data.loss, num_params=(data.d + 1) * data.k, l1=bool(proximal))
  if solver == "optax":
    raise ValueError("solve() runs the exact solvers; solver='optax' trains through Trainer")
  chord = hessian is not None and solver == "newton" and not proximal  # (a given Hessian takes every step)
  # (a given start, a warm start, is nearer than a sample's optimum)
  chunks = chunked_weights(data, weights, with_sample=not chord, with_start=start is None) if mix is None else None
  with jax.enable_x64(True):
    if solver == "normal_equation":
      if mix is not None:
        return _normal_equation(data, None, l2, l1, float(tol), int(max_iter), _mixed_grams(data, weights, mix))
      return _normal_equation(data, chunks, l2, l1, float(tol), int(max_iter))
    theta = _to_scaled(data, start, count)
    if start is None and data.family:  # a GLM from its intercept-only fit: log of the weighted mean target
      mean = weights @ data.targets / weights.sum(axis=1)
      theta[:, -1, 0] = np.log(np.maximum(mean, np.finfo(np.float64).tiny))
    if data.family:
      tol = tol * glm_gradient_scale(data)
    if proximal:
      return _proximal_newton(data, chunks, l2, l1, theta, float(tol), int(max_iter))
    if solver == "newton":
      return _newton(data, chunks, l2, theta, float(tol), int(max_iter), _chord_hessian(hessian, data, count))
    return _lbfgs(data, chunks, l2, theta, float(tol), int(max_iter))


def _float32(weights) -> bool:
  return isinstance(weights, np.ndarray) and weights.dtype == np.float32


def _chord_hessian(hessian, data: Staged, count: int) -> np.ndarray | None:
  """`[K, p, p]` float64: the given `[p, p]` for each of the K models, or None."""
  if hessian is None:
    return None
  p = (data.d + 1) * data.k
  hessian = np.asarray(hessian, np.float64)
  if hessian.shape != (p, p) or not np.all(np.isfinite(hessian)):
    raise ValueError(f"hessian must be a finite [{p}, {p}] matrix, got shape {hessian.shape}")
  return np.broadcast_to(hessian, (count, p, p))


def _penalty(name: str, values, count: int) -> np.ndarray:
  """`[count]` penalties (float64, a copy), each a finite number >= 0."""
  values = np.broadcast_to(np.asarray(values, np.float64), (count,)).copy()
  if not np.all(np.isfinite(values) & (values >= 0)):
    raise ValueError(f"{name} must be finite numbers >= 0, got {values.tolist()}")
  return values


def glm_gradient_scale(data: Staged) -> float:
  """What a GLM's gradient is measured against: the deviance of targets x c has gradients x c^(2 - p) (Poisson
  c, gamma 1), so `tol` times the mean target to the power 2 - p stops a fit of y x c where the fit of y stops
  (an absolute `tol` stopped y x 1e-12 at its start and never stopped y x 1e6)."""
  mean = np.mean(data.targets)
  with np.errstate(over="ignore", under="ignore"):
    scale = mean ** (2 - data.family[1])
  return float(scale) if mean > 0 and np.isfinite(scale) and scale > 0 else 1.0
