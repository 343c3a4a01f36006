"""What a user waits for around the compute: CLI start, a whole training run, and predict at scale.

  python benchmarks/startup.py [--repeats 3] [--rows 1000000] [--smoke] [--json PATH]

Every time is the median of `--repeats` fresh processes, measured in this run against its own
baseline (2 shared cores here: absolute times drift, ratios much less):

  * help_s, list_s, usage_error_s: `flaxzoo --help`, `flaxzoo list`, `flaxzoo train brain_age_gm --lr -1`;
  * import_floor_s: `python -c "import jax, jax.numpy as jnp, flax.nnx, optax; jnp.zeros(1).block_until_ready()"`,
    the least any Flax program pays;
  * train_x_import_floor: `flaxzoo train brain_age_gm` end to end (default outputs: checkpoints,
    metrics.jsonl, TensorBoard, plots in the background), over the floor, with JAX's compilation
    cache warm (the first run fills it: train_cold_x_import_floor);
  * predict_rows_per_s: `flaxzoo predict brain_age_tissue` on a `--rows` volume table, rows per second
    beyond start-up (its time minus that of a 1-row table); predict_peak_rss_mb: its peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

CLI = [sys.executable, "-m", "flaxzoo.experiments.cli"]


def timed(command, env, repeats, cwd=None) -> tuple[float, list[float]]:
  """Median wall seconds of `command` over `repeats` fresh processes (and all of them)."""
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    times.append(time.perf_counter() - start)
  return statistics.median(times), times


def peak_rss_mb(command, env) -> float:
  """Peak resident memory of a child process, MiB (ru_maxrss of the children waited for)."""
  before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
  subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
  after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
  return max(after, before) / 1024


def write_volumes(path, rows: int, seed: int = 0) -> None:
  rng = np.random.default_rng(seed)
  gm, wm, csf = rng.uniform(500, 800, rows), rng.uniform(350, 500, rows), rng.uniform(300, 600, rows)
  total, age = gm + wm + csf + rng.uniform(0, 5, rows), rng.integers(18, 90, rows)
  table = np.stack([gm, wm, csf, total, age], axis=1)
  with open(path, "w") as f:
    f.write("GM Vol,WM Vol,CSF Vol,Total Vol,Age\n")
    np.savetxt(f, table, fmt=["%.3f", "%.3f", "%.3f", "%.3f", "%d"], delimiter=",")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--rows", type=int, default=1_000_000)
  parser.add_argument("--smoke", action="store_true", help="one repeat, 10,000 rows: proves the script runs")
  parser.add_argument("--json", help="write {name, metrics} here")
  args = parser.parse_args()
  if args.smoke:
    args.repeats, args.rows = 1, 10_000
  work = tempfile.mkdtemp(prefix="flaxzoo-startup-")
  env = {**os.environ, "TFDS_DATA_DIR": os.path.join(work, "tfds"), "FLAXZOO_JAX_CACHE": os.path.join(work, "jax")}
  # The dataset is built once, before anything is timed (a first use builds it).
  subprocess.run([*CLI, "train", "brain_age_gm", "--steps", "1", "--workdir", os.path.join(work, "build"),
                  "--no-plots", "--quiet"], env=env, check=True, stdout=subprocess.DEVNULL)
  metrics, details = {}, {}
  for name, command in (("help_s", [*CLI, "--help"]), ("list_s", [*CLI, "list"]),
                        ("usage_error_s", [*CLI, "train", "brain_age_gm", "--lr", "-1"])):
    metrics[name], details[name] = timed(command, env, args.repeats)
  floor = [sys.executable, "-c", "import jax, jax.numpy as jnp, flax.nnx, optax; jnp.zeros(1).block_until_ready()"]
  metrics["import_floor_s"], details["import_floor_s"] = timed(floor, env, args.repeats)
  train_times = []
  for k in range(args.repeats + 1):  # the first one fills the compilation cache
    workdir = os.path.join(work, f"train{k}")
    train_times.append(timed([*CLI, "train", "brain_age_gm", "--workdir", workdir], env, 1)[0])
  metrics["train_s"] = statistics.median(train_times[1:])
  metrics["train_x_import_floor"] = metrics["train_s"] / metrics["import_floor_s"]
  metrics["train_cold_x_import_floor"] = train_times[0] / metrics["import_floor_s"]
  details["train_s"] = train_times
  big, one = os.path.join(work, "big.csv"), os.path.join(work, "one.csv")
  write_volumes(big, args.rows)
  write_volumes(one, 1)
  predict = [*CLI, "predict", "brain_age_tissue", "--output", os.path.join(work, "out.csv"), "--force", "--input"]
  timed([*predict, one], env, 1)  # compile once into the cache
  start_s, details["predict_1_row_s"] = timed([*predict, one], env, args.repeats)
  big_s, details["predict_big_s"] = timed([*predict, big], env, args.repeats)
  metrics["predict_rows_per_s"] = args.rows / max(big_s - start_s, 1e-9)
  metrics["predict_peak_rss_mb"] = peak_rss_mb([*predict, big], env)
  print(f"help {metrics['help_s']:.3f} s, list {metrics['list_s']:.3f} s, usage error {metrics['usage_error_s']:.3f} s"
        " (goal <= 0.3 s)")
  print(f"import floor {metrics['import_floor_s']:.2f} s; train brain_age_gm {metrics['train_s']:.2f} s ="
        f" {metrics['train_x_import_floor']:.2f}x the floor (goal <= 2.0x; first run, cache cold:"
        f" {metrics['train_cold_x_import_floor']:.2f}x)")
  print(f"predict {args.rows:,} rows: {big_s:.2f} s, start-up {start_s:.2f} s ->"
        f" {metrics['predict_rows_per_s']:,.0f} rows/s beyond start-up (goal >= 1,000,000),"
        f" peak RSS {metrics['predict_peak_rss_mb']:.0f} MB (goal <= 400)")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"name": "startup", "metrics": metrics, "details": details, "args": vars(args)}, f, indent=2)


if __name__ == "__main__":
  main()
