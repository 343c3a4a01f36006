"""Exact solvers of the linear models: the normal equation, Newton (IRLS) and L-BFGS, for K models at once.

>>> data = stage(x, y, "mse")                          # the rows on the device, once
>>> fit = solve(data, weights=[[1.0] * n], l2=[0.0])   # K = 1 model; weights [K, n] (folds), l2 [K]
>>> fit.coef[0], fit.intercept[0]                      # [d, k], [k], float64

The objective of model `j` is the trainer's: the `weights[j]`-weighted mean of the loss (MSE averaged
over outputs, logistic, softmax) plus `l2[j] / 2 * |W|²` (the intercept is not penalised).

- `normal_equation` (MSE): one pass builds each model's weighted Gram matrix of `[x, y, 1]`; the solve
  is an eigendecomposition in float64 of the standardised covariance, so that collinear or
  rank-deficient features get the minimum-norm solution, as `np.linalg.lstsq` (in the raw features).
- `newton` (logistic, softmax): a pass a iteration builds the loss, its gradient and Hessian; a
  float64 solve gives the step, halved until the objective falls enough (Armijo); it stops when the
  gradient's largest entry is below `tol` (the objective is a weighted mean: scale-free in `n`).
- `lbfgs`: a pass an iteration builds the loss and gradient; two-loop L-BFGS on the host in float64.
  `auto` takes it where the Hessian has more than `NEWTON_MAX_PARAMS` rows.
- An L1 part (`solve(l1=)`): least squares by coordinate descent on the Gram matrix; the other losses by
  proximal Newton (`_proximal_newton`: coordinate descent on Newton's penalised quadratic model). Both
  soft-threshold, so the zeros are 0.0, and stop on the largest violation of the optimality conditions.
- The log-link GLMs (`poisson`, `gamma`, `tweedie`): Newton with Fisher's curvature (IRLS) or L-BFGS.

Precision: the pass runs in the data's dtype (float32 stays float32; float64 input runs in float64,
where a float32 Gram matrix would lose the answer of a condition number above ~1e3) inside
`jax.enable_x64`; the d x d solves always run in float64. Features are standardised inside the pass
(shift and scale from the first rows) and the weights normalised to sum 1 per model on the host, so
that features scaled by 1e-10, weights of 1e-50 or targets near 1e7 lose nothing.

One compilation serves many fits: the programs are module-level `jax.jit`s whose shapes are the row
bucket (a power of two up to `CHUNK` rows; more rows go in chunks of `CHUNK`, the last one padded with
weight-0 rows), `d`, `k`, `K` and the dtype; penalties, tolerances and weights are arguments. A new
estimator, fold, penalty or `Trainer` of the same shape compiles nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flaxzoo.trainers import losses as losses_lib
from flaxzoo.trainers.host_blas import one_thread
from flaxzoo.trainers.magnitudes import power_of_two_units

SOLVERS = ("auto", "optax", "normal_equation", "newton", "lbfgs")
EXACT_LOSSES = ("mse", "logistic", "softmax")
# Log-link GLMs the exact solvers fit (`stage(..., loss=family, power=p)` for tweedie): half deviances.
GLM_FAMILIES = ("poisson", "gamma", "tweedie")
# Rows of one chunk of the data on the device; fewer rows are padded to a power of two (at least MIN_BUCKET).
CHUNK = 65536
MIN_BUCKET = 64
TAIL_STEP = CHUNK // 8
# Shift and scale of the standardisation: from this many first rows.
SHIFT_ROWS = 1024
# Above this many parameters (`(d + 1) * k`) `auto` takes L-BFGS: a Newton pass costs `n p²`, an L-BFGS one `n p`.
NEWTON_MAX_PARAMS = 400
# Multiply-adds of a Newton Hessian pass on large data (see `hessian_rows`).
HESSIAN_WORK = 2 * 10**9
# ... and at most this many rows: Newton takes about one more iteration, each much cheaper (GridSearchCV on
# 100k x 32: 2.5 s -> 1.8 s; a 1M x 32 fit: 5 iterations either way).
HESSIAN_MAX_ROWS = 32768
HESSIAN_PASS_ROWS = 16
# Up to this many rows (one chunk), Newton runs as one program on the device (`_newton_loop`): there a pass
# costs less than a dispatch and a host round trip (GridSearchCV on breast cancer: 0.25 s -> 0.11 s), and
# the program's longer compilation (0.8 s, not 0.5) is paid once per shape, then loaded from the cache.
LOOP_ROWS = 8192
# Up to this many chunks (131072 rows), Newton over every row runs as one program too (`_newton_rows`).
FUSED_CHUNKS = 2
LBFGS_MEMORY = 10
ARMIJO = 1e-4


def use_compilation_cache() -> None:
  """JAX's persistent compilation cache in `$FLAXZOO_JAX_CACHE`, else `$XDG_CACHE_HOME/flaxzoo/jax`
  (~/.cache), unless the process chose a cache folder already or `FLAXZOO_JAX_CACHE=off`: a second
  process then loads the solvers' few programs instead of compiling them (a first fit's 0.4 s)."""
  import os

  where = os.environ.get("FLAXZOO_JAX_CACHE")
  if where == "off" or jax.config.jax_compilation_cache_dir:
    return
  if not where:
    where = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "flaxzoo", "jax")
  jax.config.update("jax_compilation_cache_dir", where)
  # The solvers' programs compile in 0.1-0.3 s each: below JAX's default threshold of 1 s.
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def check_solver(solver: str) -> str:
  if solver not in SOLVERS:
    raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
  return solver


# Many classifiers on float64 rows pass in float32 (standardised on the host in float64 first) where the
# tolerance is far above float32's rounding of their gradients: on 100k x 32 that rounding is 7e-9 (50 fold
# models at the float64 optimum), and at tol 1e-4 their answers moved 6e-8 where the tolerance leaves them
# 2.5e-4 from the optimum, while the passes' GEMMs and exponentials took half the time (LinearClassifierCV:
# 337 -> 209 ms). A tighter tolerance passes in float64. One model gains nothing (the host's standardised
# copy costs what its passes save), nor do a few thousand rows.
FLOAT32_TOL = 1e-5
FLOAT32_MIN_ROWS = 8192


def pass_dtype(x, loss: str, k: int, count: int, solver: str, tol: float):
  """None (the passes in x's dtype) or float32: for `count` Newton fits of `loss` (`k` outputs) on `x [n, d]`
  to `tol`."""
  many = count > GEMM_MODELS and len(x) >= FLOAT32_MIN_ROWS and loss in ("logistic", "softmax")
  newton = choose(solver, loss, num_params=(np.shape(x)[1] + 1) * k) == "newton"
  return np.float32 if many and newton and tol >= FLOAT32_TOL else None


def choose(solver: str, loss: Any, affine: bool = True, full_batch: bool = True, num_params: int = 0) -> str:
  """The solver that runs: `optax` unless an exact one applies (a named loss of `EXACT_LOSSES`, an affine
  model, full batch); `auto` picks `normal_equation` for MSE, `newton` or `lbfgs` (by `num_params`) for
  the classifiers. ValueError where a named exact solver does not apply."""
  check_solver(solver)
  if isinstance(loss, str):
    loss = losses_lib.split_loss(loss)[0]  # `tweedie:1.5`: the family's name
  exact = isinstance(loss, str) and loss in EXACT_LOSSES + GLM_FAMILIES and affine and full_batch
  if solver == "optax":
    return solver
  if not exact:
    if solver == "auto":
      return "optax"
    raise ValueError(f"solver {solver!r} needs the loss mse, logistic or softmax, an affine model (the zoo's linear"
                     f" models) and a full batch; use solver='optax'")
  if solver == "auto":
    if loss == "mse":
      return "normal_equation"
    return "newton" if num_params <= NEWTON_MAX_PARAMS else "lbfgs"
  if (solver == "normal_equation") != (loss == "mse"):
    raise ValueError(f"solver {solver!r} does not apply to the loss {loss!r}: normal_equation is for mse,"
                     f" newton and lbfgs for logistic, softmax and the GLM families")
  return solver


def bucket(n: int) -> int:
  """Rows of the compiled pass for `n` rows: a power of two (at least `MIN_BUCKET`), at most `CHUNK`."""
  return min(CHUNK, max(MIN_BUCKET, 1 << max(0, math.ceil(math.log2(max(n, 1))))))


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
  # A GLM: `(family, power)` (the passes' static argument) and the targets `[n]` as given (float64).
  family: tuple[str, float] | None = None
  targets: np.ndarray | None = dataclasses.field(default=None, repr=False)
  newton_rows: tuple | None = dataclasses.field(default=None, repr=False)

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
          dtype=None) -> Staged:
  """Puts `x [n, d]` and `y` (`[n]` / `[n, k]` targets, or `[n]` integer labels) on the device in chunks.

  `loss`: `mse`, `logistic`, `softmax`, or a GLM family (`GLM_FAMILIES`; `tweedie` with `power` p: 1 < p < 2
  or p > 2, also as the loss name `tweedie:p`), whose targets `[n]` must be >= 0 (> 0 for gamma and p > 2).

  The dtype of the passes is x's: float64 stays float64, anything else becomes float32; `dtype=np.float32`
  passes float64 rows in float32 too (standardised from float64 first; `pass_dtype` says where). `sharding`
  (a `NamedSharding` over rows) spreads every chunk over several devices: each pass's sums are then
  added across them by XLA, once per chunk.
  """
  x = np.asarray(x)
  if dtype is not None and np.dtype(dtype) != np.float32:
    raise ValueError(f"dtype: None (x's) or float32, got {dtype!r}")
  dtype = np.float64 if x.dtype == np.float64 and dtype is None else np.float32
  n, d = x.shape
  x, unit = _in_range(x)
  family = None
  loss, value = losses_lib.split_loss(loss)  # a loss name with its parameter: `tweedie:1.5`
  if value is not None:
    if loss != "tweedie":
      raise ValueError(f"the exact solvers fit mse, logistic, softmax and {', '.join(GLM_FAMILIES)}, not {loss!r}")
    if power is not None and power != value:
      raise ValueError(f"power {power} differs from the loss's own, tweedie:{value:g}")
    power = value
  if loss == "tweedie" and power in (1, 2):  # the Poisson and gamma deviances
    loss, power = ("poisson", None) if power == 1 else ("gamma", None)
  head = np.asarray(x[:SHIFT_ROWS], np.float64)
  shift = head.mean(axis=0)
  scale = head.std(axis=0)
  # A constant column: its spread is the rounding of its mean (the mean of 200 values 3.7 is not 3.7, the std
  # 8e-15), and dividing by that made it a huge copy of the intercept (no fit converged). Shifted by its own
  # value it is exactly 0 where it is constant, and kept O(1).
  constant = scale <= 64 * np.finfo(np.float64).eps * np.maximum(np.abs(shift), np.finfo(np.float64).tiny)
  shift = np.where(constant, head[0] if len(head) else shift, shift)
  scale = np.where(constant, np.maximum(np.abs(shift), 1.0), scale)
  if loss == "mse":
    y = np.asarray(y).reshape(n, -1)
    k = y.shape[1]
    y_shift = np.asarray(y[:SHIFT_ROWS], np.float64).mean(axis=0)
  elif loss in GLM_FAMILIES:
    targets = np.asarray(y, np.float64).reshape(n)
    family = _check_family(loss, power, targets)
    y = targets.astype(dtype)
    k, y_shift = 1, np.zeros(0)
  else:
    y = np.asarray(y, np.int32).reshape(n)
    k = 1 if loss == "logistic" else int(num_classes)
    y_shift = np.zeros(0)
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

  def put():
    xs, ys = [], []
    with jax.enable_x64(True):
      for start, rows in zip(range(0, n, size), chunk_rows):
        part_x = prepare(x[start:start + size])
        part_y = y[start:start + size] if loss != "mse" else (y[start:start + size] - y_shift).astype(dtype)
        if len(part_x) < rows:  # pad with rows of weight 0 (a GLM's target 1: a finite loss there)
          pad = rows - len(part_x)
          part_x = np.concatenate([part_x, np.broadcast_to(pass_shift.astype(dtype), (pad, d))])
          filler = np.ones if family else np.zeros
          part_y = np.concatenate([part_y, filler((pad,) + part_y.shape[1:], part_y.dtype)])
        xs.append(jax.device_put(part_x, sharding))
        ys.append(jax.device_put(part_y, sharding))
    return xs, ys

  host, xs, ys = None, None, None
  if loss == "mse" and dtype == np.float64 and sharding is None and jax.default_backend() == "cpu":
    host = (x, y - y_shift)
  else:
    xs, ys = put()
  with jax.enable_x64(True):
    sample, rows = None, None
    # (not `size`: `put`, called later, reads that)
    sampled = hessian_rows((d + 1) * k)
    if (d + 1) * k <= NEWTON_MAX_PARAMS:  # what Newton's Hessian takes (`sample_size`)
      sampled = min(sampled, hessian_cap(n, (d + 1) * k))
    if n >= START_FRACTION * MIN_START_ROWS:  # the iterative solvers' start rows too
      sampled = max(sampled, min(START_MAX_ROWS, 1 << int(math.log2(n // START_FRACTION))))
    if loss != "mse" and n > sampled:
      # Every (n / S)-th row, in an order whose every prefix is spread over the data too (many models
      # take a shorter prefix: `sample_size`).
      rows = np.linspace(0, n - 1, sampled).astype(np.int64)[_spread_order(sampled)]
      # (np.take, not x[rows]: 32768 of 80k rows, 2.8 -> 1.3 ms)
      sample = (jax.device_put(prepare(np.take(x, rows, axis=0)), sharding),
                jax.device_put(np.take(y, rows, axis=0), sharding))
  # The passes read the rows as staged; the parameters and penalties are in x's own units.
  return Staged(xs, ys, n, d, k, loss, dtype, shift * unit, scale * unit, y_shift, sharding, sample, rows, pass_shift,
                pass_scale, chunk_rows, host, put, family=family, targets=targets if family else None)


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
    power = {"poisson": 1.0, "gamma": 2.0}[loss]
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


def hessian_cap(n: int, num_params: int, count: int | None = None) -> int:
  """At most HESSIAN_PASS_ROWS n / p rows (a power of two, at least 1024) in the Hessian of many models (half
  that for few): its pass then costs about one or two gradient passes over all rows. 50 fold models on 100k
  x 32: 32768 rows (float32 sums, 36 ms; a pass 27 ms), and 2 Newton steps reach scikit-learn's tolerance
  with a margin of 3x; 16384 rows: just (1.0x), or 3 steps. One model on 80k rows: 16384. `count` None:
  the most any count takes (what `stage` samples)."""
  factor = HESSIAN_PASS_ROWS if count is None or _low_precision(count) else HESSIAN_PASS_ROWS // 2
  return 1 << int(math.log2(max(factor * n // num_params, 1024)))


def hessian_rows(num_params: int, count: int = 1) -> int:
  """Rows of the Newton Hessian on large data: a pass over `S` rows costs `K S p²` (a gradient pass `K n p`),
  so `S` is about `HESSIAN_WORK / (K p²)`, a power of two in [1024, HESSIAN_MAX_ROWS]."""
  return int(min(HESSIAN_MAX_ROWS, max(1024, 1 << int(math.log2(max(HESSIAN_WORK // (count * num_params**2), 1))))))


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


def chunked_weights(data: Staged, weights: np.ndarray) -> Weights:
  """`weights [K, n]` → `Weights` in the pass dtype."""
  weights = np.asarray(weights, np.float64)
  if weights.ndim != 2 or weights.shape[1] != data.n:
    raise ValueError(f"weights must be [models, {data.n}], got shape {weights.shape}")
  total = weights.sum(axis=1, keepdims=True)
  if not np.all(np.isfinite(total)) and np.all(np.isfinite(weights)):  # finite, but their sum overflows
    weights = weights / np.max(weights, axis=1, keepdims=True)
    total = weights.sum(axis=1, keepdims=True)
  # A finite sum of entries >= 0 has every entry finite (two passes over the weights, not four).
  if not (np.all(np.isfinite(total)) and weights.min() >= 0):
    raise ValueError("weights must be finite and >= 0")
  if np.any(total <= 0):
    empty = np.flatnonzero(total[:, 0] <= 0).tolist()
    raise ValueError(f"every model needs a positive weight; models {empty} have none")
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
        np.multiply(weights.T[start:start + rows], inverse.T, out=part[:rows], casting="unsafe")
      else:
        part = _aligned_zeros((len(rows_weights), chunk_rows), data.dtype)
        np.multiply(rows_weights[:, start:start + rows], rows_inverse, out=part[:, :rows], casting="unsafe")
      out.append(jax.device_put(part, sharding))
    sample = None
    size = sample_size(data, len(weights))
    if size:
      part = _columns(weights, data.sample_rows[:size]) * inverse
      mass = part.sum(axis=1, keepdims=True)
      # A model with no weight on the sampled rows (a fold that misses them all) needs the whole Hessian.
      if np.all(mass > 0):
        sample = jax.device_put((part / mass).astype(data.newton_dtype), sharding)
    start = None
    size = start_rows(data)
    if size:
      part = _columns(weights, data.sample_rows[:size])
      if np.all(part.sum(axis=1) > 0):
        start = part
  # Only the host sums of least squares ask (a K x n comparison the classifiers need not pay).
  uniform = data.host is not None and bool(np.all(weights == weights[:1, :1]))
  return Weights(out, sample, by_row, uniform, start, groups, group_of)


def _shared(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """`(groups [G], group_of [K])`: the first model of each set of models with equal weights, and each model's
  set (a path of P penalties x F folds: F Gram passes, not P F). Found by a random projection, then checked."""
  fingerprint = weights @ np.random.default_rng(0).uniform(0.5, 1.5, weights.shape[1])
  _, first, group_of = np.unique(fingerprint, return_index=True, return_inverse=True)
  if not all(np.array_equal(weights[j], weights[first[g]]) for j, g in enumerate(group_of)):
    return np.arange(len(weights)), np.arange(len(weights))
  return first, group_of


@dataclasses.dataclass
class Solution:
  """K fitted models: `coef [K, d, k]`, `intercept [K, k]` (float64), `n_iter [K]` (passes that
  moved the model), `converged [K]`, `objective [K]` (the weighted mean loss plus the penalty)."""

  coef: np.ndarray
  intercept: np.ndarray
  n_iter: np.ndarray
  converged: np.ndarray
  objective: np.ndarray
  solver: str


def solve(data: Staged, weights, l2, solver: str = "auto", tol: float = 1e-4, max_iter: int = 100,
          start: tuple[np.ndarray, np.ndarray] | None = None, l1=None, mix=None) -> Solution:
  """Fits K models on the staged rows: `weights [K, n]` (>= 0, any scale), `l2 [K]` (>= 0), and `l1 [K]`
  (>= 0: `l1 |W|₁` beside `l2 / 2 |W|²`; least squares by coordinate descent on the Gram matrix, `max_iter`
  sweeps; the other losses by proximal Newton, `_proximal_newton`, `max_iter` Newton steps).

  `start`: `(coef [K, d, k], intercept [K, k])` to start the iterative solvers from (default zero, as
  scikit-learn's). `mix [K, G]` (>= 0): model k's weights are `Σ_g mix[k, g] weights[g]` (`weights [G, n]`):
  a grid over folds needs no copy of the weights a model, and least squares sums each part's rows once
  (the folds' held-out parts: every training fold's Gram matrix from one pass). Returns a `Solution`.
  """
  weights = np.atleast_2d(np.asarray(weights, np.float64))
  if mix is not None:
    mix = np.atleast_2d(np.asarray(mix, np.float64))
    if mix.ndim != 2 or mix.shape[1] != len(weights) or not (np.all(np.isfinite(mix)) and mix.min() >= 0):
      raise ValueError(f"mix must be [models, {len(weights)}] finite numbers >= 0, got shape {mix.shape}")
    if not (np.all(np.isfinite(weights)) and weights.min() >= 0):
      raise ValueError("weights must be finite and >= 0")
    if data.loss != "mse":  # the iterative solvers' passes read every model's weights
      weights, mix = mix @ weights, None
  count = len(weights) if mix is None else len(mix)
  l2 = np.broadcast_to(np.asarray(l2, np.float64), (count,)).copy()
  if not np.all(np.isfinite(l2) & (l2 >= 0)):
    raise ValueError(f"l2 must be finite numbers >= 0, got {l2.tolist()}")
  if l1 is not None:
    l1 = np.broadcast_to(np.asarray(l1, np.float64), (count,)).copy()
    if not np.all(np.isfinite(l1) & (l1 >= 0)):
      raise ValueError(f"l1 must be finite numbers >= 0, got {l1.tolist()}")
  use_compilation_cache()
  proximal = l1 is not None and np.any(l1 > 0) and data.loss != "mse"
  # An L1 part is proximal Newton's whatever the size ("auto" chose L-BFGS above NEWTON_MAX_PARAMS, then
  # refused it, telling the user to use "auto").
  solver = "newton" if proximal and solver == "auto" else choose(solver, data.loss, num_params=(data.d + 1) * data.k)
  if proximal:
    if solver == "lbfgs":
      raise ValueError("an L1 penalty is fitted by (proximal) Newton, not lbfgs: use solver='newton' or 'auto'")
    solver = "newton"
  if solver == "optax":
    raise ValueError("solve() runs the exact solvers; solver='optax' trains through Trainer")
  chunks = chunked_weights(data, weights) if mix is None else None
  if start is not None and chunks is not None:  # a given start (a warm start) is nearer than a sample's optimum
    chunks.start = None
  with jax.enable_x64(True):
    if solver == "normal_equation":
      if mix is not None:
        return _normal_equation(data, None, l2, l1, float(tol), int(max_iter), _mixed_grams(data, weights, mix))
      return _normal_equation(data, chunks, l2, l1, float(tol), int(max_iter))
    theta = _to_scaled(data, start, count)
    if start is None and data.family:  # a GLM from its intercept-only fit: log of the weighted mean target
      mean = weights @ data.targets / weights.sum(axis=1)
      theta[:, -1, 0] = np.log(np.maximum(mean, np.finfo(np.float64).tiny))
    if data.family:
      tol = tol * glm_gradient_scale(data)
    if proximal:
      return _proximal_newton(data, chunks, l2, l1, theta, float(tol), int(max_iter))
    if solver == "newton":
      return _newton(data, chunks, l2, theta, float(tol), int(max_iter))
    return _lbfgs(data, chunks, l2, theta, float(tol), int(max_iter))


def glm_gradient_scale(data: Staged) -> float:
  """What a GLM's gradient is measured against: the deviance of targets x c has gradients x c^(2 - p) (Poisson
  c, gamma 1), so `tol` times the mean target to the power 2 - p stops a fit of y x c where the fit of y stops
  (an absolute `tol` stopped y x 1e-12 at its start and never stopped y x 1e6)."""
  mean = np.mean(data.targets)
  with np.errstate(over="ignore", under="ignore"):
    scale = mean ** (2 - data.family[1])
  return float(scale) if mean > 0 and np.isfinite(scale) and scale > 0 else 1.0


# ---------------------------------------------------------------------------------------------------------
# Normal equation


# K models' weighted Gram matrices: up to this many as K GEMMs of `sqrt(w) z` (XLA's CPU GEMM is fastest on a
# product of one operand with itself: `uᵀu` took 5 ms a 65536 x 34 chunk, `zᵀ(w z)` 17 ms); more as one GEMM
# of the weights with the rows' outer products (upper triangle), sub-chunk by sub-chunk (60 models: 86 ms, not 370).
GEMM_MODELS = 6
OUTER_ROWS = 2048


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


def _per_scale2(penalty, scale):
  """`penalty / scale²` `[d]`, the L2 penalty's curvature in the standardised features: 0 where the penalty is
  0 and at most 1e300 (x ~ 1e-180: scale² underflows, and XLA turns `p / s / s` into `p / (s s)`: 0 / 0)."""
  inverse = 1 / scale
  return jnp.where(penalty > 0, jnp.minimum(penalty * inverse * inverse, 1e300), 0.0)


@functools.partial(jax.jit, static_argnames="d")
def _normal_solve(gram, l2, scale, d: int):
  """Minimum-norm solutions of K ridge problems from their Gram matrices (float64): `(W_s [K, d, k], b_s, loss)`
  in the standardised features."""
  gram = gram.astype(jnp.float64)
  k = gram.shape[-1] - d - 1

  def one(g, penalty):
    mean = g[:-1, -1]  # the weights sum to 1: the last column is the means
    cov = g[:-1, :-1] - mean[:, None] * mean[None, :]
    sxx, sxy, syy = cov[:d, :d], cov[:d, d:], jnp.diagonal(cov[d:, d:])
    # Objective per output t: (1/k) mean (x w_t + b_t - y_t)² + penalty/2 |w_t / scale|²: in the standardised
    # features the normal equation is (sxx + k penalty / 2 diag(1 / scale²)) w_t = sxy_t.
    ridge = 0.5 * k * _per_scale2(penalty, scale)
    # Jacobi-scaled, so the eigenvalue cut-off is relative to comparable columns.
    norm = jnp.sqrt(jnp.diagonal(sxx) + ridge)
    norm = jnp.where(norm > 0, norm, 1.0)
    a = (sxx + jnp.diag(ridge)) / norm[:, None] / norm[None, :]
    values, vectors = jnp.linalg.eigh(a)
    keep = values > jnp.max(values) * d * 1e-13
    inverse = jnp.where(keep, 1.0 / jnp.where(keep, values, 1.0), 0.0)
    w = (vectors * inverse[None, :]) @ (vectors.T @ (sxy / norm[:, None])) / norm[:, None]
    # Rank-deficient: the solutions differ by the null space of the raw features (columns D⁻¹ of the
    # dropped eigenvectors); the minimum-norm one in the raw features (lstsq's) has no part along it.
    # Raw units up to one constant (W_raw = W_s / scale, over the largest 1 / scale): the projection does not
    # depend on it, and 1 / scale of x ~ 1e-180 would overflow the products below.
    unit = (1 / scale) / jnp.max(1 / scale)
    null = jnp.where(keep[None, :], 0.0, vectors) * (unit / norm)[:, None]
    raw = w * unit[:, None]
    # Projection onto span(null): null (nullᵀ null)⁻¹ nullᵀ, the kept columns (zero) made harmless by 1s.
    gram_null = null.T @ null + jnp.diag(keep.astype(null.dtype))
    raw = raw - null @ jnp.linalg.solve(gram_null, null.T @ raw)
    w = raw / unit[:, None]
    intercept = mean[d:] - mean[:d] @ w
    loss = jnp.mean(jnp.sum(w * (sxx @ w), axis=0) - 2 * jnp.sum(w * sxy, axis=0) + syy)
    objective = loss + 0.5 * jnp.sum(_per_scale2(penalty, scale)[:, None] * w**2)
    return w, intercept, objective

  return jax.vmap(one)(gram, l2)


@functools.partial(jax.jit, static_argnames="d")
def _elastic_net_solve(gram, l2, l1, scale, tol, max_sweeps, d: int):
  """K elastic nets from their Gram matrices (float64) by cyclic coordinate descent on the covariances
  (scikit-learn's `precompute=True`; glmnet's covariance updates): `(W_s [K, d, k], b_s, objective, sweeps,
  converged)` in the standardised features. Per output t the objective is `(1/k) mean (x w_t + b_t - y_t)² +
  l2/2 |w_t / scale|² + l1 |w_t / scale|₁`; a coordinate's update soft-thresholds, so an L1 zero is 0.0. It
  stops where the largest violation of the optimality conditions (the minimum-norm subgradient, in the
  standardised features, as the other solvers' gradient) is below `tol` times the targets' (root mean)
  standard deviation (to a power of two), or after `max_sweeps` sweeps: the gradient is in the targets' unit,
  so a fit of y x c (penalties x c) stops at the answer x c (an absolute `tol` stopped y x 1e-5 at all zeros)."""
  gram = gram.astype(jnp.float64)
  k = gram.shape[-1] - d - 1

  def one(g, ridge, lasso):
    mean = g[:-1, -1]
    cov = g[:-1, :-1] - mean[:, None] * mean[None, :]
    sxx, sxy, syy = cov[:d, :d], cov[:d, d:], jnp.diagonal(cov[d:, d:])
    # k times the objective: wᵀ sxx w - 2 sxyᵀ w + Σ_j (k ridge_j / 2) w_j² + k lasso_j |w_j|, per output.
    ridge_j, lasso_j = _per_scale2(ridge, scale), lasso / scale
    denominator = 2 * jnp.diagonal(sxx) + k * ridge_j

    def coordinate(j, w):
      rest = sxy[j] - sxx[j] @ w + sxx[j, j] * w[j]  # [k]
      shrunk = jnp.sign(rest) * jnp.maximum(2 * jnp.abs(rest) - k * lasso_j[j], 0.0)
      return w.at[j].set(jnp.where(denominator[j] > 0, shrunk / jnp.where(denominator[j] > 0, denominator[j], 1), 0))

    def violation(w):
      grad = (2 / k) * (sxx @ w - sxy) + ridge_j[:, None] * w
      away = jnp.abs(grad + lasso_j[:, None] * jnp.sign(w))
      at_zero = jnp.maximum(jnp.abs(grad) - lasso_j[:, None], 0.0)
      return jnp.max(jnp.where(w != 0, away, at_zero))

    def sweep(state):
      w, sweeps, _ = state
      w = jax.lax.fori_loop(0, d, coordinate, w)
      return w, sweeps + 1, violation(w)

    w0 = jnp.zeros((d, k), jnp.float64)
    # syy: each target's variance. Its standard deviation rounded to a power of two: y x 2^k then takes the very
    # same sweeps (and weighted and repeated rows the same as each other), any other scale within a factor √2.
    spread = jnp.sqrt(jnp.maximum(jnp.mean(syy), jnp.finfo(jnp.float64).tiny))
    bound = tol * 2.0 ** jnp.round(jnp.log2(spread))
    w, sweeps, worst = jax.lax.while_loop(lambda s: (s[2] > bound) & (s[1] < max_sweeps), sweep,
                                          (w0, jnp.zeros((), jnp.int64), violation(w0)))
    intercept = mean[d:] - mean[:d] @ w
    loss = jnp.mean(jnp.sum(w * (sxx @ w), axis=0) - 2 * jnp.sum(w * sxy, axis=0) + syy)
    objective = loss + 0.5 * jnp.sum(ridge_j[:, None] * w**2) + jnp.sum(lasso_j[:, None] * jnp.abs(w))
    return w, intercept, objective, sweeps, worst <= bound

  return jax.vmap(one)(gram, l2, l1)


# `_host_grams` centres after summing the raw rows; it is used where that loses at most this factor of the
# centred sums' relative precision (the data's mean within ~70 spreads of `shift`), else the pass centres
# every row (`_gram_pass`).
RAW_CANCELLATION = 1e4


def _mixed_grams(data: Staged, weights: np.ndarray, mix: np.ndarray) -> np.ndarray:
  """`[K, D, D]`: each model's Gram matrix (`_host_grams`'), model k's weights `Σ_g mix[k, g] weights[g]`, from
  the G parts' sums (linear in the weights): on the host from each part's own rows where the parts are
  disjoint (every row in one at most), else by the device pass over the parts' weights."""
  masses = weights.sum(axis=1)
  if np.any(masses <= 0) or np.any(mix @ masses <= 0):
    raise ValueError("every part of the weights and every model needs a positive weight")
  grams = None
  if data.host is not None and np.count_nonzero(weights, axis=0).max() <= 1:
    parts = [_host_grams(data, rows, part[rows]) for part in weights for rows in [np.flatnonzero(part)]]
    grams = None if any(g is None for g in parts) else np.asarray(parts)
  if grams is None:
    chunks = chunked_weights(dataclasses.replace(data, host=None), weights)
    size = data.d + data.k + 1
    total = jax.device_put(np.zeros((len(chunks.groups), size, size), data.dtype))
    for x, y, w in zip(*data.rows(), chunks.rows):
      total = _gram_pass(total, x, y, w, *data.args())
    grams = np.asarray(total, np.float64)[chunks.group_of]
  return np.einsum("kg,gab->kab", mix * masses[None, :], grams) / (mix @ masses)[:, None, None]


def _host_grams(data: Staged, rows: np.ndarray | None = None, weight: np.ndarray | None = None) -> np.ndarray | None:
  """`[D, D]`: the mean over the rows of `z zᵀ`, `z = [(x - shift) / scale, y, 1]`, every row weighed the
  same (or `rows` weighed by `weight`, a copy of them), from the rows where they are (`data.host`): `xᵀx` of
  the d raw columns (one BLAS call, where XLA's CPU GEMM of the 34 columns of `z` ran at half the speed and
  the rows had to be copied to the device first: 1M x 32, 140 -> 80 ms) and `xᵀ[y, 1]`, centred in float64
  after. None where centring after the sums would lose precision (the data's mean far from `shift` in units
  of its spread)."""
  x, y = data.host
  d, k, n = data.d, data.k, data.n
  if rows is not None:  # those rows, weighed by `weight` (a copy of them)
    x, y = np.take(x, rows, axis=0), np.take(y, rows, axis=0)
    n = float(weight.sum())
  xw = x if weight is None else x * weight[:, None]
  ends = np.empty((len(x), k + 1))
  ends[:, :k], ends[:, k] = y, 1.0
  with one_thread():  # (OpenBLAS's spinning threads against a busy core: `host_blas`)
    xx = xw.T @ x
    xe = xw.T @ ends
  xy, sx = xe[:, :k], xe[:, k]
  yw = y if weight is None else y * weight[:, None]
  yy, sy = yw.T @ y, yw.sum(axis=0)
  shift, scale = data.pass_shift, data.pass_scale
  centred = xx - np.outer(shift, sx) - np.outer(sx, shift) + n * np.outer(shift, shift)  # Σ (x - s)(x - s)ᵀ
  magnitude = np.diagonal(xx) + n * shift**2  # what the rounding of `centred` is relative to
  if not np.all(np.diagonal(centred) * RAW_CANCELLATION >= magnitude):
    return None
  gram = np.zeros((d + k + 1, d + k + 1))
  gram[:d, :d] = centred / np.outer(scale, scale)
  gram[:d, d:d + k] = (xy - np.outer(shift, sy)) / scale[:, None]
  gram[:d, -1] = (sx - n * shift) / scale
  gram[d:d + k, d:d + k] = yy
  gram[d:d + k, -1] = sy
  gram[-1, -1] = n
  return (np.triu(gram) + np.triu(gram, 1).T) / n


def _normal_equation(data: Staged, chunks, l2, l1=None, tol=1e-4, max_iter=1000, grams=None) -> Solution:
  """Least squares from the weighted Gram matrices (`grams [K, D, D]` as given, else summed here): the
  ridge's linear solve, or where any `l1 [K]` > 0 the elastic net's coordinate descent (`_elastic_net_solve`,
  at most `max_iter` sweeps)."""
  size = data.d + data.k + 1
  gram = _host_grams(data) if grams is None and data.host is not None and chunks.uniform else None
  if grams is not None:
    total = jax.device_put(grams)
  elif gram is not None:  # the same Gram matrix for every model
    total = jax.device_put(np.broadcast_to(gram, (len(l2), size, size)))
  else:
    total = jax.device_put(np.zeros((len(chunks.groups), size, size), data.dtype))
    for x, y, w in zip(*data.rows(), chunks.rows):
      total = _gram_pass(total, x, y, w, *data.args())
    if len(chunks.groups) != len(l2) or np.any(chunks.group_of != np.arange(len(l2))):  # models that share
      # their weights share their Gram matrix (on the host:
      total = jax.device_put(np.asarray(total)[chunks.group_of])  # an eager gather would be one more program)
  count = len(l2)
  if l1 is None or not np.any(l1 > 0):
    w_s, b_s, objective = _normal_solve(total, jax.device_put(l2), jax.device_put(data.scale), data.d)
    n_iter, converged, solver = np.ones(count, np.int64), np.ones(count, bool), "normal_equation"
  else:
    w_s, b_s, objective, n_iter, converged = (np.asarray(v) for v in _elastic_net_solve(
        total, l2, l1, data.scale, float(tol), int(max_iter), data.d))
    solver = "coordinate_descent"
  coef, intercept = _from_scaled(data, np.asarray(w_s), np.asarray(b_s) + data.y_shift)
  return Solution(coef, intercept, n_iter, converged, np.asarray(objective), solver)


# ---------------------------------------------------------------------------------------------------------
# Newton and L-BFGS: the classifiers, parameters `theta [K, d + 1, k]` in the standardised features.


def _to_scaled(data: Staged, start, count) -> np.ndarray:
  theta = np.zeros((count, data.d + 1, data.k))
  if start is not None:
    coef, intercept = (np.asarray(v, np.float64) for v in start)
    theta[:, :-1] = coef * data.scale[None, :, None]
    theta[:, -1] = intercept + np.einsum("d,kdc->kc", data.shift, coef)
  return theta


def _from_scaled(data: Staged, w_s: np.ndarray, b_s: np.ndarray):
  coef = w_s / data.scale[None, :, None]
  return coef, b_s - np.einsum("d,kdc->kc", data.shift, coef)


def _loss_parts(logits, labels, k: int, family=None):
  """Per row: the loss `[C]`, its derivative in the logits `[C, k]`, and for one logit the loss's curvature
  there `[C, 1]` (for more, the probabilities `[C, k]`). `family`: a GLM's `(name, power)` (the deviance and
  Fisher's curvature, `losses.log_link_parts`), else the
  logistic (one logit) or softmax loss."""
  if family:
    loss, dz, curvature = losses_lib.log_link_parts(logits[:, 0], labels.astype(logits.dtype), family[1])
    return loss, dz[:, None], curvature[:, None]
  # One exponential a logit (a fair share of a pass on the CPU), and no overflow for any logit.
  if k == 1:
    z = logits[:, 0]
    y = labels.astype(z.dtype)
    e = jnp.exp(-jnp.abs(z))
    p = jnp.where(z >= 0, 1, e) / (1 + e)  # sigmoid(z)
    return jnp.maximum(z, 0) + jnp.log1p(e) - y * z, (p - y)[:, None], (p * (1 - p))[:, None]
  top = jnp.max(logits, axis=1, keepdims=True)
  e = jnp.exp(logits - top)
  total = jnp.sum(e, axis=1, keepdims=True)
  p = e / total
  onehot = jax.nn.one_hot(labels, k, dtype=logits.dtype)
  loss = (top + jnp.log(total))[:, 0] - jnp.sum(logits * onehot, axis=1)
  return loss, p - onehot, p


def _value_grad(x, theta, labels, weight, shift, scale, by_row: bool = False, family=None):
  """`(loss [K], grad [K, d + 1, k], curvature [K, C, k])`: weighted sums over this chunk's rows, the
  gradient in the standardised features of `theta [K, d + 1, k]`; `weight [K, C]` (`[C, K]` if `by_row`);
  the curvature of one logit's loss (more: the probabilities), for `_hessian`. `family`: `_loss_parts`'.

  The standardisation is folded into the parameters (`x W' + b'`) and the gradient (`(xᵀr - shift Σr) /
  scale`): no standardised copy of the rows (a 65536 x 32 chunk: 3.0 ms -> 1.0 ms). Float64 rows lose only
  `eps |shift| / scale` there; float32 rows come standardised (`shift` 0, `scale` 1).
  """
  theta = theta.astype(x.dtype)
  count, width, k = theta.shape
  rows = x.shape[0]
  kernel = theta[:, :-1, :] / scale[None, :, None]  # [K, d, k] on the raw rows
  bias = theta[:, -1, :] - jnp.einsum("d,kdc->kc", shift, kernel)  # [K, k]
  if by_row:
    # Many binary models: `[rows, models]` arrays, weights `[C, K]` as staged (`Weights.by_row`): no per-model
    # layout and no transpose. The loss is `-log q`, q the probability of the row's own label, reduced
    # from a materialised q (XLA's CPU fuses `Σ log(q) w` well, not the softplus form): 60 models on a
    # 65536-row chunk, 70 -> 20 ms. q is floored at the smallest normal number, so a row's loss is at most
    # ~708 (`|logit|` is exact below that) and a row of weight 0 adds 0, never 0 * inf.
    z = jax.lax.optimization_barrier(x @ kernel[:, :, 0].T + bias[:, 0][None, :])  # [C, K]
    positive = (labels > 0)[:, None]
    e = jnp.exp(-jnp.abs(z))
    q = jax.lax.optimization_barrier(
        jnp.maximum(jnp.where(positive == (z >= 0), 1, e) / (1 + e), np.finfo(z.dtype).tiny))
    loss = -jnp.sum(jnp.log(q) * weight, axis=0)
    residual = jax.lax.optimization_barrier(jnp.where(positive, q - 1, 1 - q) * weight)  # (p - y) w, [C, K]
    probabilities = (q * (1 - q)).T[:, :, None]  # the curvature p (1 - p)
  else:
    flat = jnp.transpose(kernel, (1, 0, 2)).reshape(width - 1, count * k)
    logits = jnp.transpose((x @ flat).reshape(rows, count, k) + bias[None], (1, 0, 2))  # [K, C, k]
    loss, dz, probabilities = jax.vmap(lambda z: _loss_parts(z, labels, k, family))(logits)
    loss = jnp.sum(weight * loss, axis=1)
    residual = jax.lax.optimization_barrier(
        jnp.transpose(weight[:, :, None] * dz, (1, 0, 2)).reshape(rows, count * k))  # [C, K k]
  grad_x = jax.lax.dot_general(residual, x, (((0,), (0,)), ((), ()))).reshape(count, k, width - 1)
  total = jnp.sum(residual, axis=0).reshape(count, k)
  grad_w = (jnp.transpose(grad_x, (0, 2, 1)) - shift[None, :, None] * total[:, None, :]) / scale[None, :, None]
  return loss, jnp.concatenate([grad_w, total[:, None, :]], axis=1), probabilities


def _standardised_hessian(hessian, shift, scale, k: int):
  """A Hessian `[K, p, p]` over `[x, 1]` as one over the standardised features: `(M ⊗ I)ᵀ H (M ⊗ I)`, with
  `[(x - shift) / scale, 1] = [x, 1] M`. Float64 rows lose `eps (|shift| / scale)²` there; the Hessian only
  steers Newton's steps (the gradient decides convergence), and float32 rows come standardised."""
  d = shift.shape[0]
  m = jnp.zeros((d + 1, d + 1), hessian.dtype)
  m = m.at[jnp.arange(d), jnp.arange(d)].set(1 / scale).at[d, :d].set(-shift / scale).at[d, d].set(1)
  count = hessian.shape[0]
  h = hessian.reshape(count, d + 1, k, d + 1, k)
  return jnp.einsum("ja,Kjclm,lb->Kacbm", m, h, m).reshape(count, (d + 1) * k, (d + 1) * k)


def _with_ones(x):
  return jax.lax.optimization_barrier(jnp.concatenate([x, jnp.ones((x.shape[0], 1), x.dtype)], axis=1))


# The `[rows, models]` passes go through a chunk in blocks of about this many (row, model) entries: their
# intermediates then stay in the caches (50 models on a 65536-row chunk: 39 -> 16 ms in blocks of 8192 rows;
# 200 models: 130 -> 58 ms in blocks of 2048). One model's and softmax's passes gain nothing from it.
BLOCK_ENTRIES = 2**19


def block_rows(rows: int, count: int) -> int:
  """Rows of a block of a `rows`-row chunk for `count` models: a power of two dividing `rows`."""
  size = 1 << max(0, int(math.log2(max(BLOCK_ENTRIES // count, 1))))
  return math.gcd(rows, size)


@functools.partial(jax.jit, static_argnames=("by_row", "family"))
def _value_grad_pass(totals, theta, x, labels, weight, shift, scale, by_row: bool = False, family=None):
  """`totals = (loss [K], grad [K, d + 1, k]) +=` this chunk's weighted sums."""
  rows, count = x.shape[0], theta.shape[0]
  size = block_rows(rows, count) if by_row else rows
  if size == rows:
    loss, grad, _ = _value_grad(x, theta, labels, weight, shift, scale, by_row, family)
    return totals[0] + loss, totals[1] + grad

  def block(totals, part):
    loss, grad, _ = _value_grad(part[0], theta, part[1], part[2], shift, scale, by_row, family)
    return (totals[0] + loss, totals[1] + grad), None

  blocks = rows // size
  parts = (x.reshape(blocks, size, -1), labels.reshape(blocks, size), weight.reshape(blocks, size, count))
  return jax.lax.scan(block, totals, parts)[0]


@functools.partial(jax.jit, static_argnames="family")
def _hessian_pass(total, theta, x, labels, weight, shift, scale, family=None):
  """`total [K, p, p] +=` this chunk's weighted Hessians, `p = (d + 1) k`, ordered as `theta[:, j, c]`
  flattened (j major): `Σ_i w_i (diag(p_i) - p_i p_iᵀ) ⊗ f_i f_iᵀ`."""
  _, _, p = _value_grad(x, theta, labels, weight, shift, scale, family=family)
  return total + _loss_hessian(x, p, weight, shift, scale)


@functools.partial(jax.jit, static_argnames=("by_row", "family"))
def _newton_pass(totals, theta, x, labels, weight, shift, scale, by_row: bool = False, family=None):
  """`_value_grad_pass` and `_hessian_pass` on the same rows in one program (data that fits the sample)."""
  loss, grad, p = _value_grad(x, theta, labels, weight, shift, scale, by_row, family)
  hessian = _loss_hessian(x, p, weight.T if by_row else weight, shift, scale)
  return totals[0] + loss, totals[1] + grad, totals[2] + hessian


def _low_precision(count: int, rows: int | None = None) -> bool:
  """Whether the Hessians of `count` models are summed in float32 (see `_loss_hessian`): many models, over
  `rows` of at least FLOAT32_MIN_ROWS where the rows are known (fewer: float64, which costs nothing there,
  and keeps the curvature of classes weighed 1e7 apart: their float32 Hessians took 1000 iterations)."""
  return count > GEMM_MODELS and (rows is None or rows >= FLOAT32_MIN_ROWS)


def _loss_hessian(x, p, weight, shift, scale):
  """`[K, p, p]`: the loss's Hessians in the standardised features from rows `x [C, d]`, probabilities
  `p [K, C, k]` and weights `[K, C]`.

  Many models' (one GEMM of the weights with the rows' outer products, `_weighted_grams`) are summed in
  float32 from rows standardised in the pass dtype first: the Hessian only steers Newton's steps, and its
  row sample's error (~5%) dwarfs float32's rounding (~3e-7), while the GEMM takes 0.6 of the time (50
  models on 32768 rows: 36 -> 23 ms). `_newton_direction` damps them above that rounding. Else in the pass
  dtype from the raw rows, standardised after (`_standardised_hessian`)."""
  if _low_precision(weight.shape[0], x.shape[0]):
    return _hessian(_with_ones((x - shift[None, :]) / scale[None, :]), p, weight, jnp.float32).astype(x.dtype)
  return _standardised_hessian(_hessian(_with_ones(x), p, weight), shift, scale, p.shape[-1])


def _hessian(f, p, weight, dtype=None):
  """`[K, p, p]` from the features `f [C, D]`, probabilities `p [K, C, k]` and weights `[K, C]`; `dtype`:
  the many-model GEMMs' (default f's)."""
  count, _, k = p.shape
  width = f.shape[1]
  if k == 1:  # p: the curvature
    return _weighted_grams(f, weight * p[:, :, 0], dtype)
  # diag(p) part: a Gram matrix a (model, class), block-diagonal over classes.
  blocks = _weighted_grams(f, jnp.transpose(weight[:, :, None] * p, (0, 2, 1)).reshape(count * k, -1), dtype)
  blocks = blocks.reshape(count, k, width, width)
  eye = jnp.eye(k, dtype=f.dtype)
  diagonal = jnp.einsum("kcjl,cm->kjclm", blocks, eye).reshape(count, width * k, width * k)

  def outer(pk, wk):  # Σ_i w_i (f_i ⊗ p_i)(f_i ⊗ p_i)ᵀ
    u = jax.lax.optimization_barrier((f[:, :, None] * pk[:, None, :]).reshape(f.shape[0], width * k)
                                     * jnp.sqrt(wk)[:, None])
    return u.T @ u

  return diagonal - jax.lax.map(lambda args: outer(*args), (p, weight))


@functools.partial(jax.jit, static_argnums=1)
def _prefix(arrays, size: int):
  return jax.tree.map(lambda v: v[:size], arrays)


def _accepted(pending, rate, slope, loss, grad, t_loss, t_grad, dtype, xp=np):
  """Armijo's sufficient decrease; or, where the change is below the pass dtype's rounding of the loss
  (float32 near the optimum), a smaller gradient. `xp`: numpy, or jax.numpy on the device."""
  armijo = t_loss <= loss - ARMIJO * rate * slope
  rounding = 8 * float(np.finfo(dtype).eps) * xp.maximum(xp.abs(loss), 1e-30)
  flat = (t_loss <= loss + rounding) & (xp.max(xp.abs(t_grad), axis=1) < xp.max(xp.abs(grad), axis=1))
  return pending & (armijo | flat)


def _penalty_diagonal(data: Staged, l2) -> np.ndarray:
  """`[K, d + 1, k]`: the penalty's Hessian in the standardised features, `l2 / scale²` (0 on the intercept)."""
  with np.errstate(over="ignore"):  # l2 / scale², 0 where l2 is 0 and at most 1e300 (as `_per_scale2`)
    per_row = np.concatenate([np.where(l2[:, None] > 0, np.minimum(l2[:, None] / data.scale / data.scale, 1e300),
                                       0.0), np.zeros((len(l2), 1))], axis=1)
  return np.broadcast_to(per_row[:, :, None], (len(l2), data.d + 1, data.k))


@functools.partial(jax.jit, static_argnames="rows")
def _newton_direction(grad, hessian, penalty, rows=None):
  """The Newton step `H⁻¹ g` of each model (float64, Cholesky with a relative damping floor for a
  flat direction), and for softmax projected onto logits that sum to 0 over classes (the loss does
  not change along that direction; scikit-learn's iterates stay there too)."""
  low = _low_precision(hessian.shape[0], rows) or hessian.dtype == jnp.float32
  hessian = hessian.astype(jnp.float64)
  size = hessian.shape[-1]
  relative = 1e-6 if low else 1e-12  # above the sums' rounding
  # Relative to the data's curvature, not the penalty's: the penalty is exact, and on features ~1e-9 its
  # curvature (l2 / scale²) made a floor that swamped the intercept's (fits never converged).
  floor = relative * jnp.maximum(jnp.max(jnp.abs(jax.vmap(jnp.diagonal)(hessian)), axis=1), 1e-300)
  hessian = hessian + jax.vmap(jnp.diag)(penalty)
  hessian = hessian + floor[:, None, None] * jnp.eye(size)[None]
  factor = jnp.linalg.cholesky(hessian)
  step = jax.vmap(lambda c, g: jax.scipy.linalg.cho_solve((c, True), g))(factor, grad)
  return step, jnp.all(jnp.isfinite(step), axis=1)


def _objective_parts(data, chunks, theta, l2, penalty_diag, hessian: bool):
  """`(objective [K], gradient [K, p], Hessian [K, p, p] or None)` at `theta`, float64 on the host: the
  loss and gradient from every row; the Hessian from every row, or from `data.sample` (large data)."""
  count = len(theta)
  p = (data.d + 1) * data.k
  args = data.args()
  theta_d = jax.device_put(theta) if len(data.chunk_rows) > 1 else theta  # (numpy: put by the call)
  totals = (np.zeros(count, data.dtype), np.zeros((count, data.d + 1, data.k), data.dtype))
  hessian_total = np.zeros((count, p, p), data.dtype) if hessian else None
  if hessian and chunks.sample is None:  # every row: one program a chunk
    totals = totals + (hessian_total,)
    for x, y, w in zip(*data.rows(), chunks.rows):
      totals = _newton_pass(totals, theta_d, x, y, w, *args, by_row=chunks.by_row, family=data.family)
    totals, hessian_total = totals[:2], totals[2]
  else:
    for x, y, w in zip(*data.rows(), chunks.rows):
      totals = _value_grad_pass(totals, theta_d, x, y, w, *args, by_row=chunks.by_row, family=data.family)
    if hessian:
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


def _project_classes(step: np.ndarray, data: Staged) -> np.ndarray:
  if data.k == 1:
    return step
  step = step.reshape(len(step), data.d + 1, data.k)
  return (step - step.mean(axis=2, keepdims=True)).reshape(len(step), -1)


def _finish(data, theta, loss, n_iter, converged, solver) -> Solution:
  coef, intercept = _from_scaled(data, theta[:, :-1], theta[:, -1])
  return Solution(coef, intercept, n_iter, converged, loss, solver)


def _newton(data, chunks, l2, theta, tol, max_iter) -> Solution:
  """Newton from `theta`; on large data from the optimum on a row sample first, whose Hessian there
  (exact on those rows) takes the first step over all rows where it has as many rows as the Hessian
  sample (a 1M-row fit: 65536 start rows; 50 fold models on 100k rows: 8192, and the sample's 32768 take
  it: its steps shrink the gradient ~20x, and 2 steps reach scikit-learn's tolerance, not 3)."""
  hessian = None
  if chunks.start is not None:
    theta, hessian = _sample_start(data, chunks, l2, theta, tol, max_iter, _newton_iterations)
    if chunks.sample is not None and chunks.start.shape[1] < chunks.sample.shape[1]:
      hessian = None
  theta, loss, n_iter, converged, _ = _newton_iterations(data, chunks, l2, theta, tol, max_iter, hessian)
  return _finish(data, theta, loss, n_iter, converged, "newton")


def _proximal_newton(data, chunks, l2, l1, theta, tol, max_iter) -> Solution:
  """L1 (and L2) penalised logistic, softmax and GLM fits by proximal Newton (glmnet's and glum's method): a
  pass gives the loss, gradient g and Hessian H at θ; coordinate descent on the penalised quadratic model
  `gᵀΔ + ½ Δᵀ(H + l2)Δ + l1 |θ + Δ|₁` (`_lasso_quadratic`) soft-thresholds each coefficient, so its zeros are
  0.0; a step halves until the objective falls by a fraction of the model's decrease (Armijo on the
  composite objective). It stops where the largest violation of the optimality conditions (the minimum-norm
  subgradient in the standardised features, as the elastic net's) is below `tol`. The Hessian comes from the
  row sample on large data (a preconditioner: the gradient, from every row, decides convergence)."""
  count = len(theta)
  penalty = _penalty_diagonal(data, l2)
  per_row = np.concatenate([1.0 / data.scale, [0.0]])  # |w_j| = |w_s,j| / scale_j; the intercept is free
  lasso = (l1[:, None, None] * np.broadcast_to(per_row[None, :, None], (1, data.d + 1, data.k))).reshape(count, -1)

  def composite(loss, t):
    return loss + np.sum(lasso * np.abs(t.reshape(count, -1)), axis=1)

  def violation(grad, t):
    flat = t.reshape(count, -1)
    away = np.abs(grad + lasso * np.sign(flat))
    return np.max(np.where(flat != 0, away, np.maximum(np.abs(grad) - lasso, 0.0)), axis=1)

  loss, grad, hessian = _objective_parts(data, chunks, theta, l2, penalty, True)
  n_iter = np.zeros(count, np.int64)
  converged = violation(grad, theta) <= tol
  stuck = np.zeros(count, bool)
  while True:
    active = ~converged & ~stuck & (n_iter < max_iter)
    if not active.any():
      break
    flat = theta.reshape(count, -1)
    # The model's minimiser u = θ + Δ: min ½uᵀAu - bᵀu + lasso |u|₁, A = H + l2, b = Aθ - g, from u = θ.
    eye = np.eye(flat.shape[1])
    matrix = np.asarray(hessian, np.float64) + np.einsum("kp,pq->kpq", penalty.reshape(count, -1), eye)
    target = np.einsum("kpq,kq->kp", matrix, flat) - grad
    # The model solved to 1e-6 of the violation, squared near the optimum: Newton's quadratic convergence,
    # and a last step fixed by the point it starts from (not by when coordinate descent stopped), so that
    # weighted and repeated rows end at the same answer.
    worst = violation(grad, theta)
    inner_tol = np.maximum(1e-6 * worst * np.minimum(worst, 1.0), 1e-14)
    u = np.asarray(_lasso_quadratic(matrix, target, lasso, flat, inner_tol, 100 * flat.shape[1]))
    step = u - flat
    # The model's decrease (< 0 unless at the optimum): the linear term and the change of the L1 norm.
    decrease = np.sum(grad * step, axis=1) + np.sum(lasso * (np.abs(u) - np.abs(flat)), axis=1)
    value = composite(loss, theta)
    rate = np.ones(count)
    pending = active & (decrease < 0)
    stuck |= active & ~pending
    while pending.any():
      trial = np.where(pending[:, None, None], theta + rate[:, None, None] * step.reshape(theta.shape), theta)
      t_loss, t_grad, t_hessian = _objective_parts(data, chunks, trial, l2, penalty, True)
      t_value = composite(t_loss, trial)
      rounding = 8 * float(np.finfo(data.dtype).eps) * np.maximum(np.abs(value), 1e-30)
      accept = pending & ((t_value <= value + ARMIJO * rate * decrease)
                          | ((t_value <= value + rounding) & (violation(t_grad, trial) < violation(grad, theta))))
      stuck |= pending & ~accept & (rate < 1e-10)
      theta = np.where(accept[:, None, None], trial, theta)
      loss, grad = np.where(accept, t_loss, loss), np.where(accept[:, None], t_grad, grad)
      hessian = np.where(accept[:, None, None], t_hessian, hessian)
      n_iter += accept
      pending &= ~accept & ~stuck
      rate = np.where(pending, rate / 2, rate)
    converged |= violation(grad, theta) <= tol
  fit = _finish(data, theta, composite(loss, theta), n_iter, converged, "newton")
  if data.k > 1:  # softmax: the loss ignores a shift of every class's intercept; scikit-learn's sum to 0
    fit.intercept -= fit.intercept.mean(axis=1, keepdims=True)
  return fit


@jax.jit
def _lasso_quadratic(matrix, target, lasso, start, tol, max_sweeps):
  """`[K, p]`: `argmin_u ½uᵀAu - bᵀu + Σ_j lasso_j |u_j|` per model (`matrix` A `[K, p, p]` positive
  semi-definite, `target` b, `lasso` >= 0 `[K, p]`) by cyclic coordinate descent from `start`, until the
  largest violation of its optimality conditions is below `tol [K]`, or `max_sweeps` sweeps."""

  def one(a, b, lam, u0, limit):
    diagonal = jnp.diagonal(a)
    # A flat coordinate (no curvature, no penalty): a tiny ridge keeps the update finite.
    diagonal = jnp.maximum(diagonal, 1e-12 * jnp.maximum(jnp.max(diagonal), 1e-300))

    def coordinate(j, u):
      rest = b[j] - a[j] @ u + a[j, j] * u[j]
      return u.at[j].set(jnp.sign(rest) * jnp.maximum(jnp.abs(rest) - lam[j], 0.0) / diagonal[j])

    def worst(u):
      grad = a @ u - b
      return jnp.max(jnp.where(u != 0, jnp.abs(grad + lam * jnp.sign(u)), jnp.maximum(jnp.abs(grad) - lam, 0.0)))

    def sweep(state):
      u, sweeps, _ = state
      u = jax.lax.fori_loop(0, u.shape[0], coordinate, u)
      return u, sweeps + 1, worst(u)

    u, _, _ = jax.lax.while_loop(lambda s: (s[2] > limit) & (s[1] < max_sweeps), sweep,
                                 (u0, jnp.zeros((), jnp.int64), worst(u0)))
    return u

  return jax.vmap(one, in_axes=(0, 0, 0, 0, 0))(matrix, target, lasso, start, tol)


# Newton and L-BFGS on large data start from the optimum on a prefix of the row sample, of at most `n /
# START_FRACTION` rows (a power of two from MIN_START_ROWS to START_MAX_ROWS; else from `start`): its passes
# cost a fraction of one over all rows. A start of many rows is itself started on its first LOOP_ROWS rows
# (one device program). A 1M x 32 logistic fit: 32768 start rows, then 3 passes over all rows and 2 Hessians;
# 65536 (from 8192), then 2 passes and none (the start's Hessian is good enough for the one step).
START_FRACTION = 8
MIN_START_ROWS = 1024
START_MAX_ROWS = 2 * CHUNK
START_TOL = 0.1


def start_rows(data: Staged) -> int:
  """Rows of the sample the iterative solvers first solve on (0: none): a power of two up to `n /
  START_FRACTION`, at least `MIN_START_ROWS`."""
  if data.sample_rows is None or data.n < START_FRACTION * MIN_START_ROWS:
    return 0
  return min(len(data.sample_rows), START_MAX_ROWS, 1 << int(math.log2(data.n // START_FRACTION)))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _split(arrays, size: int, chunk: int):
  """The first `size` rows of each array, in chunks of `chunk` rows."""
  return [jax.tree.map(lambda v, start=start: v[start:start + chunk], arrays) for start in range(0, size, chunk)]


def _sample_start(data, chunks, l2, theta, tol_all, max_iter, iterations):
  """`(theta, memory)`: each model's optimum on the first rows of the sample (`chunks.start`, weighted as
  there) where `iterations` (`_newton_iterations` or `_lbfgs_iterations`) reached it, else `theta`; and what
  the solver learnt there of the curvature (Newton: the Hessian, exact on those rows, where every model
  reached it; L-BFGS: its curvature pairs). The distance to the optimum on all rows is sampling error, which
  a step or two over all rows removes."""
  weights = chunks.start
  total = weights.shape[1]
  # The optimum on R rows is ~1/√R from all rows' (in gradient units of the standardised features): for
  # Newton, a tenth of that is close enough to start from (the full rows' steps remove the rest). L-BFGS
  # goes on to `tol` there: its curvature pairs are what it carries on (a 20,000 x 410 fit: 12 iterations
  # over all rows, 13 with the looser start).
  loose = iterations is _newton_iterations
  tol = lambda rows: max(tol_all, START_TOL / math.sqrt(rows)) if loose else tol_all
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
    if loose:  # Newton's sample (float32 standardised rows for a classifier)
      x, y, *args = data.newton_sample()
      xs, ys = zip(*_split((x, y), rows, size))
      sample = dataclasses.replace(data, x=list(xs), y=list(ys), n=rows, sample=None, sample_rows=None,
                                   chunk_rows=(size,) * len(xs), host=None, dtype=data.newton_dtype,
                                   pass_arrays=tuple(args), newton_rows=None)
    else:
      xs, ys = zip(*_split(data.sample, rows, size))
      sample = dataclasses.replace(data, x=list(xs), y=list(ys), n=rows, sample=None, sample_rows=None,
                                   chunk_rows=(size,) * len(xs), host=None)
    by_row = _by_row(sample, len(theta))
    with jax.enable_x64(True):
      part = (part / mass).astype(sample.dtype)
      rows_weights = [jax.device_put(part[:, i:i + size].T if by_row else part[:, i:i + size],
                                     chunks.rows[0].sharding) for i in range(0, rows, size)]
    found, _, _, converged, memory = iterations(sample, Weights(rows_weights, None, by_row, spread=True), l2,
                                                theta, tol(rows), max_iter, memory)
    theta = np.where(converged[:, None, None], found.reshape(theta.shape), theta)
    if iterations is _lbfgs_iterations:
      s_hist, y_hist, stored = memory
      memory = (s_hist, y_hist, np.where(converged, stored, 0))
    elif not converged.all():
      memory = None
  return theta, memory


def _newton_iterations(data, chunks, l2, theta, tol, max_iter, hessian=None):
  """`(theta, objective, n_iter, converged, hessian)` after Newton from `theta` (all `[K, ...]`); `hessian`
  `[K, p, p]` (of the loss, penalty excluded) takes the first step where the Hessian comes from a row sample,
  and the last one is returned."""
  count = len(theta)
  penalty = _penalty_diagonal(data, l2)
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
  loss, grad, hessian = _objective_parts(data, chunks, theta, l2, penalty, not separate)
  n_iter = np.zeros(count, np.int64)
  converged = np.max(np.abs(grad), axis=1) <= tol
  stuck = np.zeros(count, bool)  # no decrease left at the pass's precision: it can go no further
  while True:
    active = ~converged & ~stuck & (n_iter < max_iter)
    if not active.any():
      break
    if separate:
      hessian = _sample_hessian(data, chunks, theta) if given is None else given
      given = None
    step, finite = _newton_direction(grad, hessian, penalty.reshape(count, -1), rows=max(data.chunk_rows))
    step = _project_classes(np.where(np.asarray(finite)[:, None], np.asarray(step), grad), data)
    slope = np.sum(grad * step, axis=1)  # > 0: -step descends
    rate = np.ones(count)
    pending = active.copy()
    while pending.any():
      trial = np.where(pending[:, None, None], theta - rate[:, None, None] * step.reshape(theta.shape), theta)
      t_loss, t_grad, t_hessian = _objective_parts(data, chunks, trial, l2, penalty, not separate)
      accept = _accepted(pending, rate, slope, loss, grad, t_loss, t_grad, data.dtype)
      stuck |= pending & ~accept & (rate < 1e-10)
      theta = np.where(accept[:, None, None], trial, theta)
      loss, grad = np.where(accept, t_loss, loss), np.where(accept[:, None], t_grad, grad)
      if not separate:
        hessian = np.where(accept[:, None, None], t_hessian, hessian)
      n_iter += accept
      pending &= ~accept & ~stuck
      rate = np.where(pending, rate / 2, rate)
    converged |= np.max(np.abs(grad), axis=1) <= tol
  return theta, loss, n_iter, converged, hessian


@functools.partial(jax.jit, static_argnames=("by_row", "family", "spread"))
def _newton_loop(theta, x, labels, weight, shift, scale, penalty, tol, max_iter, by_row: bool = False,
                 family=None, spread: bool = False):
  """`_newton_iterations` over one chunk of rows as one program: every iteration and its line search run on
  the device (a fit of a few hundred rows: ~12 dispatches and host round trips -> 1). The same steps,
  acceptance and stopping rule as the host loop; `penalty [K, d + 1, k]` is `_penalty_diagonal`'s.

  Many models on the row sample's rows (`spread`: a start) take their Hessians from its first `LOOP_ROWS /
  START_FRACTION` rows (spread over the data too, reweighted to the models' mass): a few more steps, each
  much cheaper (50 fold models on 8192 rows: 49 -> 26 ms); a model with no weight there, from every row.
  Rows as the data gives them (perhaps sorted) always give their Hessians from every row."""
  count = theta.shape[0]
  prefix = LOOP_ROWS // START_FRACTION if spread and _low_precision(count) and x.shape[0] >= LOOP_ROWS else 0

  def hessian_of(p):
    w = weight.T if by_row else weight
    if not prefix:
      return _loss_hessian(x, p, w, shift, scale)
    part = w[:, :prefix]
    mass = jnp.sum(part, axis=1, keepdims=True)
    return jax.lax.cond(
        jnp.all(mass > 0),
        lambda: _loss_hessian(x[:prefix], p[:, :prefix], part * (jnp.sum(w, axis=1, keepdims=True) / mass), shift,
                              scale),
        lambda: _loss_hessian(x, p, w, shift, scale))

  def parts(t):
    loss, grad, p = _value_grad(x, t, labels, weight, shift, scale, by_row, family)
    hessian = hessian_of(p)
    loss = loss.astype(jnp.float64) + 0.5 * jnp.sum(penalty * t**2, axis=(1, 2))
    grad = grad.astype(jnp.float64).reshape(count, -1) + (penalty * t).reshape(count, -1)
    return loss, grad, hessian

  return _device_newton(theta, parts, None, penalty, tol, max_iter, x.dtype, rows=x.shape[0])


@functools.partial(jax.jit, static_argnames=("by_row", "family", "sample_size"))
def _newton_rows(theta, xs, labels, weights, shift, scale, penalty, tol, max_iter, sample, given, use_given,
                 by_row: bool = False, family=None, sample_size: int = 0):
  """`_newton_iterations` over a few chunks of rows (`xs`, `labels`, `weights`: tuples, a chunk each) as one
  program: every pass, Hessian, Newton direction and line search on the device, no host round trip between
  them (one model on 80k x 32, a whole fit: 25.5 -> 21.2 ms, paired runs). `sample`: `(x, labels, shift,
  scale, weights [K, S])`, the row sample (`Staged.newton_sample`) whose first `sample_size` rows give the
  Hessian at each iterate (None: every row's, from the pass itself); `given [K, p, p]` takes the first step
  where `use_given`."""
  count, width, k = theta.shape
  dtype = xs[0].dtype
  separate = sample is not None

  def parts(t):
    totals = (jnp.zeros(count, dtype), jnp.zeros((count, width, k), dtype))
    if not separate:
      totals = totals + (jnp.zeros((count, width * k, width * k), dtype),)
    for x, y, w in zip(xs, labels, weights):
      pass_ = _value_grad_pass if separate else _newton_pass
      totals = pass_(totals, t, x, y, w, shift, scale, by_row=by_row, family=family)
    loss = totals[0].astype(jnp.float64) + 0.5 * jnp.sum(penalty * t**2, axis=(1, 2))
    grad = totals[1].astype(jnp.float64).reshape(count, -1) + (penalty * t).reshape(count, -1)
    return loss, grad, (None if separate else totals[2])

  def sample_hessian(t):
    x, y, sample_shift, sample_scale, w = sample
    total = jnp.zeros((count, width * k, width * k), x.dtype)
    return _hessian_pass(total, t, x[:sample_size], y[:sample_size], w, sample_shift, sample_scale, family=family)

  return _device_newton(theta, parts, sample_hessian if separate else None, penalty, tol, max_iter, dtype,
                        (given, use_given), rows=max(max(x.shape[0] for x in xs), sample_size or 0))


def _device_newton(theta, parts, sample_hessian, penalty, tol, max_iter, dtype, given=None, rows=None):
  """The Newton iterations of `_newton_iterations` inside a program: the same steps, acceptance and stopping
  rule. `parts(t)` → `(loss [K], grad [K, p], Hessian [K, p, p] or None)` with the penalty; where it gives
  no Hessian, `sample_hessian(t)` does, at each iterate a step leaves from (`given`: `(Hessian, flag)`, the
  first step's where the flag is set). Returns `(theta, loss, n_iter, converged, hessian)`."""
  count, _, k = theta.shape
  flat_penalty = penalty.reshape(count, -1)

  def search(state, step, slope):
    theta, loss, grad, hessian, n_iter, stuck, rate, pending = state
    trial = jnp.where(pending[:, None, None], theta - rate[:, None, None] * step.reshape(theta.shape), theta)
    t_loss, t_grad, t_hessian = parts(trial)
    accept = _accepted(pending, rate, slope, loss, grad, t_loss, t_grad, dtype, xp=jnp)
    stuck = stuck | (pending & ~accept & (rate < 1e-10))
    theta = jnp.where(accept[:, None, None], trial, theta)
    loss, grad = jnp.where(accept, t_loss, loss), jnp.where(accept[:, None], t_grad, grad)
    if t_hessian is not None:
      hessian = jnp.where(accept[:, None, None], t_hessian, hessian)
    pending = pending & ~accept & ~stuck
    n_iter = n_iter + accept.astype(n_iter.dtype)
    return theta, loss, grad, hessian, n_iter, stuck, jnp.where(pending, rate / 2, rate), pending

  def active(state):
    _, _, _, _, n_iter, converged, stuck = state
    return ~converged & ~stuck & (n_iter < max_iter)

  def iteration(state):
    theta, loss, grad, hessian, n_iter, converged, stuck = state
    if sample_hessian is not None:  # at the iterate, but not at the zero step of the first evaluation
      first = given[1] & jnp.all(n_iter <= 0)
      hessian = jax.lax.cond(jnp.all(n_iter < 0), lambda: hessian,
                             lambda: jax.lax.cond(first, lambda: given[0], lambda: sample_hessian(theta)))
    step, finite = _newton_direction(grad, hessian, flat_penalty, rows=rows)
    step = jnp.where(finite[:, None], step, grad)
    if k > 1:  # logits that sum to 0 over classes (as `_project_classes`)
      step = step.reshape(count, -1, k)
      step = (step - jnp.mean(step, axis=2, keepdims=True)).reshape(count, -1)
    slope = jnp.sum(grad * step, axis=1)
    found = jax.lax.while_loop(lambda s: jnp.any(s[-1]), lambda s: search(s, step, slope),
                               (theta, loss, grad, hessian, n_iter, stuck, jnp.ones(count), active(state)))
    theta, loss, grad, hessian, n_iter, stuck = found[:6]
    return theta, loss, grad, hessian, n_iter, converged | (jnp.max(jnp.abs(grad), axis=1) <= tol), stuck

  # The first evaluation is an iteration's zero step from a point of infinite loss (accepted unless the loss
  # is NaN, and not counted): the pass appears once in the program (twice took twice as long to compile).
  size = flat_penalty.shape[1]
  hessian_dtype = dtype if given is None else given[0].dtype  # (a row sample's Hessian: its own dtype)
  start = (theta, jnp.full(count, jnp.inf), jnp.zeros((count, size)), jnp.zeros((count, size, size), hessian_dtype),
           jnp.full(count, -1, jnp.int64), jnp.zeros(count, bool), jnp.zeros(count, bool))
  theta, loss, _, hessian, n_iter, converged, _ = jax.lax.while_loop(lambda s: jnp.any(active(s)), iteration, start)
  return theta, loss, jnp.maximum(n_iter, 0), converged, hessian


def _lbfgs(data, chunks, l2, theta, tol, max_iter) -> Solution:
  """L-BFGS from `theta`; on large data from the optimum on a row sample first (as `_newton`)."""
  memory = None
  if chunks.start is not None:  # and its curvature pairs, which describe the whole data's Hessian well too
    theta, memory = _sample_start(data, chunks, l2, theta, tol, max_iter, _lbfgs_iterations)
  flat, loss, n_iter, converged, _ = _lbfgs_iterations(data, chunks, l2, theta, tol, max_iter, memory)
  return _finish(data, flat.reshape(theta.shape), loss, n_iter, converged, "lbfgs")


def _lbfgs_iterations(data, chunks, l2, theta, tol, max_iter, memory=None):
  """`(theta [K, p], objective, n_iter, converged, memory)` after L-BFGS from `theta`; `memory` `(s [K, m, p],
  y [K, m, p], stored [K])`: curvature pairs to start from (a sample's, `_lbfgs`), returned updated."""
  count, p = len(theta), theta[0].size
  penalty = _penalty_diagonal(data, l2)
  loss, grad, _ = _objective_parts(data, chunks, theta, l2, penalty, False)
  if memory is None:
    memory = (np.zeros((count, LBFGS_MEMORY, p)), np.zeros((count, LBFGS_MEMORY, p)), np.zeros(count, np.int64))
  s_hist, y_hist, stored = (v.copy() for v in memory)
  n_iter = np.zeros(count, np.int64)
  converged = np.max(np.abs(grad), axis=1) <= tol
  stuck = np.zeros(count, bool)
  flat = theta.reshape(count, p)
  while True:
    active = ~converged & ~stuck & (n_iter < max_iter)
    if not active.any():
      break
    step = _two_loop(grad, s_hist, y_hist, stored)
    step = _project_classes(step, data)
    slope = np.sum(grad * step, axis=1)
    bad = slope <= 0
    step[bad], slope[bad] = grad[bad], np.sum(grad[bad] ** 2, axis=1)
    rate = np.ones(count)
    pending = active.copy()
    while pending.any():
      trial = np.where(pending[:, None], flat - rate[:, None] * step, flat)
      t_loss, t_grad, _ = _objective_parts(data, chunks, trial.reshape(theta.shape), l2, penalty, False)
      accept = _accepted(pending, rate, slope, loss, grad, t_loss, t_grad, data.dtype)
      stuck |= pending & ~accept & (rate < 1e-10)
      for j in np.flatnonzero(accept):
        s, y = trial[j] - flat[j], t_grad[j] - grad[j]
        if s @ y > 1e-12 * np.sqrt((s @ s) * (y @ y)):
          s_hist[j] = np.roll(s_hist[j], -1, axis=0)
          y_hist[j] = np.roll(y_hist[j], -1, axis=0)
          s_hist[j, -1], y_hist[j, -1] = s, y
          stored[j] = min(stored[j] + 1, LBFGS_MEMORY)
      flat = np.where(accept[:, None], trial, flat)
      loss, grad = np.where(accept, t_loss, loss), np.where(accept[:, None], t_grad, grad)
      n_iter += accept
      pending &= ~accept & ~stuck
      rate = np.where(pending, rate / 2, rate)
    converged |= np.max(np.abs(grad), axis=1) <= tol
  return flat, loss, n_iter, converged, (s_hist, y_hist, stored)


def _two_loop(grad, s_hist, y_hist, stored):
  """L-BFGS's `H⁻¹ g` for every model (numpy, float64); the initial inverse Hessian is `sᵀy / yᵀy` of the
  latest pair (before any pair: a first step of at most 1 in the standardised features)."""
  count = len(grad)
  out = np.empty_like(grad)
  for j in range(count):
    q = grad[j].copy()
    m = stored[j]
    alphas = []
    for i in range(LBFGS_MEMORY - 1, LBFGS_MEMORY - 1 - m, -1):
      s, y = s_hist[j, i], y_hist[j, i]
      rho = 1.0 / (y @ s)
      alpha = rho * (s @ q)
      q -= alpha * y
      alphas.append((rho, alpha, s, y))
    if m:
      s, y = s_hist[j, -1], y_hist[j, -1]
      q *= (s @ y) / (y @ y)
    else:
      q /= max(np.max(np.abs(grad[j])), 1.0)  # a first step no longer than 1 in the standardised features
    for rho, alpha, s, y in reversed(alphas):
      beta = rho * (y @ q)
      q += (alpha - beta) * s
    out[j] = q
  return out
