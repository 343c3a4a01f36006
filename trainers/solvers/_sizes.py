"""How the solvers size their work: row chunks and buckets, the Hessian's row sample, blocks, the start rows.

Every size is a function of the data's shape and the number of models, never of their values: the compiled
programs are keyed by these sizes, so a new fit of the same shape compiles nothing.
"""

from __future__ import annotations

import math

# Rows of one chunk of the data on the device; fewer rows are padded to a power of two (at least MIN_BUCKET).
CHUNK = 65536
MIN_BUCKET = 64
TAIL_STEP = CHUNK // 8
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

# Many classifiers on float64 rows pass in float32 (standardised on the host in float64 first) where the
# tolerance is far above float32's rounding of their gradients: on 100k x 32 that rounding is 7e-9 (50 fold
# models at the float64 optimum), and at tol 1e-4 their answers moved 6e-8 where the tolerance leaves them
# 2.5e-4 from the optimum, while the passes' GEMMs and exponentials took half the time (LinearClassifierCV:
# 337 -> 209 ms). A tighter tolerance passes in float64. One model gains nothing (the host's standardised
# copy costs what its passes save), nor do a few thousand rows.
FLOAT32_TOL = 1e-5
FLOAT32_MIN_ROWS = 8192


# K models' weighted Gram matrices: up to this many as K GEMMs of `sqrt(w) z` (XLA's CPU GEMM is fastest on a
# product of one operand with itself: `uᵀu` took 5 ms a 65536 x 34 chunk, `zᵀ(w z)` 17 ms); more as one GEMM
# of the weights with the rows' outer products (upper triangle), sub-chunk by sub-chunk (60 models: 86 ms, not 370).
GEMM_MODELS = 6
OUTER_ROWS = 2048
# The `[rows, models]` passes go through a chunk in blocks of about this many (row, model) entries: their
# intermediates then stay in the caches (50 models on a 65536-row chunk: 39 -> 16 ms in blocks of 8192 rows;
# 200 models: 130 -> 58 ms in blocks of 2048). One model's and softmax's passes gain nothing from it.
BLOCK_ENTRIES = 2**19
# Newton and L-BFGS on large data start from the optimum on a prefix of the row sample, of at most `n /
# START_FRACTION` rows (a power of two from MIN_START_ROWS to START_MAX_ROWS; else from `start`): its passes
# cost a fraction of one over all rows. A start of many rows is itself started on its first LOOP_ROWS rows
# (one device program). A 1M x 32 logistic fit: 32768 start rows, then 3 passes over all rows and 2 Hessians;
# 65536 (from 8192), then 2 passes and none (the start's Hessian is good enough for the one step).
START_FRACTION = 8
MIN_START_ROWS = 1024
START_MAX_ROWS = 2 * CHUNK
START_TOL = 0.1


def bucket(n: int) -> int:
  """Rows of the compiled pass for `n` rows: a power of two (at least `MIN_BUCKET`), at most `CHUNK`."""
  return min(CHUNK, max(MIN_BUCKET, 1 << max(0, math.ceil(math.log2(max(n, 1))))))


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


def block_rows(rows: int, count: int) -> int:
  """Rows of a block of a `rows`-row chunk for `count` models: a power of two dividing `rows`."""
  size = 1 << max(0, int(math.log2(max(BLOCK_ENTRIES // count, 1))))
  return math.gcd(rows, size)


def _low_precision(count: int, rows: int | None = None) -> bool:
  """Whether the Hessians of `count` models are summed in float32 (see `_loss_hessian`): many models, over
  `rows` of at least FLOAT32_MIN_ROWS where the rows are known (fewer: float64, which costs nothing there,
  and keeps the curvature of classes weighed 1e7 apart: their float32 Hessians took 1000 iterations)."""
  return count > GEMM_MODELS and (rows is None or rows >= FLOAT32_MIN_ROWS)
