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
        if data.family:
          row_loss, dz, _ = losses_lib.log_link_parts(z, y, data.family[1], np)
        else:
          row_loss, dz, _ = losses_lib.logistic_parts(z, y, np)
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
  with np.errstate(over="ignore", invalid="ignore"):
    grad = np.append((raw - data.pass_shift * total) / data.pass_scale, total)
  return np.array([loss]), grad.reshape(1, data.d + 1, 1)
