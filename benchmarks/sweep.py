"""Sweeps in one compiled program against one fit and against a loop of fits.

  python benchmarks/sweep.py [--repeats 3] [--smoke] [--json PATH]

Measured in this run, on this machine (ratios only; absolute times drift):
  * brain_age_tissue, 10 folds x 16 learning rates (160 models, 15000 full-batch
    steps each), by the sufficient statistics, against (a) one `Trainer.fit` of
    one model on the per-example path and (b) a Python loop of 160 `Trainer.fit`
    calls (per-example, as a user would write it: one Trainer per setting, each
    compiling its loop — `speedup_vs_loop_as_written`; and, conservatively, as
    if none compiled: 160 x the warm one fit — `speedup_vs_loop`);
    `x_one_fit` = (sweep) / (a);
  * mini-batches (per-example path): 200,000 x 32 synthetic rows, 8 learning
    rates, batch 1024, one epoch, against one fit and 8 sequential fits
    (`minibatch_x_one_fit`);
  * a full-batch MSE fit of 2,000,000 x 64 rows for 1000 steps (statistics),
    the data on the device, against the memory floor: one read of X there (a
    compiled sum) — `full_batch_x_memory_floor`; the fit from host arrays
    (its copy to the device included) is reported beside it.
Every time is the median of `--repeats` calls after a warm-up call compiled
them (compilation is reported apart).
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from timing import median_time  # benchmarks/timing.py (the script's folder is on sys.path)

from flaxzoo.datasets.sources import load_data
from flaxzoo.trainers import Sweep, Trainer
from flaxzoo.zoo import LinearRegression, create_model


def seconds(fn, repeats: int) -> float:
  """The median time of `fn()`, its device work included."""
  return median_time(lambda: jax.block_until_ready(fn()), repeats)[0]


def brain_age(repeats: int, steps: int, folds: int, rates: int, loop_models: int) -> dict:
  data = load_data("brain_age", features="tissue")
  x, y = data.splits["train"]
  fold = np.random.default_rng(0).permutation(len(x)) % folds
  lrs = np.geomspace(0.005, 0.5, rates).tolist()
  settings = [(f, lr) for f in range(folds) for lr in lrs]
  weights = np.stack([(fold != f).astype(np.float32) for f, _ in settings])
  model = lambda: create_model("linear_regression", seed=13, init="reference", in_features=3)
  sweep = Sweep([model() for _ in settings], optax.sgd, {"learning_rate": [lr for _, lr in settings]}, "mse",
                parallel="none")
  start = time.perf_counter()
  sweep.fit((x, y), steps=steps, weights=weights)
  compile_s = time.perf_counter() - start
  sweep_s = seconds(lambda: sweep.fit((x, y), steps=steps, weights=weights).train_seconds, repeats)
  one = Trainer(model(), optax.sgd(0.05), "mse", parallel="none", statistics="off")
  one.fit((x, y), steps=steps, final_metrics=False)
  one_s = seconds(lambda: one.fit((x, y), steps=steps, final_metrics=False), repeats)

  def loop():  # what a user writes: a Trainer per setting, each fit on its fold's rows
    for f, lr in settings[:loop_models]:
      rows = fold != f
      Trainer(model(), optax.sgd(lr), "mse", parallel="none", statistics="off").fit(
          (x[rows], y[rows]), steps=steps, final_metrics=False)

  # As written, every new Trainer compiles its loop again: timed on `loop_models` fits, scaled up.
  as_written_s = seconds(loop, 1) * len(settings) / loop_models
  # The conservative baseline: a loop that never compiles, every fit as fast as the warm one above.
  loop_s = len(settings) * one_s
  return {"models": len(settings), "steps": steps, "sweep_s": sweep_s, "sweep_compile_s": compile_s,
          "one_fit_s": one_s, "loop_s": loop_s, "loop_as_written_s": as_written_s, "loop_models_timed": loop_models,
          "x_one_fit": sweep_s / one_s, "speedup_vs_loop": loop_s / sweep_s,
          "speedup_vs_loop_as_written": as_written_s / sweep_s}


def minibatch(repeats: int, rows: int, features: int, models: int, batch: int) -> dict:
  rng = np.random.default_rng(0)
  x = rng.standard_normal((rows, features), dtype=np.float32)
  y = (x @ rng.standard_normal(features).astype(np.float32)).astype(np.float32)
  steps = -(-rows // batch)
  lrs = np.geomspace(1e-3, 1e-1, models).tolist()
  sweep = Sweep([LinearRegression(features, rngs=nnx.Rngs(0)) for _ in lrs], optax.sgd, {"learning_rate": lrs}, "mse",
                parallel="none")
  sweep.fit((x, y), steps=steps, batch_size=batch)
  sweep_s = seconds(lambda: sweep.fit((x, y), steps=steps, batch_size=batch).train_seconds, repeats)
  trainers = [Trainer(LinearRegression(features, rngs=nnx.Rngs(0)), optax.sgd(lr), "mse", parallel="none")
              for lr in lrs]
  for t in trainers:
    t.fit((x, y), steps=steps, batch_size=batch, final_metrics=False)
  one_s = seconds(lambda: trainers[0].fit((x, y), steps=steps, batch_size=batch, final_metrics=False), repeats)
  sequential_s = seconds(
      lambda: [t.fit((x, y), steps=steps, batch_size=batch, final_metrics=False) for t in trainers], repeats)
  return {"rows": rows, "features": features, "models": models, "batch": batch, "steps": steps,
          "sweep_s": sweep_s, "one_fit_s": one_s, "sequential_s": sequential_s,
          "minibatch_x_one_fit": sweep_s / one_s, "speedup_vs_sequential": sequential_s / sweep_s}


def full_batch(repeats: int, rows: int, features: int, steps: int) -> dict:
  rng = np.random.default_rng(0)
  x = rng.standard_normal((rows, features), dtype=np.float32)
  y = (x @ rng.standard_normal(features).astype(np.float32)).astype(np.float32)
  trainer = Trainer(LinearRegression(features, rngs=nnx.Rngs(0)), optax.sgd(0.1), "mse", parallel="none")
  assert trainer.uses_statistics(rows)
  trainer.fit((x, y), steps=steps, final_metrics=False)
  host_fit_s = seconds(lambda: trainer.fit((x, y), steps=steps, final_metrics=False), repeats)
  resident = jax.device_put((x, y))  # the data already on the device, as the floor reads it
  trainer.fit(resident, steps=steps, final_metrics=False)
  fit_s = seconds(lambda: trainer.fit(resident, steps=steps, final_metrics=False), repeats)
  read = jax.jit(lambda a: jnp.sum(a, axis=0))
  read(resident[0])
  floor_s = seconds(lambda: read(resident[0]), max(repeats, 5))
  copy_s = seconds(lambda: jax.device_put(x), repeats)
  return {"rows": rows, "features": features, "steps": steps, "fit_s": fit_s, "memory_floor_s": floor_s,
          "fit_from_host_s": host_fit_s, "host_to_device_copy_s": copy_s,
          "bytes": x.nbytes, "full_batch_x_memory_floor": fit_s / floor_s}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the script runs")
  parser.add_argument("--json", help="write the results here")
  args = parser.parse_args()
  if args.smoke:
    cases = {"brain_age": brain_age(1, 200, 3, 2, 2), "minibatch": minibatch(1, 4000, 8, 2, 256),
             "full_batch": full_batch(1, 20000, 8, 50)}
  else:
    cases = {"brain_age": brain_age(args.repeats, 15000, 10, 16, 16),
             "minibatch": minibatch(args.repeats, 200_000, 32, 8, 1024),
             "full_batch": full_batch(args.repeats, 2_000_000, 64, 1000)}
  metrics = {"x_one_fit": cases["brain_age"]["x_one_fit"], "speedup_vs_loop": cases["brain_age"]["speedup_vs_loop"],
             "minibatch_x_one_fit": cases["minibatch"]["minibatch_x_one_fit"],
             "full_batch_x_memory_floor": cases["full_batch"]["full_batch_x_memory_floor"], "details": cases}
  b, m, f = cases["brain_age"], cases["minibatch"], cases["full_batch"]
  print(f"brain_age_tissue, {b['models']} models x {b['steps']} full-batch steps: sweep {b['sweep_s'] * 1e3:.1f} ms"
        f" (compile {b['sweep_compile_s']:.2f} s), one per-example fit {b['one_fit_s'] * 1e3:.1f} ms, a loop of"
        f" {b['models']} fits {b['loop_s']:.2f} s warm ({b['loop_as_written_s']:.1f} s as written) -> x_one_fit"
        f" {b['x_one_fit']:.2f}, speedup_vs_loop {b['speedup_vs_loop']:.0f} ({b['speedup_vs_loop_as_written']:.0f})")
  print(f"mini-batch {m['rows']:,} x {m['features']}, {m['models']} models, batch {m['batch']}, one epoch: sweep"
        f" {m['sweep_s'] * 1e3:.1f} ms, one fit {m['one_fit_s'] * 1e3:.1f} ms, {m['models']} sequential fits"
        f" {m['sequential_s'] * 1e3:.1f} ms -> minibatch_x_one_fit {m['minibatch_x_one_fit']:.2f}")
  print(f"full batch {f['rows']:,} x {f['features']}, {f['steps']} steps: fit {f['fit_s'] * 1e3:.1f} ms (from host"
        f" arrays {f['fit_from_host_s'] * 1e3:.1f} ms, of which the copy to the device ~"
        f"{f['host_to_device_copy_s'] * 1e3:.0f} ms), one read of X ({f['bytes'] / 2**20:.0f} MiB)"
        f" {f['memory_floor_s'] * 1e3:.1f} ms -> full_batch_x_memory_floor {f['full_batch_x_memory_floor']:.2f}")
  if args.json:
    with open(args.json, "w") as out:
      json.dump({"name": "sweep", "metrics": metrics}, out, indent=1)


if __name__ == "__main__":
  main()
