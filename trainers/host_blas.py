"""flaxzoo's own BLAS calls on the host run on one thread.

OpenBLAS's threads spin while they wait: issue 31 measured `xᵀx` of 300k x 40 at 4-6 s instead of 0.03 s on
a machine whose other core was busy. (Not reproduced on the day this was added: there the first least-squares
fit took 0.46 s with default threads and 0.45 s with one, busy or idle alike; Huber on 200 x 2000 was faster
on one thread, 0.39 s against 0.67 s.) One thread cannot spin against anyone. Limited per call
(threadpoolctl), never process-wide: the user's own NumPy keeps its threads.
"""

from __future__ import annotations

import contextlib

_controllers = {}


def one_thread(scipy: bool = True):
  """A context in which NumPy's and SciPy's BLAS use one thread; `scipy=False`: NumPy's only, for a caller that
  uses no SciPy (importing it costs a fresh process ~0.3 s: a Huber fit of 500 rows takes 1 ms)."""
  import sys

  if scipy:
    import scipy.linalg  # noqa: F401 - SciPy's own OpenBLAS, loaded before the libraries are listed
  key = "scipy.linalg" in sys.modules  # the libraries listed: a controller made before SciPy was loaded lacks it
  if key not in _controllers:
    from threadpoolctl import ThreadpoolController

    _controllers[key] = ThreadpoolController()
  controller = _controllers[key]
  if not controller.lib_controllers:
    return contextlib.nullcontext()
  return controller.limit(limits=1, user_api="blas")


_pool = None


def host_workers() -> int:
  """Threads for the host's blocked sums: `FLAXZOO_HOST_THREADS` where set, else the cores this process may use,
  at most 4."""
  import os

  if os.environ.get("FLAXZOO_HOST_THREADS", "").strip().isdigit():
    return max(1, int(os.environ["FLAXZOO_HOST_THREADS"]))
  try:
    cores = len(os.sched_getaffinity(0))
  except AttributeError:  # (no affinity on macOS)
    cores = os.cpu_count() or 1
  return max(1, min(4, cores))


def in_parts(work, parts: int | None = None) -> list:
  """`[work(i, parts) for i in range(parts)]`, the parts on threads of their own (default `host_workers()`).

  For blocked sums whose BLAS calls run on one thread each (`one_thread`): the calls release the GIL, so the
  parts run on as many cores (a weighted Gram of 1M x 32 rows in two halves: 138 -> 86 ms on two cores). A
  waiting thread sleeps, never spins."""
  global _pool
  parts = host_workers() if parts is None else parts
  if parts == 1:
    return [work(0, 1)]
  if _pool is None or _pool._max_workers < parts:
    from concurrent.futures import ThreadPoolExecutor

    _pool = ThreadPoolExecutor(parts, thread_name_prefix="flaxzoo-host")
  return [future.result() for future in [_pool.submit(work, i, parts) for i in range(parts)]]


# Arrays of at least this many entries are worked on a share of their rows on each core (`in_row_shares`).
PARALLEL_ENTRIES = 1 << 22


def in_row_shares(work, array) -> list:
  """`[work(start, stop)]` over contiguous shares of `array`'s rows, in order: one share where it has fewer than
  `PARALLEL_ENTRIES` entries (or one row), else one a core (`host_workers()`, at most a row each) on threads of
  their own (`in_parts`). For passes whose NumPy calls release the GIL (sums, minima)."""
  rows = len(array)
  if array.size < PARALLEL_ENTRIES or rows < 2:
    return [work(0, rows)]
  import numpy as np

  bounds = np.linspace(0, rows, min(host_workers(), rows) + 1).astype(int)
  return in_parts(lambda i, _: work(bounds[i], bounds[i + 1]), len(bounds) - 1)
