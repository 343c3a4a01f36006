"""Each model's example weights, checked once and laid out as the passes read them (`Weights`)."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from flaxzoo.trainers.host_blas import in_row_shares
from flaxzoo.trainers.solvers._sizes import FUSED_CHUNKS, GEMM_MODELS
from flaxzoo.trainers.solvers._staging import Staged, sample_size, start_rows
from flaxzoo.trainers.weights import checked_weights


@dataclasses.dataclass
class Weights:
  """Each model's example weights on the device: `rows`, per chunk `[K, C]` summing to 1 per model (`[C, K]`
  where `by_row`); `sample` `[K, S]` on the Hessian's rows (also summing to 1), or None (the Hessian reads
  every row)."""

  rows: list[jax.Array]
  sample: jax.Array | None
  by_row: bool = False
  uniform: bool = False  # every model weighs every row the same
  # `[K, R]` on the first R rows of the sample (float64 on the host, as given), where the iterative solvers
  # first solve there (`start_rows`); None where they do not (or a model has no weight on those rows).
  start: np.ndarray | None = None
  # Least squares: `rows` hold the weights of `groups [G]` (a model each of the sets of models with equal
  # weights); `group_of [K]`: each model's set. Else every model (G = K).
  groups: np.ndarray | None = None
  group_of: np.ndarray | None = None
  # The rows are the row sample's (every prefix spread over the data): a prefix may stand for them all.
  spread: bool = False
  # One model on float64 rows on the host (`Staged.host_rows`; logistic or a log-link family) in more chunks than
  # one device program takes: its weights `[n]`, as `rows` hold them, for the passes that read the rows there
  # (`_host_passes`).
  host: np.ndarray | None = None


def _by_row(data: Staged, count: int) -> bool:
  """Many binary models: the passes work on `[rows, models]` arrays (see `_value_grad`), weights too."""
  return data.loss == "logistic" and count > GEMM_MODELS


def _aligned_zeros(shape, dtype) -> np.ndarray:
  """`np.zeros` at a 64-byte boundary: the CPU device then takes the array as it is (`device_put` without a
  copy; numpy's own large arrays sit 16 bytes past one). Never written after it is put."""
  size = int(np.prod(shape)) * np.dtype(dtype).itemsize
  raw = np.zeros(size + 64, np.uint8)
  offset = -raw.ctypes.data % 64
  return raw[offset:offset + size].view(dtype).reshape(shape)


def _columns(weights: np.ndarray, rows: np.ndarray) -> np.ndarray:
  """`weights[:, rows]`, gathered along the memory's rows (`[rows, models]` memory, as the CV estimators'
  weights: np.take along the strided axis took 15 ms for 16384 of 100k rows x 50 models, this 1 ms)."""
  return weights.T[rows].T if weights.flags.f_contiguous and not weights.flags.c_contiguous else weights[:, rows]


def _transposed(weights_t: np.ndarray, inverse_t: np.ndarray, out: np.ndarray) -> None:
  """`out [C, K] = weights_t * inverse_t`, a share of the rows on each core where they are many
  (`host_blas.in_row_shares`; `[models, rows]` memory read across: a bootstrap's 999 x 100k counts, 0.40 -> 0.24
  s on two)."""
  in_row_shares(lambda start, stop: np.multiply(weights_t[start:stop], inverse_t, out=out[start:stop],
                                                casting="unsafe"), out)


def chunked_weights(data: Staged, weights: np.ndarray, with_sample: bool = True, with_start: bool = True) -> Weights:
  """`weights [K, n]` (float64, or float32 as given) → `Weights` in the pass dtype; `with_sample`, `with_start`:
  the weights of the Hessian's row sample and of the start's rows, where a solve reads them (not where every step
  takes a given Hessian, or the models start from a given point: a bootstrap's 999 x 100k counts, 150 ms)."""
  weights = weights if isinstance(weights, np.ndarray) and weights.dtype == np.float32 else np.asarray(weights,
                                                                                                       np.float64)
  if weights.ndim != 2 or weights.shape[1] != data.n:
    raise ValueError(f"weights must be [models, {data.n}], got shape {weights.shape}")
  weights, total = checked_weights(weights)
  groups, group_of = np.arange(len(weights)), np.arange(len(weights))
  if data.loss == "mse" and len(weights) > 1:
    groups, group_of = _shared(weights)
  inverse = 1.0 / total
  out = []
  by_row = _by_row(data, len(weights))
  every = len(groups) == len(weights) and np.array_equal(groups, np.arange(len(weights)))
  rows_weights, rows_inverse = (weights, inverse) if every else (weights[groups], inverse[groups])
  sharding = None
  if data.sharding is not None:  # rows split as the data's, models whole
    spec = (*data.sharding.spec, None) if by_row else (None, *data.sharding.spec)
    sharding = jax.sharding.NamedSharding(data.sharding.mesh, jax.sharding.PartitionSpec(*spec))
  with jax.enable_x64(True):
    for start, rows, chunk_rows in data.bounds:
      if by_row:  # (from `[rows, models]` memory, as the CV estimators give it, a plain copy)
        part = _aligned_zeros((chunk_rows, len(weights)), data.dtype)
        _transposed(weights.T[start:start + rows], inverse.T, part[:rows])
      else:
        part = _aligned_zeros((len(rows_weights), chunk_rows), data.dtype)
        np.multiply(rows_weights[:, start:start + rows], rows_inverse, out=part[:, :rows], casting="unsafe")
      out.append(jax.device_put(part, sharding))
    sample = None
    size = sample_size(data, len(weights)) if with_sample else 0
    if size:
      part = _columns(weights, data.sample_rows[:size]) * inverse
      mass = part.sum(axis=1, keepdims=True)
      # A model with no weight on the sampled rows (a fold that misses them all) needs the whole Hessian.
      if np.all(mass > 0):
        sample = jax.device_put((part / mass).astype(data.newton_dtype), sharding)
    start = None
    size = start_rows(data) if with_start else 0
    if size:
      part = _columns(weights, data.sample_rows[:size])
      if np.all(part.sum(axis=1) > 0):
        start = part
  # Only the host sums of least squares ask (a K x n comparison the classifiers need not pay).
  uniform = data.host is not None and bool(np.all(weights == weights[:1, :1]))
  # (on one or two chunks, up to 131072 rows, the compiled passes are as fast, the rows' copy ~10 ms: 100k x 32,
  # LinearClassifierCV's elastic-net refits 0.69 s compiled, 0.72 on the host)
  one_on_host = (data.host_rows is not None and data.loss != "mse" and data.k == 1 and len(weights) == 1
                 and len(data.chunk_rows) > FUSED_CHUNKS)
  host = (weights[0] * inverse[0]).astype(data.dtype) if one_on_host and not by_row else None
  return Weights(out, sample, by_row, uniform, start, groups, group_of, host=host)


def _shared(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """`(groups [G], group_of [K])`: the first model of each set of models with equal weights, and each model's
  set (a path of P penalties x F folds: F Gram passes, not P F). Found by a random projection, then checked."""
  fingerprint = weights @ np.random.default_rng(0).uniform(0.5, 1.5, weights.shape[1])
  _, first, group_of = np.unique(fingerprint, return_index=True, return_inverse=True)
  if not all(np.array_equal(weights[j], weights[first[g]]) for j, g in enumerate(group_of)):
    return np.arange(len(weights)), np.arange(len(weights))
  return first, group_of
