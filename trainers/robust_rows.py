"""What Huber and quantile regression share: their rows (weights, standardised features) and the fit record.

Both run in float64 on the host, in standardised features (shift and scale from the weighted rows; the
answer mapped back), with one weighted Gram matrix `Zᵀ D Z` a iteration, `Z = [z, 1]`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from flaxzoo.trainers.standardisation import steadied
from flaxzoo.trainers.weights import checked_weights


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


def standardised(x: np.ndarray, v: np.ndarray):
  """`(Z [n, d + 1], shift [d], scale [d])`: `Z = [(x - shift) / scale, 1]` with the weighted mean and
  standard deviation (`v` sums to 1). A constant column (its spread at the rounding of its mean: the weighted
  mean of a column of ones is not exactly 1) is all 0 in Z, with scale O(1): not a copy of the intercept."""
  n, d = x.shape
  shift = v @ x
  z = np.empty((n, d + 1))  # one allocation, filled in place: 200k x 64 rows are not copied three times
  centred = np.subtract(x, shift, out=z[:, :d])
  scale = np.sqrt(np.maximum(v @ centred**2 if n * d <= 1 << 20 else np.einsum("i,ij,ij->j", v, centred, centred),
                             0.0))
  constant, _, scale = steadied(shift, scale)
  centred /= scale
  centred[:, constant] = 0.0
  z[:, d] = 1.0
  return z, shift, scale


def usable_rows(x, y, weight):
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64).reshape(-1)
  weight = np.ones(len(y)) if weight is None else np.asarray(weight, np.float64).reshape(-1)
  if len(x) != len(y) or len(weight) != len(y):
    raise ValueError(f"x, y and weight differ in rows: {len(x)}, {len(y)}, {len(weight)}")
  checked_weights(weight[None])
  keep = weight > 0  # rows of weight 0 change nothing (and the LP's bounds 0 <= a <= 0 would pin them)
  if keep.all():  # (no copy of the rows)
    return x, y, weight
  return x[keep], y[keep], weight[keep]


def pinball(residual, weight, q):
  """`Σ weight ρ_q(residual)`, the quantile loss."""
  return float(weight @ np.where(residual >= 0, q * residual, (q - 1) * residual))
