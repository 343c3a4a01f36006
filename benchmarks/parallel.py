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
  parser.add_argument("--repeats", type=int, default=7)
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

  flaxzoo, params = {}, {}
  for mode in ("none", "pmap", "mesh"):
    trainer = Trainer(LinearRegression(args.features, rngs=nnx.Rngs(0)), optax.sgd(LR), "mse",
                      parallel=mode, devices=None if mode == "none" else args.devices)
    layout, blocks = trainer.layout_blocks((x, y), args.batch_size)
    run = trainer.fused_loop(layout.num_blocks, "blocks")
    placement = trainer.placement
    start = placement.put_state(trainer.state)

    def epoch(run=run, blocks=blocks, start=start):
      return run(start, blocks, 1, steps)

    flaxzoo[mode] = epoch
    params[mode] = jax.tree.map(np.asarray, placement.unreplicate(jax.block_until_ready(epoch())[0]).params)

  minimal = minimal_epochs(x, y, args.batch_size, args.devices)
  # The three modes must agree, or the timing compares different work.
  for mode in ("pmap", "mesh"):
    for a, b in zip(jax.tree.leaves(params[mode]), jax.tree.leaves(params["none"])):
      np.testing.assert_allclose(a, b, atol=1e-4)

  # Every repeat times each variant once, in turn: a slow moment of the shared machine then falls on
  # all of them, and the ratios (taken within a repeat) are steadier than the times.
  variants = {**{f"flaxzoo_{m}": f for m, f in flaxzoo.items()}, **minimal}
  for fn in variants.values():
    jax.block_until_ready(fn())  # compiled, and warm
  times = {name: [] for name in variants}
  for _ in range(args.repeats):
    for name, fn in variants.items():
      begin = time.perf_counter()
      jax.block_until_ready(fn())
      times[name].append(time.perf_counter() - begin)
  rows = {name: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t)} for name, t in times.items()}
  pairs = {"none": ("flaxzoo_none", "minimal_one_device"), "pmap": ("flaxzoo_pmap", "minimal_pmap"),
           "mesh": ("flaxzoo_mesh", "minimal_mesh")}
  overhead = {mode: statistics.median(np.divide(times[a], times[b])) for mode, (a, b) in pairs.items()}

  base = rows["flaxzoo_none"]["median_s"]
  one = rows["minimal_one_device"]["median_s"]
  print(f"one epoch of mini-batch SGD: {args.rows:,} x {args.features} float32, batch {args.batch_size},"
        f" {steps} steps; {args.devices} simulated CPU devices on {os.cpu_count()} cores;"
        f" medians of {args.repeats} (min-max), the variants timed in turn")
  for name, r in rows.items():
    print(f"  {name:28s} {r['median_s'] * 1e3:10.1f} ms ({r['min_s'] * 1e3:.0f}-{r['max_s'] * 1e3:.0f})"
          f" {r['median_s'] / one:8.2f}x the minimal one-device epoch")
  print("flaxzoo over the minimal loop of its mode (median of the repeats' ratios; goal <= 1.10x): "
        + ", ".join(f"{mode} {ratio:.2f}x" for mode, ratio in overhead.items()))
  if args.json:
    metrics = {f"{mode}_epoch_s": rows[f"flaxzoo_{mode}"]["median_s"] for mode in ("none", "pmap", "mesh")}
    metrics.update({f"{mode}_vs_none": rows[f"flaxzoo_{mode}"]["median_s"] / base for mode in ("pmap", "mesh")})
    metrics["minimal_pmap_vs_one_device"] = rows["minimal_pmap"]["median_s"] / one
    metrics.update({f"overhead_{mode}": ratio for mode, ratio in overhead.items()})
    with open(args.json, "w") as f:
      json.dump({"name": "parallel", "metrics": metrics, "details": rows, "args": vars(args)}, f, indent=2)


def minimal_epochs(x, y, batch_size, devices):
  """The minimal hand-written epochs, compiled: `{name: fn() -> outputs}` for one device, pmap with
  the one all-reduce a data-parallel step needs (and without it, for scale), and jit over a Mesh."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  from jax.sharding import AxisType, Mesh, NamedSharding
  from jax.sharding import PartitionSpec as P

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
  out["minimal_one_device"] = lambda: one(*placed, jnp.zeros(d), jnp.zeros(()))
  # Device i holds rows i*shard:(i+1)*shard of every batch.
  xs = np.ascontiguousarray(x[:rows].reshape(steps, devices, shard, d).swapaxes(0, 1).reshape(devices, -1, d))
  ys = np.ascontiguousarray(y[:rows].reshape(steps, devices, shard).swapaxes(0, 1).reshape(devices, -1))
  for name, all_reduce in (("minimal_pmap", True), ("minimal_pmap_no_allreduce", False)):
    run = jax.pmap(lambda x, y, w, b, all_reduce=all_reduce: epoch(x, y, w, b, all_reduce, shard), axis_name="d",
                   devices=jax.devices()[:devices])
    placed_pmap = jax.pmap(lambda x, y: (x, y), devices=jax.devices()[:devices])(xs, ys)
    out[name] = lambda run=run, placed=placed_pmap: run(*placed, jnp.zeros((devices, d)), jnp.zeros(devices))
  # jit over a Mesh: batches [steps, batch, d] sharded on the batch axis, parameters replicated; XLA
  # inserts the all-reduce of the gradient.
  mesh = Mesh(np.asarray(jax.devices()[:devices]), ("d",), axis_types=(AxisType.Auto,))
  batches = (jax.device_put(x[:rows].reshape(steps, batch_size, d), NamedSharding(mesh, P(None, "d"))),
             jax.device_put(y[:rows].reshape(steps, batch_size), NamedSharding(mesh, P(None, "d"))))
  replicated = NamedSharding(mesh, P())

  @jax.jit
  def mesh_epoch(xb, yb, w, b):
    def step(k, wb):
      w, b = wb
      r = (xb[k] @ w + b - yb[k]) * (2 / batch_size)
      return w - LR * (r @ xb[k]), b - LR * jnp.sum(r)
    return jax.lax.fori_loop(0, steps, step, (w, b))

  start = (jax.device_put(jnp.zeros(d), replicated), jax.device_put(jnp.zeros(()), replicated))
  out["minimal_mesh"] = lambda: mesh_epoch(*batches, *start)
  return out


if __name__ == "__main__":
  sys.exit(main())
