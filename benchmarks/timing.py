"""What every benchmark times with: the median of repeated calls (the caller blocks on device work)."""

from __future__ import annotations

import statistics
import time


def timed(fn, repeats: int):
  """`(median seconds, (min, max), fn's last result)` of `repeats` calls of `fn()`."""
  times, result = [], None
  for _ in range(repeats):
    start = time.perf_counter()
    result = fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times), (min(times), max(times)), result


def median_time(fn, repeats: int):
  """`(median seconds, (min, max))` of `repeats` calls of `fn()`."""
  return timed(fn, repeats)[:2]
