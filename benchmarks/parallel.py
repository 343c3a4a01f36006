"""Data-parallel overhead: one epoch of mini-batch SGD in none, pmap and mesh modes.

  python benchmarks/parallel.py [--devices 8] [--rows 2000000] [--features 64]
                                [--batch-size 8192] [--repeats 5] [--smoke] [--json PATH]

One process with `--devices` simulated CPU devices (set before jax is imported).
A synthetic linear-regression problem; each mode trains the same epoch from the
same start, timed after a warm-up epoch has compiled it (the data already on
the devices). On one machine the simulated devices share its cores, so this
measures the cost of sharding and collectives, not a speed-up.

For scale, the same run times a minimal hand-written JAX epoch (no flaxzoo: a
`fori_loop` over batches, the gradient written out) on one device, under
`jax.pmap` on all devices with the one all-reduce of the gradient a
data-parallel step needs, and under `jax.pmap` without it (each device on its
own): what any data-parallel SGD costs here, whoever writes it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

LR = 0.01


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
    trainer = Trainer(LinearRegression(args.features, rngs=nnx.Rngs(0)), optax.sgd(LR), "mse",
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

  minimal = minimal_epochs(x, y, args.batch_size, args.devices, args.repeats)

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
  one = minimal["one_device"]["median_s"]
  print(f"minimal JAX epoch (lr {LR}, no flaxzoo), the same data:")
  for name, r in minimal.items():
    print(f"  {name:28s} {r['median_s'] * 1e3:10.1f} ms ({r['min_s'] * 1e3:.0f}-{r['max_s'] * 1e3:.0f})"
          f" {r['median_s'] / one:8.2f}x")
  if args.json:
    metrics = {f"{mode}_epoch_s": r["median_s"] for mode, r in rows.items()}
    metrics.update({f"{mode}_vs_none": rows[mode]["median_s"] / base for mode in ("pmap", "mesh")})
    metrics["minimal_pmap_vs_one_device"] = minimal["pmap_one_allreduce_a_step"]["median_s"] / one
    with open(args.json, "w") as f:
      json.dump({"name": "parallel", "metrics": metrics, "details": {**rows, **minimal}, "args": vars(args)}, f,
                indent=2)


def minimal_epochs(x, y, batch_size, devices, repeats):
  """Seconds of the minimal epoch: one device, pmap with and without the gradient all-reduce."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  steps = len(x) // batch_size
  shard = batch_size // devices
  d = x.shape[1]

  def epoch(x, y, w, b, all_reduce, size):  # x [steps * size, d]: batch k is rows k*size:(k+1)*size
    def step(k, wb):
      w, b = wb
      xb, yb = jax.lax.dynamic_slice_in_dim(x, k * size, size), jax.lax.dynamic_slice_in_dim(y, k * size, size)
      r = (xb @ w + b - yb) * (2 / batch_size)
      grads = (r @ xb, jnp.sum(r))
      if all_reduce:
        grads = jax.lax.psum(grads, "d")
      return w - LR * grads[0], b - LR * grads[1]
    return jax.lax.fori_loop(0, steps, step, (w, b))

  rows = steps * batch_size
  out = {}
  xs, ys = np.ascontiguousarray(x[:rows]), np.ascontiguousarray(y[:rows])
  one, placed = jax.jit(lambda x, y, w, b: epoch(x, y, w, b, False, batch_size)), jax.device_put((xs, ys))
  out["one_device"] = _time(lambda: one(*placed, jnp.zeros(d), jnp.zeros(())), repeats=repeats)
  # Device i holds rows i*shard:(i+1)*shard of every batch.
  xs = np.ascontiguousarray(x[:rows].reshape(steps, devices, shard, d).swapaxes(0, 1).reshape(devices, -1, d))
  ys = np.ascontiguousarray(y[:rows].reshape(steps, devices, shard).swapaxes(0, 1).reshape(devices, -1))
  for name, all_reduce in (("pmap_one_allreduce_a_step", True), ("pmap_no_allreduce", False)):
    run = jax.pmap(lambda x, y, w, b: epoch(x, y, w, b, all_reduce, shard), axis_name="d",
                   devices=jax.devices()[:devices])
    placed = jax.pmap(lambda x, y: (x, y), devices=jax.devices()[:devices])(xs, ys)
    out[name] = _time(lambda: run(*placed, jnp.zeros((devices, d)), jnp.zeros(devices)), repeats=repeats)
  return out


def _time(fn, repeats):
  import jax

  jax.block_until_ready(fn())  # compiles
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


if __name__ == "__main__":
  sys.exit(main())
