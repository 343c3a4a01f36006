"""A fit's answer (`Solution`) and the map between the raw features and the standardised ones it is solved in."""

from __future__ import annotations

import dataclasses

import numpy as np

from flaxzoo.trainers.solvers._staging import Staged


@dataclasses.dataclass
class Solution:
  """K fitted models: `coef [K, d, k]`, `intercept [K, k]` (float64), `n_iter [K]` (passes that
  moved the model), `converged [K]`, `objective [K]` (the weighted mean loss plus the penalty)."""

  coef: np.ndarray
  intercept: np.ndarray
  n_iter: np.ndarray
  converged: np.ndarray
  objective: np.ndarray
  solver: str
  # Least squares' normal equation: `{"gram" [K, D, D], "shift", "scale", "y_shift"}`, each model's weighted mean
  # of `z zᵀ`, `z = [(x - shift) / scale, y - y_shift, 1]` (`D = d + k + 1`): its covariance needs no other pass.
  moments: dict | None = None


def _to_scaled(data: Staged, start, count) -> np.ndarray:
  theta = np.zeros((count, data.d + 1, data.k))
  if start is not None:
    coef, intercept = (np.asarray(v, np.float64) for v in start)
    theta[:, :-1] = coef * data.scale[None, :, None]
    theta[:, -1] = intercept + np.einsum("d,kdc->kc", data.shift, coef)
  return theta


def _from_scaled(data: Staged, w_s: np.ndarray, b_s: np.ndarray):
  coef = w_s / data.scale[None, :, None]
  return coef, b_s - np.einsum("d,kdc->kc", data.shift, coef)


def _finish(data, theta, loss, n_iter, converged, solver) -> Solution:
  coef, intercept = _from_scaled(data, theta[:, :-1], theta[:, -1])
  return Solution(coef, intercept, n_iter, converged, loss, solver)
