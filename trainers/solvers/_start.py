"""The iterative solvers' start on large data: the optimum on a prefix of the row sample (`_sample_start`), with
the solver's own iterations and tolerance passed in as its `StartStrategy`."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from flaxzoo.trainers.solvers._sizes import CHUNK, LOOP_ROWS, START_FRACTION
from flaxzoo.trainers.solvers._weights import Weights, _by_row


@dataclasses.dataclass(frozen=True)
class StartStrategy:
  """How a solver starts on the row sample. `iterations(data, weights, l2, theta, tol, max_iter, memory) ->
  (theta, objective, n_iter, converged, memory)`; `tolerance(tol, rows)`: its tolerance on `rows` rows;
  `newton_rows`: the sample as Newton's Hessians read it (`Staged.newton_sample`), else as staged;
  `carried(memory, converged)`: what of the memory goes on to the fit over every row."""

  iterations: Callable[..., tuple]
  tolerance: Callable[[float, int], float]
  newton_rows: bool
  carried: Callable[[Any, np.ndarray], Any]


@functools.partial(jax.jit, static_argnums=(1, 2))
def _split(arrays, size: int, chunk: int):
  """The first `size` rows of each array, in chunks of `chunk` rows."""
  return [jax.tree.map(lambda v, start=start: v[start:start + chunk], arrays) for start in range(0, size, chunk)]


def _sample_start(data, chunks, l2, theta, tol_all, max_iter, strategy: StartStrategy):
  """`(theta, memory)`: each model's optimum on the first rows of the sample (`chunks.start`, weighted as
  there) where the strategy's iterations reached it, else `theta`; and what the solver learnt there of the
  curvature (Newton: the Hessian, exact on those rows, where every model reached it; L-BFGS: its curvature
  pairs). The distance to the optimum on all rows is sampling error, which a step or two over all rows
  removes."""
  weights = chunks.start
  total = weights.shape[1]
  # Many start rows are started on their first LOOP_ROWS (one program on the device). Not fewer: each
  # size is one more program to trace in a new process (a 1M x 32 fit's first: 0.8 s with 1024 too).
  sizes = [total] if total < START_FRACTION * LOOP_ROWS else [LOOP_ROWS, total]
  memory = None
  for rows in sizes:
    part = weights[:, :rows]
    mass = part.sum(axis=1, keepdims=True)
    if not np.all(mass > 0):  # a model with no weight on these first rows: not from here
      continue
    size = min(rows, CHUNK)
    sample = _sample_rows(data, rows, size, strategy.newton_rows)
    by_row = _by_row(sample, len(theta))
    with jax.enable_x64(True):
      part = (part / mass).astype(sample.dtype)
      rows_weights = [jax.device_put(part[:, i:i + size].T if by_row else part[:, i:i + size],
                                     chunks.rows[0].sharding) for i in range(0, rows, size)]
    found, _, _, converged, memory = strategy.iterations(sample, Weights(rows_weights, None, by_row, spread=True),
                                                         l2, theta, strategy.tolerance(tol_all, rows), max_iter,
                                                         memory)
    theta = np.where(converged[:, None, None], found.reshape(theta.shape), theta)
    memory = strategy.carried(memory, converged)
  return theta, memory


def _sample_rows(data, rows: int, size: int, newton_rows: bool):
  """The first `rows` rows of the sample as staged data of their own, in chunks of `size`: Newton's sample
  (float32 standardised rows for a classifier) or the sample as staged."""
  if newton_rows:
    x, y, *args = data.newton_sample()
    xs, ys = zip(*_split((x, y), rows, size))
    return dataclasses.replace(data, x=list(xs), y=list(ys), n=rows, sample=None, sample_rows=None,
                               chunk_rows=(size,) * len(xs), host=None, host_rows=None, dtype=data.newton_dtype,
                               pass_arrays=tuple(args), newton_rows=None)
  xs, ys = zip(*_split(data.sample, rows, size))
  return dataclasses.replace(data, x=list(xs), y=list(ys), n=rows, sample=None, sample_rows=None,
                             chunk_rows=(size,) * len(xs), host=None, host_rows=None)
