"""Example weights, checked in one place: every fit (the solvers, a sweep, the robust fits) asks `checked_weights`."""

from __future__ import annotations

import numpy as np


def checked_weights(weights: np.ndarray, positive: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """`(weights [K, n], total [K, 1])`: the one check of the models' weights (finite, >= 0, and with `positive`
  a positive sum per model), scaled by their largest entry where they are finite but their sum overflows."""
  total = weights.sum(axis=1, keepdims=True, dtype=np.float64)
  if not np.all(np.isfinite(total)) and np.all(np.isfinite(weights)):  # finite, but their sum overflows
    weights = weights / np.max(weights, axis=1, keepdims=True)
    total = weights.sum(axis=1, keepdims=True, dtype=np.float64)
  # A finite sum of entries >= 0 has every entry finite (two passes over the weights, not four).
  if not (np.all(np.isfinite(total)) and weights.min() >= 0):
    raise ValueError("weights must be finite and >= 0")
  if positive and np.any(total <= 0):
    empty = np.flatnonzero(total[:, 0] <= 0).tolist()
    raise ValueError(f"every model needs at least one example of positive weight; models {empty} have none")
  return weights, total
