"""Weighted Gram matrices of `[x, y, 1]`: least squares' one pass (on the device, or from the rows where they are
on the host), and the GEMMs that the Newton Hessians share."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from flaxzoo.trainers.host_blas import in_parts, one_thread
from flaxzoo.trainers.solvers._sizes import GEMM_MODELS, OUTER_ROWS
from flaxzoo.trainers.solvers._staging import Staged
from flaxzoo.trainers.solvers._weights import chunked_weights

# `_host_grams` centres after summing the raw rows; it is used where that loses at most this factor of the
# centred sums' relative precision (the data's mean within ~70 spreads of `shift`), else the pass centres
# every row (`_gram_pass`).
RAW_CANCELLATION = 1e4
# Rows a block of `_host_grams`' products (and of the covariance's sums, `_sandwich`): a block's rows stay in the
# cache for every product of them.
HOST_BLOCK_ROWS = 4096
# The rows' marks (`row_marks`): frac(i φ) of the row index i, a sequence with no period.
GOLDEN = (5**0.5 - 1) / 2


def row_marks(start: int, stop: int) -> np.ndarray:
  """`[stop - start]`: the marks of rows `start..stop` (`GOLDEN`), the same wherever a pass computes them."""
  turns = np.arange(start, stop, dtype=np.float64) * GOLDEN
  return turns - np.floor(turns)


def marked_ends(y: np.ndarray, start: int, marked: bool = True) -> np.ndarray:
  """`[C, k + 1 (+ 1)]`: `[y, 1, marks]` of the rows from `start` (`y [C, k]`). Summed over the blocks,
  `xᵀ marked_ends` (`_host_grams`' own products of the rows) is their fingerprint: the same to the bit for the
  same rows (the same blocks, in the same order), and a change of the rows (a row's entry, a column shuffled or
  rolled) changes it but on a set of measure zero. A covariance takes the Fisher sum its fit summed where its
  rows' fingerprint is the fit's (`_sandwich`): one thin product a block, where the Gram was a second."""
  k = y.shape[1]
  ends = np.empty((len(y), k + 1 + marked))
  ends[:, :k], ends[:, k] = y, 1.0
  if marked:
    ends[:, k + 1] = row_marks(start, start + len(y))
  return ends


def _weighted_grams(z, weight, dtype=None):
  """`[K, D, D]`: `zᵀ diag(weight_k) z` for `z [C, D]`, `weight [K, C]` (>= 0); `dtype`: of the sums where
  they are one GEMM (more than GEMM_MODELS models; default z's)."""
  count, (rows, width) = weight.shape[0], z.shape
  if count <= GEMM_MODELS:
    grams = []
    for k in range(count):
      u = jax.lax.optimization_barrier(z * jnp.sqrt(weight[k])[:, None])
      grams.append(u.T @ u)
    return jnp.stack(grams)
  upper, lower = np.triu_indices(width)
  sub = min(OUTER_ROWS, rows)
  dtype = dtype or z.dtype

  def add(i, total):
    part = jax.lax.dynamic_slice_in_dim(z, i * sub, sub).astype(dtype)
    w = jax.lax.dynamic_slice_in_dim(weight, i * sub, sub, axis=1).astype(dtype)
    return total + w @ (part[:, upper] * part[:, lower])

  flat = jax.lax.fori_loop(0, rows // sub, add, jnp.zeros((count, len(upper)), dtype)).astype(z.dtype)
  full = jnp.zeros((count, width, width), z.dtype).at[:, upper, lower].set(flat)
  return full + jnp.swapaxes(full, 1, 2) * (1 - jnp.eye(width, dtype=z.dtype))[None]


@jax.jit
def _gram_pass(total, x, y, weight, shift, scale):
  """`total [K, D, D] += Zᵀ diag(w_K) Z` of `Z = [(x - shift) / scale, y, 1]` (y less its shift), `D = d + k + 1`."""
  z = jnp.concatenate([(x - shift[None, :]) / scale[None, :], y, jnp.ones((x.shape[0], 1), x.dtype)], axis=1)
  return total + _weighted_grams(jax.lax.optimization_barrier(z), weight)


def _mixed_grams(data: Staged, weights: np.ndarray, mix: np.ndarray) -> np.ndarray:
  """`[K, D, D]`: each model's Gram matrix (`_host_grams`'), model k's weights `Σ_g mix[k, g] weights[g]`, from
  the G parts' sums (linear in the weights): on the host from each part's own rows where the parts are
  disjoint (every row in one at most), else by the device pass over the parts' weights."""
  masses = weights.sum(axis=1)
  if np.any(masses <= 0) or np.any(mix @ masses <= 0):
    raise ValueError("every part of the weights and every model needs a positive weight")
  grams = None
  if data.host is not None and np.count_nonzero(weights, axis=0).max() <= 1:
    parts = [_host_grams(data, rows, part[rows])[0] for part in weights for rows in [np.flatnonzero(part)]]
    grams = None if any(g is None for g in parts) else np.asarray(parts)
  if grams is None:
    chunks = chunked_weights(dataclasses.replace(data, host=None), weights)
    size = data.d + data.k + 1
    total = jax.device_put(np.zeros((len(chunks.groups), size, size), data.dtype))
    for x, y, w in zip(*data.rows(), chunks.rows):
      total = _gram_pass(total, x, y, w, *data.args())
    grams = np.asarray(total, np.float64)[chunks.group_of]
  return np.einsum("kg,gab->kab", mix * masses[None, :], grams) / (mix @ masses)[:, None, None]


def centred_sums(raw: np.ndarray, sums: np.ndarray, total: float, shift: np.ndarray) -> np.ndarray | None:
  """`Σ w (x - shift)(x - shift)ᵀ` `[d, d]` from the raw sums `raw = Σ w x xᵀ`, `sums = Σ w x`, `total = Σ w`;
  None where centring after summing loses more than `RAW_CANCELLATION` of its precision (the rows' mean far from
  `shift` in units of their spread: then the rows must be centred before they are summed)."""
  centred = raw - np.outer(shift, sums) - np.outer(sums, shift) + total * np.outer(shift, shift)
  magnitude = np.abs(np.diagonal(raw)) + abs(total) * shift**2  # what the rounding of `centred` is relative to
  return centred if np.all(np.abs(np.diagonal(centred)) * RAW_CANCELLATION >= magnitude) else None


def _host_grams(data: Staged, rows: np.ndarray | None = None,
                weight: np.ndarray | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
  """`(gram [D, D], fingerprint [d, k + 2])`: the mean over the rows of `z zᵀ`, `z = [(x - shift) / scale, y,
  1]`, every row weighed the same (or `rows` weighed by `weight`, a copy of them), from the rows where they are
  (`data.host`): `xᵀx` of the d raw columns (one BLAS call, where XLA's CPU GEMM of the 34 columns of `z` ran
  at half the speed and the rows had to be copied to the device first: 1M x 32, 140 -> 80 ms) and `xᵀ[y, 1]`,
  centred in float64 after; the gram None where that centring would lose precision (the data's mean far from
  `shift` in units of its spread). `fingerprint`: the rows' `xᵀ marked_ends` (None for `rows`)."""
  x, y = data.host
  d, k, n = data.d, data.k, data.n
  if rows is not None:  # those rows, weighed by `weight` (a copy of them)
    x, y = np.take(x, rows, axis=0), np.take(y, rows, axis=0)
    n = float(weight.sum())
  ends = None if weight is None else marked_ends(y, 0, marked=False)

  def work(index: int, parts: int):
    xx, xe = np.zeros((d, d)), np.zeros((d, k + 1 + (weight is None)))
    # A block of rows at a time, each read from memory once for both products (memory-bound here: 1M x 32,
    # 112 -> 87 ms), every parts-th block on a thread of its own (`in_parts`); every row weighed the same, a
    # block's ends and marks made as it is read (1M rows' marks at once: 25 ms more). (Non-finite rows give
    # non-finite sums, None below: this thread's own errstate.)
    with np.errstate(invalid="ignore", over="ignore"):
      for start in range(index * HOST_BLOCK_ROWS, len(x), parts * HOST_BLOCK_ROWS):
        part = x[start:start + HOST_BLOCK_ROWS]
        if weight is None:
          xx += part.T @ part
          xe += part.T @ marked_ends(y[start:start + HOST_BLOCK_ROWS], start)
        else:
          weighted = part * weight[start:start + HOST_BLOCK_ROWS, None]
          xx += weighted.T @ part
          xe += weighted.T @ ends[start:start + HOST_BLOCK_ROWS]
    return xx, xe

  with one_thread():  # (OpenBLAS's spinning threads against a busy core: `host_blas`)
    xx, xe = (sum(v) for v in zip(*in_parts(work)))
  xy, sx = xe[:, :k], xe[:, k]
  yw = y if weight is None else y * weight[:, None]
  yy, sy = yw.T @ y, yw.sum(axis=0)
  shift, scale = data.pass_shift, data.pass_scale
  with np.errstate(invalid="ignore", over="ignore"):
    centred = centred_sums(xx, sx, n, shift)
  if centred is None:
    return None, None
  gram = np.zeros((d + k + 1, d + k + 1))
  gram[:d, :d] = centred / np.outer(scale, scale)
  gram[:d, d:d + k] = (xy - np.outer(shift, sy)) / scale[:, None]
  gram[:d, -1] = (sx - n * shift) / scale
  gram[d:d + k, d:d + k] = yy
  gram[d:d + k, -1] = sy
  gram[-1, -1] = n
  return (np.triu(gram) + np.triu(gram, 1).T) / n, (xe if weight is None else None)
