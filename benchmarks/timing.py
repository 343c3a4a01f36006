"""What every benchmark times with: the median of repeated calls (the caller blocks on device work)."""

from __future__ import annotations

import os
import statistics
import time


def use_compilation_cache() -> None:
  """JAX's persistent compilation cache as docs/api.md tells a user to turn it on (the library never does):
  in `$FLAXZOO_JAX_CACHE`, else ~/.cache/flaxzoo/jax. A benchmark's `first` fit is a user's second session."""
  import jax

  where = os.environ.get("FLAXZOO_JAX_CACHE") or os.path.expanduser("~/.cache/flaxzoo/jax")
  jax.config.update("jax_compilation_cache_dir", where)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


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


def report(name: str, metrics: dict, details: dict, args, path: str | None, width: int = 45) -> None:
  """Prints each ratio of `metrics` and, with `path`, writes `{name, metrics, details, args}` there as JSON."""
  import json

  for key, value in metrics.items():
    print(f"{key:>{width}}: {value:.3f}x")
  if path:
    with open(path, "w") as f:
      json.dump({"name": name, "metrics": metrics, "details": details, "args": vars(args)}, f, indent=2)
