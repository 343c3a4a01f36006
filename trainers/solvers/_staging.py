"""The training rows on the device, once: `stage` puts them in chunks with their standardisation, targets and
row sample (`Staged`), which every pass of every solver reads."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flaxzoo.trainers import losses as losses_lib
from flaxzoo.trainers.loss_names import GLM_FAMILIES, family_of, power_of, split_loss
from flaxzoo.trainers.magnitudes import power_of_two_units
from flaxzoo.trainers.solvers._sizes import (
  MIN_START_ROWS,
  NEWTON_MAX_PARAMS,
  START_FRACTION,
  START_MAX_ROWS,
  TAIL_STEP,
  bucket,
  hessian_cap,
  hessian_rows,
)
from flaxzoo.trainers.standardisation import SHIFT_ROWS, steadied


@dataclasses.dataclass
class Staged:
  """Training rows on the device in chunks: what every pass reads.

  `x` `[C, d]` chunks (standardised inside the pass with `shift`, `scale` `[d]`), `y` `[C, k]` float
  targets (MSE, less `y_shift` `[k]`, subtracted in float64 on the host) or `[C]` int32 labels, `n` real
  rows (the rest padding).
  """

  x: list[jax.Array] | None  # None until a pass needs them (`rows()`)
  y: list[jax.Array] | None
  n: int
  d: int
  k: int
  loss: str
  dtype: Any
  shift: np.ndarray
  scale: np.ndarray
  y_shift: np.ndarray
  sharding: Any = None
  # Large data: `(x [S, d], labels [S])`, every (n / S)-th row, and their indices: the Newton Hessian's rows.
  sample: tuple[jax.Array, jax.Array] | None = None
  sample_rows: np.ndarray | None = None
  # What the passes subtract and divide by: `shift`, `scale` (float64 rows), or 0 and 1 (float32 rows,
  # standardised when staged).
  pass_shift: np.ndarray | None = None
  pass_scale: np.ndarray | None = None
  chunk_rows: tuple[int, ...] = ()
  # Least squares on float64 rows on one device: `(x [n, d], y - y_shift [n, k])` as given, for
  # `_host_grams`; the chunks are then put on the device only if a pass needs them.
  host: tuple[np.ndarray, np.ndarray] | None = None
  put: Any = dataclasses.field(default=None, repr=False)
  pass_arrays: tuple[jax.Array, jax.Array] | None = dataclasses.field(default=None, repr=False)
  # A GLM: `(family, power)` (the passes' static argument) and the targets `[n]` as given (float64); a
  # classifier's `targets`: its labels `[n]` (int32) on the host.
  family: tuple[str, float] | None = None
  targets: np.ndarray | None = dataclasses.field(default=None, repr=False)
  newton_rows: tuple | None = dataclasses.field(default=None, repr=False)
  # Float64 rows on one CPU device: `x [n, d]` as given (a reference, no copy), where the covariance's host
  # sums read them (`_sandwich`): a chunk's rows copied back from the device cost what its Gram does.
  host_rows: np.ndarray | None = dataclasses.field(default=None, repr=False)

  @property
  def newton_dtype(self):
    """The dtype of Newton's row sample (`newton_sample`)."""
    return np.float32 if self.family is None else self.dtype

  def newton_sample(self) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """`(x [S, d], labels [S], shift, scale)`: the row sample as Newton's start and its Hessians read it. A
    classifier's rows standardised in float32 (made once, on the device): the start stops at ~1e-3 and a
    Hessian from a sample only steers the steps (its ~5% sampling error dwarfs float32's rounding), while
    the start on 8192 rows takes half the time (3.8 -> 2.0 ms, the same iterations). A GLM's as staged (a
    log link's exp overflows float32 8 times sooner)."""
    if self.newton_rows is None:
      if self.newton_dtype == self.dtype:
        self.newton_rows = (*self.sample, *self.args())
      else:
        with jax.enable_x64(True):
          zeros = jax.device_put(np.zeros(self.d, np.float32))
          ones = jax.device_put(np.ones(self.d, np.float32))
          self.newton_rows = (_standardised32(self.sample[0], *self.args()), self.sample[1], zeros, ones)
    return self.newton_rows

  def args(self) -> tuple[jax.Array, jax.Array]:
    """`(pass_shift, pass_scale)` on the device, in the pass dtype (put there once)."""
    if self.pass_arrays is None:
      with jax.enable_x64(True):
        self.pass_arrays = tuple(jax.device_put(v.astype(self.dtype)) for v in (self.pass_shift, self.pass_scale))
    return self.pass_arrays

  def rows(self) -> tuple[list[jax.Array], list[jax.Array]]:
    """The chunks `(x, y)` on the device (put there on first use)."""
    if self.x is None:
      self.x, self.y = self.put()
    return self.x, self.y

  @property
  def bounds(self) -> list[tuple[int, int, int]]:
    """`(start, real rows, chunk rows)` of each chunk."""
    size = self.chunk_rows[0]
    return [(i * size, min(size, self.n - i * size), rows) for i, rows in enumerate(self.chunk_rows)]


def stage(x, y, loss: str, num_classes: int | None = None, sharding=None, power: float | None = None,
          dtype=None, sample: bool = True) -> Staged:
  """Puts `x [n, d]` and `y` (`[n]` / `[n, k]` targets, or `[n]` integer labels) on the device in chunks.

  `loss`: `mse`, `logistic`, `softmax`, or a GLM family (`GLM_FAMILIES`; `tweedie` with `power` p: 1 < p < 2
  or p > 2, also as the loss name `tweedie:p`), whose targets `[n]` must be >= 0 (> 0 for gamma and p > 2).

  The dtype of the passes is x's: float64 stays float64, anything else becomes float32; `dtype=np.float32`
  passes float64 rows in float32 too (standardised from float64 first; `pass_dtype` says where). `sharding`
  (a `NamedSharding` over rows) spreads every chunk over several devices: each pass's sums are then
  added across them by XLA, once per chunk. Float64 rows on one CPU device stay where they are until a pass
  reads them (`rows()`). `sample=False`: no row sample for Newton's Hessian (a covariance reads every row).
  """
  x = np.asarray(x)
  if dtype is not None and np.dtype(dtype) != np.float32:
    raise ValueError(f"dtype: None (x's) or float32, got {dtype!r}")
  dtype = np.float64 if x.dtype == np.float64 and dtype is None else np.float32
  n, d = x.shape
  x, unit = _in_range(x)
  loss, power = _loss_and_power(loss, power)
  head = np.asarray(x[:SHIFT_ROWS], np.float64)
  _, shift, scale = steadied(head.mean(axis=0), head.std(axis=0), head[0] if len(head) else None)
  y, k, y_shift, family, targets = _targets(loss, y, n, num_classes, power, dtype)
  if dtype == np.float64:  # standardised inside the passes (or folded into the parameters): no copy
    pass_shift, pass_scale = shift, scale
    prepare = lambda part: np.asarray(part, dtype)
  else:  # float32: standardised on the host from float64, so that no pass subtracts large float32 numbers
    pass_shift, pass_scale = np.zeros(d), np.ones(d)
    prepare = lambda part: ((np.asarray(part, np.float64) - shift) / scale).astype(dtype)
  size = bucket(n)
  # The last of several chunks: padded to a multiple of CHUNK / 8 rows (a few programs, little padding).
  chunk_rows = tuple(size if start == 0 else -(-min(size, n - start) // TAIL_STEP) * TAIL_STEP
                     for start in range(0, n, size))
  y_parts = (lambda part: part) if loss != "mse" else (lambda part: (part - y_shift).astype(dtype))
  put = functools.partial(_put_chunks, x, y, prepare, y_parts, pass_shift.astype(dtype), size, chunk_rows,
                          family is not None, sharding)
  host, xs, ys = None, None, None
  on_host = dtype == np.float64 and sharding is None and jax.default_backend() == "cpu"
  if loss == "mse" and on_host:
    host = (x, y - y_shift)
  if not on_host:
    xs, ys = put()
  sample, rows = _row_sample(x, y, loss, k, prepare, sharding) if sample else (None, None)
  # The passes read the rows as staged; the parameters and penalties are in x's own units.
  return Staged(xs, ys, n, d, k, loss, dtype, shift * unit, scale * unit, y_shift, sharding, sample, rows, pass_shift,
                pass_scale, chunk_rows, host, put, family=family, targets=targets, host_rows=x if on_host else None)


def _loss_and_power(loss: str, power: float | None) -> tuple[str, float | None]:
  """The loss's name and a GLM's power from the name (`tweedie:1.5`) or `power`; tweedie 1 and 2 by name."""
  loss, value = split_loss(loss)
  if value is not None:
    if loss != "tweedie":
      raise ValueError(f"the exact solvers fit mse, logistic, softmax and {', '.join(GLM_FAMILIES)}, not {loss!r}")
    if power is not None and power != value:
      raise ValueError(f"power {power} differs from the loss's own, tweedie:{value:g}")
    power = value
  return family_of(loss, power) if loss == "tweedie" else (loss, power)


def _targets(loss: str, y, n: int, num_classes, power, dtype):
  """`(y, k, y_shift, family, targets)`: least squares' targets `[n, k]` and their shift, a GLM's `[n]` in the
  pass dtype (checked in its domain; `targets`: as given, float64), or integer labels (`targets` too)."""
  if loss == "mse":
    y = np.asarray(y).reshape(n, -1)
    return y, y.shape[1], np.asarray(y[:SHIFT_ROWS], np.float64).mean(axis=0), None, None
  if loss in GLM_FAMILIES:
    targets = np.asarray(y, np.float64).reshape(n)
    return targets.astype(dtype), 1, np.zeros(0), _check_family(loss, power, targets), targets
  k = 1 if loss == "logistic" else int(num_classes)
  labels = np.asarray(y, np.int32).reshape(n)
  return labels, k, np.zeros(0), None, labels


def _put_chunks(x, y, prepare, y_parts, filler_x, size: int, chunk_rows, glm: bool, sharding):
  """`(xs, ys)`: the chunks on the device, the last padded with rows of weight 0 (a GLM's target 1 there:
  a finite loss)."""
  xs, ys = [], []
  with jax.enable_x64(True):
    for start, rows in zip(range(0, len(x), size), chunk_rows):
      part_x, part_y = prepare(x[start:start + size]), y_parts(y[start:start + size])
      if len(part_x) < rows:
        pad = rows - len(part_x)
        part_x = np.concatenate([part_x, np.broadcast_to(filler_x, (pad, x.shape[1]))])
        filler = np.ones if glm else np.zeros
        part_y = np.concatenate([part_y, filler((pad,) + part_y.shape[1:], part_y.dtype)])
      xs.append(jax.device_put(part_x, sharding))
      ys.append(jax.device_put(part_y, sharding))
  return xs, ys


def _row_sample(x, y, loss: str, k: int, prepare, sharding):
  """`(sample, rows)`: every (n / S)-th row (in an order whose every prefix is spread over the data too: many
  models take a shorter prefix, `sample_size`) on the device, and their indices; None for least squares or
  where S would be every row. S: what Newton's Hessian takes and the iterative solvers' start rows."""
  n, d = x.shape
  sampled = hessian_rows((d + 1) * k)
  if (d + 1) * k <= NEWTON_MAX_PARAMS:  # what Newton's Hessian takes (`sample_size`)
    sampled = min(sampled, hessian_cap(n, (d + 1) * k))
  if n >= START_FRACTION * MIN_START_ROWS:  # the iterative solvers' start rows too
    sampled = max(sampled, min(START_MAX_ROWS, 1 << int(math.log2(n // START_FRACTION))))
  if loss == "mse" or n <= sampled:
    return None, None
  rows = np.linspace(0, n - 1, sampled).astype(np.int64)[_spread_order(sampled)]
  with jax.enable_x64(True):
    # (np.take, not x[rows]: 32768 of 80k rows, 2.8 -> 1.3 ms)
    sample = (jax.device_put(prepare(np.take(x, rows, axis=0)), sharding),
              jax.device_put(np.take(y, rows, axis=0), sharding))
  return sample, rows


def _in_range(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """`(x', unit [d])`: x' = x / unit, `unit` a power of two for a column of extreme magnitude (its squares and
  Gram sums would overflow, x ~ 1e154, or underflow to a constant, x ~ 1e-180), read from its first
  `SHIFT_ROWS` rows as the standardisation is; x itself where every unit is 1."""
  unit = power_of_two_units(np.max(np.abs(np.asarray(x[:SHIFT_ROWS], np.float64)), axis=0, initial=0.0))
  if np.all(unit == 1):
    return x, unit
  return x * (1.0 / unit).astype(x.dtype), unit


@jax.jit
def _standardised32(x, shift, scale):
  return ((x - shift) / scale).astype(jnp.float32)


def _check_family(loss: str, power: float | None, y: np.ndarray) -> tuple[str, float]:
  """`(family, power)` (hashable: the passes' static argument), after checking the targets' domain."""
  if loss == "tweedie":
    if power is None or not np.isfinite(power) or not (1 < power < 2 or power > 2):
      raise ValueError(f"tweedie needs a power p with 1 < p < 2 or p > 2 (poisson and gamma are p = 1 and 2),"
                       f" got {power!r}")
    power = float(power)
  else:
    power = power_of(loss)
  problem = losses_lib.label_error(loss if loss != "tweedie" else f"tweedie:{power:g}", y)
  if problem:
    raise ValueError(problem)
  return loss, power


@functools.lru_cache(maxsize=16)
def _spread_order(size: int) -> np.ndarray:
  """A permutation of `range(size)` (a power of two) whose first `2^j` entries are evenly spaced: bit reversal."""
  bits = int(math.log2(size))
  index, order = np.arange(size), np.zeros(size, np.int64)
  for bit in range(bits):
    order |= ((index >> bit) & 1) << (bits - 1 - bit)
  order.flags.writeable = False  # cached: shared by every caller
  return order


def sample_size(data: Staged, count: int) -> int:
  """Rows of the Hessian sample for `count` models (0: every row): the pass over S rows costs `K S p²`."""
  if data.sample_rows is None:
    return 0
  p = (data.d + 1) * data.k
  size = hessian_rows(p, count)
  if data.n <= 2 * size:
    return 0
  return min(size, hessian_cap(data.n, p, count), len(data.sample_rows))


def start_rows(data: Staged) -> int:
  """Rows of the sample the iterative solvers first solve on (0: none): a power of two up to `n /
  START_FRACTION`, at least `MIN_START_ROWS`."""
  if data.sample_rows is None or data.n < START_FRACTION * MIN_START_ROWS:
    return 0
  return min(len(data.sample_rows), START_MAX_ROWS, 1 << int(math.log2(data.n // START_FRACTION)))
