"""The bootstrap of an affine model's `[intercept, coef]`: every resample one model of one exact solve.

>>> resamples = resampled_fits(x, y, "logistic", w, l2_at, params, 999, seed)   # [999, d + 1]

A resample's rows are drawn with replacement (with `groups`: whole clusters, drawn with replacement among them),
its model fitted with the resample's counts times the sample weights as example weights: K = `n_resamples` models
in one `fit_affine` (the many-model passes that `Sweep` runs), each started from the fit's own optimum.
"""

from __future__ import annotations

import numbers

import numpy as np

from flaxzoo.trainers.exact import fit_affine


def resample_counts(n: int, count: int, random_state, groups=None) -> np.ndarray:
  """`[count, n]` float64: how often each row is drawn in each resample (with `groups [n]`: its cluster's)."""
  if not isinstance(count, numbers.Integral) or isinstance(count, bool) or count < 2:
    raise ValueError(f"n_resamples must be an integer >= 2, got {count!r}")
  rng = np.random.default_rng(random_state)
  if groups is not None:
    from flaxzoo.trainers.covariance import group_codes

    codes, size = group_codes(groups, n)
  else:
    codes, size = None, n
  draws = rng.integers(0, size, size=(count, size), dtype=np.int64)
  draws += (np.arange(count, dtype=np.int64) * size)[:, None]
  counts = np.bincount(draws.reshape(-1), minlength=count * size).reshape(count, size).astype(np.float64)
  return counts if codes is None else counts[:, codes]


def resampled_fits(x, y, loss: str, weights, l2_at, params, n_resamples: int, random_state, groups=None,
                   tol: float = 1e-4, max_iter: int = 100) -> np.ndarray:
  """`[n_resamples, d + 1]`: `[intercept, coef]` of each resample's fit (`l2_at(total weight)`: the fit's l2)."""
  n = len(x)
  counts = resample_counts(n, n_resamples, random_state, groups)
  counts *= np.asarray(weights, np.float64)[None, :]
  totals = counts.sum(axis=1)
  if np.any(totals <= 0):
    raise ValueError("a resample drew no row of positive weight: too few rows or groups for the bootstrap")
  l2 = np.asarray([l2_at(t) for t in totals])
  d = x.shape[1]
  params = np.asarray(params, np.float64)
  start = (np.broadcast_to(params[1:, None], (n_resamples, d, 1)).copy(), np.full((n_resamples, 1), params[0]))
  fit = fit_affine(x, y, loss, counts, l2, None, "auto", tol, max_iter, start,
                   2 if loss == "logistic" else None)
  return np.concatenate([fit.intercept[:, :1], fit.coef[:, :, 0]], axis=1)
