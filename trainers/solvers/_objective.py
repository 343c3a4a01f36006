"""The objective of K models on the host: every chunk's pass summed, the penalty added, in float64."""

from __future__ import annotations

import jax
import numpy as np

from flaxzoo.trainers.solvers._host_passes import host_value_grad, shared_value_grad
from flaxzoo.trainers.solvers._passes import _hessian_pass, _newton_pass, _prefix, _value_grad_pass


def _objective_parts(data, chunks, theta, l2, penalty_diag, hessian: bool, shared: bool = False):
  """`(objective [K], gradient [K, p], Hessian [K, p, p] or None)` at `theta`, float64 on the host: the
  loss and gradient from every row (one model's from the rows on the host where `chunks.host` holds its
  weights, `host_value_grad`); the Hessian from every row, or from `data.sample` (large data). `shared`: every
  model's `theta` is the same one-logit model's (`shared_value_grad`, on a CPU device)."""
  count = len(theta)
  hessian_total = None
  if shared and not hessian and data.k == 1 and data.loss != "mse" and data.sharding is None and \
      jax.default_backend() == "cpu":  # one model's rows, every model's weights
    totals = shared_value_grad(data, chunks.rows, chunks.by_row, theta[0, :, 0])
  elif chunks.host is not None and not (hessian and chunks.sample is None):  # one model, rows on the host
    totals = host_value_grad(data, chunks.host, theta)
  else:  # a program a chunk
    p = (data.d + 1) * data.k
    args = data.args()
    theta_d = jax.device_put(theta) if len(data.chunk_rows) > 1 else theta  # (numpy: put by the call)
    totals = (np.zeros(count, data.dtype), np.zeros((count, data.d + 1, data.k), data.dtype))
    if hessian and chunks.sample is None:  # every row's Hessian, in the same program
      totals = totals + (np.zeros((count, p, p), data.dtype),)
      for x, y, w in zip(*data.rows(), chunks.rows):
        totals = _newton_pass(totals, theta_d, x, y, w, *args, by_row=chunks.by_row, family=data.family)
      totals, hessian_total = totals[:2], totals[2]
    else:
      for x, y, w in zip(*data.rows(), chunks.rows):
        totals = _value_grad_pass(totals, theta_d, x, y, w, *args, by_row=chunks.by_row, family=data.family)
  if hessian and hessian_total is None:
    hessian_total = _sample_hessian(data, chunks, theta)
  loss = np.asarray(totals[0], np.float64) + 0.5 * np.sum(penalty_diag * theta**2, axis=(1, 2))
  grad = np.asarray(totals[1], np.float64).reshape(count, -1) + (penalty_diag * theta).reshape(count, -1)
  return loss, grad, (None if hessian_total is None else np.asarray(hessian_total))


def _sample_hessian(data, chunks, theta) -> np.ndarray:
  """`[K, p, p]`: the Hessians of the loss at `theta` from `data.sample`'s rows."""
  p = (data.d + 1) * data.k
  x, y, *args = data.newton_sample()
  size = chunks.sample.shape[1]
  x, y = (x, y) if size == len(data.sample_rows) else _prefix((x, y), size)
  total = np.zeros((len(theta), p, p), data.newton_dtype)
  return np.asarray(_hessian_pass(total, theta, x, y, chunks.sample, *args, family=data.family))
