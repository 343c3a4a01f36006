"""The first least-squares fit while another process keeps one of the two cores busy.

  python benchmarks/under_load.py [--repeats 3] [--rows 300000] [--smoke] [--json PATH]

A spinning process (`while True: pass`, killed at the end) holds one core; each fit runs in a fresh process
(imports and the data not timed; JAX's persistent compilation cache warm, as a user's second session has
it): flaxzoo's `LinearRegression().fit` on `--rows` x 40, scikit-learn's `LinearRegression().fit` on the same
rows, and flaxzoo with its host BLAS on OpenBLAS's default threads (`host_blas.one_thread` off: the code
before it). The same three with both cores idle. Medians of `--repeats` processes; ratios over
scikit-learn's, measured in this run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import report, use_compilation_cache  # noqa: E402


def worker(library: str, rows: int) -> float:
  import numpy as np

  x = np.random.default_rng(0).normal(size=(rows, 40))
  y = x @ np.arange(40.0) + 1.0
  if library == "sklearn":
    from sklearn.linear_model import LinearRegression
  else:
    import flaxzoo.trainers.exact  # noqa: F401 - (the solvers' package re-exports lazily: imported here, not in the fit)
    import flaxzoo.trainers.host_blas as host_blas
    from flaxzoo.sklearn import LinearRegression
    from flaxzoo.trainers.solvers import solve  # noqa: F401

    use_compilation_cache()

    if library == "flaxzoo_threaded":
      host_blas.one_thread = lambda scipy=True: contextlib.nullcontext()
  start = time.perf_counter()
  LinearRegression().fit(x, y)
  return time.perf_counter() - start


def measure(library: str, rows: int, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    done = subprocess.run([sys.executable, __file__, "--worker", library, "--rows", str(rows)], capture_output=True,
                          text=True, check=True, timeout=600)
    times.append(float(done.stdout.strip().splitlines()[-1]))
  return statistics.median(times)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--rows", type=int, default=300_000)
  parser.add_argument("--smoke", action="store_true", help="tiny sizes, only to prove it runs")
  parser.add_argument("--json")
  parser.add_argument("--worker", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    print(worker(args.worker, args.rows))
    return
  if args.smoke:
    args.repeats, args.rows = 1, 2000
  libraries = ("flaxzoo", "sklearn", "flaxzoo_threaded")
  measure("flaxzoo", args.rows, 1)  # fills the compilation cache
  results = {"idle": {lib: measure(lib, args.rows, args.repeats) for lib in libraries}}
  spin = "import time\nend = time.time() + 900\nwhile time.time() < end: pass"  # bounded, and killed below
  spinner = subprocess.Popen([sys.executable, "-c", spin])
  try:
    time.sleep(0.5)
    results["one_core_busy"] = {lib: measure(lib, args.rows, args.repeats) for lib in libraries}
  finally:
    spinner.kill()
    spinner.wait()
  metrics = {}
  for load, times in results.items():
    print(f"{load:>14}: " + "  ".join(f"{lib} {t:.3f} s" for lib, t in times.items()))
    metrics[f"{load}_first_fit_vs_sklearn"] = times["flaxzoo"] / times["sklearn"]
    metrics[f"{load}_threaded_vs_sklearn"] = times["flaxzoo_threaded"] / times["sklearn"]
  report("under_load", metrics, results, args, args.json, width=40)


if __name__ == "__main__":
  main()
