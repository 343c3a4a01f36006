"""The bootstrap of an affine model's `[intercept, coef]`: every resample one model of one exact solve.

>>> resamples = resampled_fits(x, y, "logistic", w, l2_at, params, 999, seed)   # [999, d + 1]

A resample's rows are drawn with replacement (with `groups`: whole clusters, drawn with replacement among them),
its model fitted with the resample's counts times the sample weights as example weights: K = `n_resamples` models
in one `solvers.solve` (the many-model passes that `Sweep` runs), each started from the fit's own optimum.
"""

from __future__ import annotations

import numbers

import numpy as np

from flaxzoo.trainers import solvers
from flaxzoo.trainers.loss_names import split_loss


def resample_counts(n: int, count: int, random_state, groups=None) -> np.ndarray:
  """`[count, n]` float32: how often each row is drawn in each resample (with `groups [n]`: its cluster's)."""
  if not isinstance(count, numbers.Integral) or isinstance(count, bool) or count < 2:
    raise ValueError(f"n_resamples must be an integer >= 2, got {count!r}")
  rng = np.random.default_rng(random_state)
  codes, size = (None, n)
  if groups is not None:
    from flaxzoo.trainers.covariance import group_codes

    codes, size = group_codes(groups, n)
  counts = np.empty((count, n), np.float32)
  for k in range(count):  # (a resample at a time: one [count, n] array of draws took 0.8 GB and 3 s)
    drawn = np.bincount(rng.integers(0, size, size, dtype=np.int32), minlength=size)
    counts[k] = drawn if codes is None else drawn[codes]
  return counts


def resampled_fits(x, y, loss: str, weights, l2_at, params, n_resamples: int, random_state, groups=None,
                   tol: float = 1e-4, max_iter: int = 100) -> np.ndarray:
  """`[n_resamples, d + 1]`: `[intercept, coef]` of each resample's fit (`l2_at(total weight)`: the fit's l2),
  all of them one `solvers.solve`, its passes in float32 where many Newton fits allow it (`pass_dtype`, as the
  CV estimators' folds: a resample's spread dwarfs float32's rounding)."""
  counts = resample_counts(len(x), n_resamples, random_state, groups)
  counts *= np.asarray(weights, np.float32)[None, :]
  totals = counts.sum(axis=1, dtype=np.float64)
  if np.any(totals <= 0):
    raise ValueError("a resample drew no row of positive weight: too few rows or groups for the bootstrap")
  l2 = np.asarray([l2_at(t) for t in totals])
  d = x.shape[1]
  params = np.asarray(params, np.float64)
  start = (np.broadcast_to(params[1:, None], (n_resamples, d, 1)).copy(), np.full((n_resamples, 1), params[0]))
  name = split_loss(loss)[0]
  if name in solvers.ROBUST_LOSSES:
    raise ValueError(f"the bootstrap refits least squares, logistic and log-link GLMs, not {loss!r}")
  num_classes = 2 if name == "logistic" else None
  dtype = solvers.pass_dtype(x, name, 1, n_resamples, "auto", tol)
  data = solvers.stage(x, y, loss, num_classes, dtype=dtype)
  fit = solvers.solve(data, counts, l2, "auto", tol, max_iter, start=start)
  return np.concatenate([fit.intercept[:, :1], fit.coef[:, :, 0]], axis=1)
