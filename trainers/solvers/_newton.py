"""Newton (IRLS for the GLMs) on the host: the iterations (`_newton_iterations`, one program on the device where
the rows are few) and the fit from a row sample's optimum (`_newton`)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from flaxzoo.trainers.solvers._device_newton import _newton_loop, _newton_rows
from flaxzoo.trainers.solvers._line_search import minimise
from flaxzoo.trainers.solvers._newton_step import _newton_direction, _penalty_diagonal, _project_classes
from flaxzoo.trainers.solvers._objective import _objective_parts, _sample_hessian
from flaxzoo.trainers.solvers._optimality import largest_violation
from flaxzoo.trainers.solvers._sizes import FUSED_CHUNKS, LOOP_ROWS, START_TOL
from flaxzoo.trainers.solvers._solution import Solution, _finish
from flaxzoo.trainers.solvers._start import StartStrategy, _sample_start


def _newton(data, chunks, l2, theta, tol, max_iter, hessian=None) -> Solution:
  """Newton from `theta`; on large data from the optimum on a row sample first, whose Hessian there
  (exact on those rows) takes the first step over all rows where it has as many rows as the Hessian
  sample (a 1M-row logistic fit: 65536 start rows, a log link's 8192; 50 fold models on 100k rows: 8192, and
  the sample's 32768 take it: its steps shrink the gradient ~20x, and 2 steps reach scikit-learn's tolerance,
  not 3)."""
  if hessian is not None:  # the chord method: every step with the given Hessian (`_newton_iterations`)
    theta, loss, n_iter, converged, _ = _newton_iterations(data, chunks, l2, theta, tol, max_iter, hessian, True)
    return _finish(data, theta, loss, n_iter, converged, "newton")
  if chunks.start is not None:
    if data.newton_dtype == np.float64:
      # Float64 Hessians (a log link's on float64 rows) start on the sample's first LOOP_ROWS rows only: on more
      # (n / 8, 16384-131072) they cost as much as a pass over every row, and saved none (Poisson, Gamma, Tweedie
      # on 150k-2M rows: the same passes in 15 cases of 18, up to 35% less time; docs/performance.md). A
      # classifier's are float32 (`Staged.newton_sample`), cheap enough to take both stages.
      chunks = dataclasses.replace(chunks, start=chunks.start[:, :LOOP_ROWS])
    theta, hessian = _sample_start(data, chunks, l2, theta, tol, max_iter, NEWTON_START)
    if chunks.sample is not None and chunks.start.shape[1] < chunks.sample.shape[1]:
      hessian = None
  theta, loss, n_iter, converged, _ = _newton_iterations(data, chunks, l2, theta, tol, max_iter, hessian)
  return _finish(data, theta, loss, n_iter, converged, "newton")


def _newton_iterations(data, chunks, l2, theta, tol, max_iter, hessian=None, chord: bool = False):
  """`(theta, objective, n_iter, converged, hessian)` after Newton from `theta` (all `[K, ...]`); `hessian`
  `[K, p, p]` (of the loss, penalty excluded) takes the first step where the Hessian comes from a row sample,
  and the last one is returned. `chord`: `hessian` takes every step, and no pass makes one (the chord method:
  linear convergence at the rate of its distance from each model's own Hessian, for many models near the
  optimum whose Hessian it is: a bootstrap's resamples at the fit's, ~3% a step)."""
  count = len(theta)
  penalty = _penalty_diagonal(data, l2)
  if chord:  # (the models start at one point, the optimum whose Hessian it is: one model's pass weighs them all)
    first = [True]

    def evaluate(t):
      shared, first[0] = first[0] and bool(np.all(t == t[:1])), False
      return _objective_parts(data, chunks, t, l2, penalty, False, shared)

    return minimise(theta, evaluate, _direction(data, penalty, lambda theta, given: hessian), largest_violation_of,
                    tol, max_iter, data.dtype)
  if len(data.chunk_rows) == 1 and data.chunk_rows[0] <= LOOP_ROWS and chunks.sample is None:  # on the device
    (x,), (y,) = data.rows()
    out = _newton_loop(theta, x, y, chunks.rows[0], *data.args(), penalty,
                       tol, max_iter, by_row=chunks.by_row, family=data.family, spread=chunks.spread)
    return tuple(np.asarray(v) for v in out)
  # From a row sample, the Hessian comes in a pass of its own, only where a step follows (not at
  # rejected or final points); from every row, in the same pass as the gradient.
  separate = chunks.sample is not None
  given = hessian if separate else None
  if len(data.chunk_rows) <= FUSED_CHUNKS:  # on the device, as one program
    xs, ys = data.rows()
    size = chunks.sample.shape[1] if separate else 0
    sample = (*data.newton_sample(), chunks.sample) if separate else None
    p = (data.d + 1) * data.k
    hessian_dtype = data.newton_dtype if separate else data.dtype
    out = _newton_rows(theta, tuple(xs), tuple(ys), tuple(chunks.rows), *data.args(), penalty, tol, max_iter, sample,
                       np.zeros((count, p, p), hessian_dtype) if given is None else given, given is not None,
                       by_row=chunks.by_row, family=data.family, sample_size=size)
    return tuple(np.asarray(v) for v in out)
  evaluate = lambda t: _objective_parts(data, chunks, t, l2, penalty, not separate)

  def hessian_at(theta, hessian):
    nonlocal given
    if separate:  # the sample's Hessian at the iterate (the given one first)
      hessian = _sample_hessian(data, chunks, theta) if given is None else given
      given = None
    return hessian

  return minimise(theta, evaluate, _direction(data, penalty, hessian_at), largest_violation_of, tol, max_iter,
                  data.dtype)


def largest_violation_of(grad, _theta):
  return largest_violation(grad)


def _direction(data, penalty, hessian_at):
  """`minimise`'s direction: the Newton step with `hessian_at(theta, the pass's Hessian or None)`."""
  count = len(penalty)

  def direction(theta, value, grad, hessian):
    hessian = hessian_at(theta, hessian)
    step, finite = _newton_direction(grad, hessian, penalty.reshape(count, -1), rows=max(data.chunk_rows))
    step = _project_classes(np.where(np.asarray(finite)[:, None], np.asarray(step), grad), data.k)
    return step, np.sum(grad * step, axis=1), np.ones(count, bool), hessian  # slope > 0: -step descends

  return direction


# Newton's start: the optimum on R rows is ~1/√R from all rows' (in gradient units of the standardised
# features), and a tenth of that is close enough to start from (the full rows' steps remove the rest); its
# Hessian there takes the first step where every model reached the optimum.
NEWTON_START = StartStrategy(_newton_iterations, lambda tol, rows: max(tol, START_TOL / math.sqrt(rows)), True,
                             lambda hessian, converged: hessian if converged.all() else None)
