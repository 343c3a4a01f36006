"""flaxzoo's warm fit times on two checkouts, back to back: a redesign's "speed preserved", measured.

  python benchmarks/back_to_back.py OLD_CHECKOUT NEW_CHECKOUT [--runs 3] [--repeats 3] [--only ROW,...]

Each checkout needs its own virtualenv in `.venv` (`pip install -e '.[test]'`). For every run and row, the
row's flaxzoo worker of `benchmarks/solvers.py` runs in a fresh process on each checkout, the order
alternating from run to run; a worker's `warm` is the median of `--repeats` fits. Prints each row's median
over the runs, new / old (this machine's absolute times drift; the ratio is what counts).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from solvers import ROWS  # noqa: E402


def warm(checkout: str, row: str, repeats: int) -> dict:
  done = subprocess.run([os.path.join(checkout, ".venv", "bin", "python"), os.path.join(checkout, "benchmarks",
                         "solvers.py"), "--worker", row, "flaxzoo", "--repeats", str(repeats)],
                        capture_output=True, text=True, cwd=checkout, check=False)
  if done.returncode:
    raise SystemExit(f"{checkout} {row} failed:\n{done.stderr[-2000:]}")
  return json.loads(done.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("old")
  parser.add_argument("new")
  parser.add_argument("--runs", type=int, default=3)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--only", help="comma-separated rows")
  parser.add_argument("--json", help="write the times here")
  args = parser.parse_args()
  rows = args.only.split(",") if args.only else list(ROWS)
  trees = {"old": args.old, "new": args.new}
  times = {name: {row: [] for row in rows} for name in trees}
  for run in range(args.runs):
    for row in rows:
      for name in (("old", "new") if run % 2 == 0 else ("new", "old")):
        result = warm(trees[name], row, args.repeats)
        times[name][row].append(result["warm_s"])
        print(f"run {run} {row:>20} {name}: warm {result['warm_s']:.4f} s", flush=True)
  print("\nrow: the median over the runs of each worker's warm median")
  for row in rows:
    old, new = statistics.median(times["old"][row]), statistics.median(times["new"][row])
    print(f"{row:>20}: old {old:.4f} s  new {new:.4f} s  new / old {new / old:.3f}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"name": "back_to_back", "times": times, "args": vars(args)}, f, indent=2)


if __name__ == "__main__":
  main()
