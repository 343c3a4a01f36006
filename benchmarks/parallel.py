"""Data-parallel overhead: one epoch of mini-batch SGD in none, pmap and mesh modes.

  python benchmarks/parallel.py [--devices 8] [--rows 2000000] [--features 64]
                                [--batch-size 8192] [--repeats 5] [--smoke] [--json PATH]

One process with `--devices` simulated CPU devices (set before jax is imported).
A synthetic linear-regression problem; each mode trains the same epoch from the
same start, timed after a warm-up epoch has compiled it (the data already on
the devices). On one machine the simulated devices share its cores, so this
measures the cost of sharding and collectives, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--devices", type=int, default=8)
  parser.add_argument("--rows", type=int, default=2_000_000)
  parser.add_argument("--features", type=int, default=64)
  parser.add_argument("--batch-size", type=int, default=8192)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--smoke", action="store_true", help="tiny sizes, only to prove it runs")
  parser.add_argument("--json", help="write {name, metrics} here")
  args = parser.parse_args()
  if args.smoke:
    args.rows, args.features, args.batch_size, args.repeats = 20_000, 8, 1024, 1
  os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.devices}"

  import jax
  import numpy as np
  import optax
  from flax import nnx

  from flaxzoo.trainers import Trainer
  from flaxzoo.zoo import LinearRegression

  rng = np.random.default_rng(0)
  x = rng.normal(size=(args.rows, args.features)).astype(np.float32)
  y = (x @ rng.normal(size=args.features).astype(np.float32) + rng.normal(0, 0.1, args.rows)).astype(np.float32)
  steps = -(-args.rows // args.batch_size)  # one epoch

  rows = {}
  params = {}
  for mode in ("none", "pmap", "mesh"):
    trainer = Trainer(LinearRegression(args.features, rngs=nnx.Rngs(0)), optax.sgd(0.01), "mse",
                      parallel=mode, devices=None if mode == "none" else args.devices)
    layout, blocks = trainer.layout_blocks((x, y), args.batch_size)
    initial = trainer.state
    run = trainer.fused_loop(layout.num_blocks, "blocks")
    placement = trainer.placement

    def epoch():
      state = placement.put_state(initial)
      jax.block_until_ready(state)
      start = time.perf_counter()
      state, _, losses = run(state, blocks, 1, steps)
      jax.block_until_ready(losses)
      return time.perf_counter() - start, state

    epoch()  # compile
    times = []
    for _ in range(args.repeats):
      seconds, state = epoch()
      times.append(seconds)
    params[mode] = jax.tree.map(np.asarray, placement.unreplicate(state).params)
    rows[mode] = {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
                  "devices": len(placement.devices)}

  # The three modes must agree, or the timing compares different work.
  for mode in ("pmap", "mesh"):
    for a, b in zip(jax.tree.leaves(params[mode]), jax.tree.leaves(params["none"])):
      np.testing.assert_allclose(a, b, atol=1e-4)

  base = rows["none"]["median_s"]
  print(f"one epoch of mini-batch SGD: {args.rows:,} x {args.features} float32, batch {args.batch_size},"
        f" {steps} steps; {args.devices} simulated CPU devices on {os.cpu_count()} cores;"
        f" medians of {args.repeats} (min-max)")
  print(f"{'mode':6s} {'devices':>8s} {'epoch':>24s} {'vs none':>8s}")
  for mode, r in rows.items():
    print(f"{mode:6s} {r['devices']:8d} {r['median_s'] * 1e3:10.1f} ms ({r['min_s'] * 1e3:.0f}-{r['max_s'] * 1e3:.0f})"
          f" {r['median_s'] / base:8.2f}x")
  if args.json:
    metrics = {f"{mode}_epoch_s": r["median_s"] for mode, r in rows.items()}
    metrics.update({f"{mode}_vs_none": rows[mode]["median_s"] / base for mode in ("pmap", "mesh")})
    with open(args.json, "w") as f:
      json.dump({"name": "parallel", "metrics": metrics, "details": rows, "args": vars(args)}, f, indent=2)


if __name__ == "__main__":
  sys.exit(main())
