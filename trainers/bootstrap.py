"""The bootstrap of an affine model's `[intercept, coef]`: every resample one model of one exact solve.

>>> resamples = resampled_fits(x, y, "logistic", w, l2_at, params, 999, seed)   # [999, d + 1]

A resample's rows are drawn with replacement (with `groups`: whole clusters, drawn with replacement among them),
its model fitted with the resample's counts times the sample weights as example weights: K = `n_resamples` models
in one `solvers.solve` (the many-model passes that `Sweep` runs), each started from the fit's own optimum, whose
Newton steps take the fit's own Hessian (the chord method: a resample's optimum is ~1/√n from the fit's, and so
is its Hessian from the fit's: each step closes ~30x of the distance, with no Hessian pass over 999 models).
"""

from __future__ import annotations

import numbers

import numpy as np

from flaxzoo.trainers import solvers
from flaxzoo.trainers.host_blas import in_parts
from flaxzoo.trainers.loss_names import split_loss

# Resamples drawn by one generator (spawned from `random_state`, one a block): the same draws on any number of
# threads.
DRAW_BLOCK = 64
# The chord steps a resample's refit takes before Newton's own (`solve(hessian=)`): each shrinks the gradient
# ~30x, and 2 or 3 reach the fit's tolerance.
CHORD_STEPS = 8


def resample_counts(n: int, count: int, random_state, groups=None, weights=None) -> tuple[np.ndarray, np.ndarray]:
  """`(counts [count, n] float32, totals [count] float64)`: how often each row is drawn in each resample (with
  `groups [n]`: its cluster's), times `weights [n]` where given, and each resample's sum of them, made while its
  row is in the cache (a pass over the 999 x 100k counts each took 85-100 ms). Blocks of `DRAW_BLOCK` resamples
  are drawn on the cores (`in_parts`), each by a generator of its own. (The passes' `[rows, models]` layout is
  made by `chunked_weights`' one copy: drawn in it, the counts took a transposing write more, 0.25 s for 999 x
  100k.)"""
  if not isinstance(count, numbers.Integral) or isinstance(count, bool) or count < 2:
    raise ValueError(f"n_resamples must be an integer >= 2, got {count!r}")
  codes, size = (None, n)
  if groups is not None:
    from flaxzoo.trainers.covariance import group_codes

    codes, size = group_codes(groups, n)
  generators = np.random.default_rng(random_state).spawn(-(-count // DRAW_BLOCK))
  counts, totals = np.empty((count, n), np.float32), np.empty(count)
  weights = None if weights is None else np.asarray(weights, np.float32)

  def draw(part: int, parts: int):
    for block in range(part, len(generators), parts):
      low, high = block * DRAW_BLOCK, min((block + 1) * DRAW_BLOCK, count)
      drawn = generators[block].integers(0, size, (high - low, size), dtype=np.int32)
      for j in range(high - low):
        times = np.bincount(drawn[j], minlength=size)
        row = counts[low + j]
        row[:] = times if codes is None else times[codes]
        if weights is not None:
          row *= weights
        totals[low + j] = row.sum(dtype=np.float64)

  in_parts(draw)
  return counts, totals


def resampled_fits(x, y, loss: str, weights, l2_at, params, n_resamples: int, random_state, groups=None,
                   tol: float = 1e-4, max_iter: int = 100) -> np.ndarray:
  """`[n_resamples, d + 1]`: `[intercept, coef]` of each resample's fit (`l2_at(total weight)`: the fit's l2),
  all of them one `solvers.solve`, its passes in float32 where many Newton fits allow it (`pass_dtype`, as the
  CV estimators' folds: a resample's spread dwarfs float32's rounding). Newton's steps take the fit's own
  Hessian (the chord method: no Hessian pass, `solve(hessian=)`); a resample it leaves short of `tol` after
  `CHORD_STEPS` goes on with Newton's own."""
  weights = np.asarray(weights, np.float64)
  counts, totals = resample_counts(len(x), n_resamples, random_state, groups,
                                   None if np.all(weights == 1) else weights)  # (unit weights: no product)
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
  hessian = None if name == "mse" else _fit_hessian(x, y, loss, weights, params, l2_at(float(np.sum(weights))))
  fit = solvers.solve(data, counts, l2, "auto", tol, CHORD_STEPS if hessian is not None else max_iter, start=start,
                      hessian=hessian)
  short = np.flatnonzero(~fit.converged)
  if len(short):  # (Newton's own Hessians, from where the chord left them)
    rest = solvers.solve(data, counts[short], l2[short], "auto", tol, max_iter,
                         start=(fit.coef[short], fit.intercept[short]))
    fit.coef[short], fit.intercept[short] = rest.coef, rest.intercept
  return np.concatenate([fit.intercept[:, :1], fit.coef[:, :, 0]], axis=1)


def _fit_hessian(x, y, loss: str, weights, params, l2: float) -> np.ndarray:
  """`[d + 1, d + 1]`: the fit's loss Hessian at its optimum `params` (`[intercept, coef]`), of the weighted mean
  loss over the standardised features (intercept last): Fisher's curvature, as Newton's passes take it."""
  from flaxzoo.trainers.covariance import stage_for_covariance

  data = stage_for_covariance(x, y, loss)
  coef = params[1:]
  theta = np.append(coef * data.scale, params[0] + data.shift @ coef)
  weight = np.asarray(weights, np.float64)
  return solvers.sandwich_sums(data, theta, weight, observed=False)["fisher"] / weight.sum()
