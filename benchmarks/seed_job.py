"""The brain-age seed job: the reference Python loop vs flaxzoo's fused trainer.

  python benchmarks/seed_job.py [--repeats 5] [--smoke] [--json PATH]

Runs in one process, on the same data and initialisation:
  * reference loop: DESIGN.md's reference, a Python loop whose every step
    calls a jitted forward inside `jax.value_and_grad` and updates the
    parameters eagerly (ops dispatched one by one);
  * jitted-step loop: a Python loop over one fully jitted step (the best a
    per-step loop can do; for context);
  * flaxzoo: `Trainer.fit`, all steps in one compiled call, timed after a
    warm-up call has compiled it;
then times `flaxzoo train brain_age_gm` end to end as a fresh process.
Times are medians of `--repeats` runs; ratios are measured in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from timing import timed  # benchmarks/timing.py (the script's folder is on sys.path)

from flaxzoo.datasets import TissueFractions, load_split
from flaxzoo.trainers import Trainer
from flaxzoo.zoo import create_model

LR = 0.05


def reference_loop(x, y, w, b, steps):
  """The reference: jitted forward, `value_and_grad` and the update outside jit."""
  forward = jax.jit(lambda w, b, x: x @ w + b)

  def loss_fn(params):
    w, b = params
    return jnp.mean((forward(w, b, x) - y) ** 2)

  params = (w, b)
  for _ in range(steps):
    loss, (gw, gb) = jax.value_and_grad(loss_fn)(params)
    params = (params[0] - LR * gw, params[1] - LR * gb)
  return jax.block_until_ready(params)


def jitted_step_loop(x, y, w, b, steps):
  @jax.jit
  def step(params):
    loss, grads = jax.value_and_grad(lambda p: jnp.mean((x @ p[0] + p[1] - y) ** 2))(params)
    return jax.tree.map(lambda p, g: p - LR * g, params, grads)

  params = (w, b)
  for _ in range(steps):
    params = step(params)
  return jax.block_until_ready(params)


def bench_features(features, steps, repeats, reference_repeats, data_dir):
  pre = TissueFractions(features)
  x, y = pre(load_split("brain_age", "train", data_dir))
  model = create_model("linear_regression", seed=13, init="reference", in_features=pre.num_features)
  w0 = jnp.asarray(model.linear.kernel[...])[:, 0]
  b0 = jnp.asarray(model.linear.bias[...])
  xj, yj = jnp.asarray(x), jnp.asarray(y)

  trainer = Trainer(model, optax.sgd(LR), "mse")
  initial = trainer.state  # The state is a plain pytree: reset it to rerun from the start.

  def fit_seconds():
    trainer.state = initial
    return trainer.fit((x, y), steps=steps, log_every=min(steps, 1000)).train_seconds

  fit_seconds()  # compiles
  fused = [fit_seconds() for _ in range(repeats)]
  fused_s = statistics.median(fused)
  jitted_step_loop(xj, yj, w0, b0, 2)  # compile
  jitted_s, jitted_spread, jitted_params = timed(lambda: jitted_step_loop(xj, yj, w0, b0, steps), reference_repeats)
  reference_loop(xj, yj, w0, b0, 2)  # compile the forward
  reference_s, reference_spread, reference_params = timed(lambda: reference_loop(xj, yj, w0, b0, steps),
                                                          reference_repeats)
  # Same parameters from all three, or the comparison means nothing.
  final = trainer.state.params
  np.testing.assert_allclose(np.asarray(final["linear"]["kernel"][...])[:, 0], reference_params[0], atol=1e-5)
  np.testing.assert_allclose(np.asarray(final["linear"]["kernel"][...])[:, 0], jitted_params[0], atol=1e-5)
  return {
      "flaxzoo_s": fused_s,
      "flaxzoo_spread_s": [min(fused), max(fused)],
      "flaxzoo_us_per_step": fused_s / steps * 1e6,
      "reference_loop_s": reference_s,
      "reference_loop_spread_s": list(reference_spread),
      "jitted_step_loop_s": jitted_s,
      "jitted_step_loop_spread_s": list(jitted_spread),
      "speedup_vs_reference_loop": reference_s / fused_s,
      "speedup_vs_jitted_step_loop": jitted_s / fused_s,
  }


def end_to_end(data_dir, steps, repeats):
  """Wall time of `flaxzoo train brain_age_gm` as a fresh process (dataset already built)."""
  times = []
  for _ in range(repeats):
    with tempfile.TemporaryDirectory() as workdir:
      start = time.perf_counter()
      subprocess.run(
          [sys.executable, "-m", "flaxzoo.experiments.cli", "train", "brain_age_gm", "--quiet",
           "--workdir", workdir, "--data-dir", data_dir, "--steps", str(steps)],
          check=True, capture_output=True,
      )
      times.append(time.perf_counter() - start)
  return statistics.median(times), (min(times), max(times))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--reference-repeats", type=int, default=3,
                      help="runs of each per-step loop (~35 s each for the reference)")
  parser.add_argument("--smoke", action="store_true", help="tiny sizes, only to prove it runs")
  parser.add_argument("--json", help="write {name, metrics} here")
  args = parser.parse_args()
  steps = 300 if args.smoke else 15000
  repeats = 1 if args.smoke else args.repeats
  reference_repeats = 1 if args.smoke else args.reference_repeats

  with tempfile.TemporaryDirectory() as data_dir:
    rows = {f: bench_features(f, steps, repeats, reference_repeats, data_dir) for f in ("gm", "tissue")}
    e2e_s, e2e_spread = end_to_end(data_dir, steps, 1 if args.smoke else 3)

  print(f"brain-age seed job: {steps} full-batch GD steps, lr {LR}; {jax.devices()[0].platform},"
        f" {os.cpu_count()} cores; medians (min-max)")
  print(f"{'features':9s} {'reference loop':>20s} {'jitted-step loop':>20s} {'flaxzoo fused':>22s}"
        f" {'vs reference':>13s} {'vs jitted-step':>15s}")
  for f, r in rows.items():
    reference, jitted = r['reference_loop_spread_s'], r['jitted_step_loop_spread_s']
    print(f"{f:9s} {r['reference_loop_s']:9.3f} s ({reference[0]:.2f}-{reference[1]:.2f})"
          f" {r['jitted_step_loop_s']:9.3f} s ({jitted[0]:.2f}-{jitted[1]:.2f})"
          f" {r['flaxzoo_s'] * 1e3:8.2f} ms ({r['flaxzoo_spread_s'][0] * 1e3:.1f}-{r['flaxzoo_spread_s'][1] * 1e3:.1f})"
          f" {r['speedup_vs_reference_loop']:12.0f}x {r['speedup_vs_jitted_step_loop']:14.0f}x")
  print(f"end to end: `flaxzoo train brain_age_gm` in a fresh process: {e2e_s:.2f} s"
        f" ({e2e_spread[0]:.2f}-{e2e_spread[1]:.2f}; dataset already built)")
  if args.json:
    metrics = {
        "speedup_vs_reference_loop_nf1": rows["gm"]["speedup_vs_reference_loop"],
        "speedup_vs_reference_loop_nf3": rows["tissue"]["speedup_vs_reference_loop"],
        "end_to_end_s": e2e_s,
        "steps": steps,
        "details": rows,
    }
    with open(args.json, "w") as f:
      json.dump({"name": "seed_job", "metrics": metrics}, f, indent=2)


if __name__ == "__main__":
  main()
