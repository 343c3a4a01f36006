"""One model's loss and gradient from float64 rows where they are on the host (`Staged.host_rows`): the passes
of the host solvers' iterations, with no copy of the rows to the device (a 1M x 32 Poisson fit: 0.54 -> 0.40 s,
its first pass no longer waiting on a 256 MB copy, each pass ~40 ms against ~60)."""

from __future__ import annotations

import numpy as np

from flaxzoo.trainers import losses as losses_lib
from flaxzoo.trainers.host_blas import in_parts, one_thread
from flaxzoo.trainers.solvers._grams import HOST_BLOCK_ROWS
from flaxzoo.trainers.solvers._staging import Staged


def host_value_grad(data: Staged, weights: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """`(loss [1], grad [1, d + 1, 1])`: `_passes._value_grad`'s weighted sums for one model `theta [1, d + 1, 1]`
  (standardised features, intercept last; logistic or a log-link family) with `weights [n]` (summing to 1),
  float64. A block of rows at a time: its linear predictor, the loss's terms (`losses`' NumPy forms) and its
  share of the gradient while the rows are in the cache, every parts-th block on a core of its own."""
  x, labels, n = data.host_rows, data.targets, data.n
  kernel = theta[0, :-1, 0] / data.pass_scale  # the standardisation folded into the parameters
  bias = theta[0, -1, 0] - data.pass_shift @ kernel

  def work(part: int, parts: int):
    loss, grad, total = 0.0, np.zeros(data.d), 0.0
    # (overflowing logits: an infinite loss, which the line search refuses, as the compiled pass's)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
      for start in range(part * HOST_BLOCK_ROWS, n, parts * HOST_BLOCK_ROWS):
        rows = x[start:start + HOST_BLOCK_ROWS]
        z = rows @ kernel + bias
        y = np.asarray(labels[start:start + HOST_BLOCK_ROWS], np.float64)  # (a GLM's float64 targets: no copy)
        row_loss, dz = _loss_and_derivative(data, z, y)
        w = weights[start:start + HOST_BLOCK_ROWS]
        residual = w * dz
        loss += float(w @ row_loss)
        grad += residual @ rows
        total += float(residual.sum())
    return loss, grad, total

  with one_thread(scipy=False):
    parts = in_parts(work)
  loss = sum(part[0] for part in parts)
  raw, total = sum(part[1] for part in parts), sum(part[2] for part in parts)
  return np.array([loss]), _standardised_grad(data, raw[None], np.array([[total]]))


def shared_value_grad(data: Staged, weights: list, by_row: bool, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """`(loss [K], grad [K, d + 1, 1])`: `_passes._value_grad_pass`' sums of K one-logit models at the same
  parameters `theta [d + 1]` (a bootstrap's resamples at the fit's optimum), in the pass dtype: one model's loss
  and derivative a row, from the staged chunks as they lie on the CPU device, summed with every model's weights
  (`weights`: a chunk's `[K, C]`, `[C, K]` if `by_row`) in one product a share of the rows on each core; no
  `[C, K]` logits (999 models on 100k x 16 rows: 0.40 -> 0.07 s)."""
  theta = np.asarray(theta, data.dtype)
  kernel = theta[:-1] / np.asarray(data.pass_scale, data.dtype)
  bias = theta[-1] - np.asarray(data.pass_shift, data.dtype) @ kernel
  xs, ys = data.rows()
  chunks = [(np.asarray(x), np.asarray(y), np.asarray(w)) for x, y, w in zip(xs, ys, weights)]

  def work(part: int, parts: int):
    sums = 0.0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # (as `host_value_grad`)
      for x, labels, w in chunks:
        rows = slice(part * len(x) // parts, (part + 1) * len(x) // parts)
        z = x[rows] @ kernel + bias
        row_loss, dz = _loss_and_derivative(data, z, labels[rows].astype(z.dtype))
        terms = np.concatenate([row_loss[:, None], dz[:, None], dz[:, None] * x[rows]], axis=1)  # [C, 2 + d]
        sums = sums + (w[rows].T @ terms if by_row else w[:, rows] @ terms)
    return sums

  with one_thread(scipy=False):
    sums = sum(in_parts(work)).astype(np.float64)
  return sums[:, 0], _standardised_grad(data, sums[:, 2:], sums[:, 1:2])


def _loss_and_derivative(data: Staged, z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """`(loss, its derivative in z)` a row: the log link's or the logistic's, `losses`' NumPy forms."""
  if data.family:
    loss, dz, _ = losses_lib.log_link_parts(z, y, data.family[1], np)
  else:
    loss, dz, _ = losses_lib.logistic_parts(z, y, np)
  return loss, dz


def _standardised_grad(data: Staged, raw: np.ndarray, total: np.ndarray) -> np.ndarray:
  """`[K, d + 1, 1]`: the gradient over the standardised features and the intercept from the raw rows' `xᵀr`
  `[K, d]` and `Σr` `[K, 1]` (the standardisation folded in: `(xᵀr - shift Σr) / scale`)."""
  with np.errstate(over="ignore", invalid="ignore"):
    grad = (raw - data.pass_shift * total) / data.pass_scale
  return np.concatenate([grad, total], axis=1)[:, :, None]
