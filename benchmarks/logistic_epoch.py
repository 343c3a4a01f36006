"""One epoch of mini-batch SGD on synthetic binary classification: flaxzoo's
logistic regression against the memory floor and scikit-learn, in one process.

  python benchmarks/logistic_epoch.py [--rows 1000000] [--repeats 5] [--smoke] [--json PATH]

Data: x [rows, 32] standard normal float32, y = (x @ w + noise > 0).
  * memory floor: one read of x (`jnp.sum`, jitted, x on the device);
  * flaxzoo: one epoch of the fused loop, sigmoid cross-entropy, `optax.sgd`,
    block shuffle, batch 8192 and 1024;
  * scikit-learn: `SGDClassifier(loss="log_loss", max_iter=1, tol=None)` (one
    pass, default shuffle) and, for reference, `LogisticRegression()` (lbfgs
    to convergence, not one epoch).
Accuracy is over all rows, after the epoch. Medians of `--repeats` (min-max).
"""

from __future__ import annotations

import json
import os
import warnings

import jax
import numpy as np
import optax
from flax import nnx
from sgd_epoch import benchmark_parser, median_time, memory_floor

from flaxzoo.trainers import Trainer
from flaxzoo.zoo import LinearClassifier

LR = 0.5


def make_data(rows, d=32, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((rows, d), dtype=np.float32)
  w = rng.standard_normal(d).astype(np.float32)
  y = (x @ w + rng.standard_normal(rows).astype(np.float32) > 0).astype(np.int32)
  return x, y


def accuracy(x, y, w, b):
  return float(np.mean(((x.astype(np.float64) @ np.asarray(w, np.float64).reshape(-1) + float(b)) > 0) == y))


def flaxzoo_epoch(x, y, batch, repeats):
  trainer = Trainer(LinearClassifier(x.shape[1], 2, rngs=nnx.Rngs(0)), optax.sgd(LR), "logistic", parallel="none")
  layout, blocks = trainer.layout_blocks((x, y), batch, "blocks")
  run = trainer.fused_loop(layout.num_blocks, "blocks")
  initial = trainer.placement.put_state(trainer.state)
  epoch = lambda: run(initial, blocks, 1, layout.num_blocks)
  state = jax.block_until_ready(epoch())[0]  # compiles
  seconds = median_time(lambda: jax.block_until_ready(epoch()), repeats)
  params = state.params["linear"]
  return seconds, accuracy(x, y, params["kernel"][...], params["bias"][...][0])


def sklearn_fits(x, y, repeats):
  from sklearn.exceptions import ConvergenceWarning
  from sklearn.linear_model import LogisticRegression, SGDClassifier

  x64 = x.astype(np.float64)
  models = {}

  def sgd():
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", ConvergenceWarning)
      models["sgd"] = SGDClassifier(loss="log_loss", max_iter=1, tol=None, random_state=0).fit(x64, y)

  def lbfgs():
    models["lbfgs"] = LogisticRegression().fit(x64, y)

  out = {}
  for name, fit, reps in (("sgdclassifier", sgd, repeats), ("logisticregression", lbfgs, max(1, repeats // 2))):
    seconds, spread = median_time(fit, reps)
    model = models["sgd" if name == "sgdclassifier" else "lbfgs"]
    out[name] = (seconds, spread, accuracy(x, y, model.coef_, model.intercept_[0]))
  return out


def main():
  args = benchmark_parser(__doc__, 1_000_000).parse_args()
  rows = 20_000 if args.smoke else args.rows
  repeats = 1 if args.smoke else args.repeats
  x, y = make_data(rows)
  floor, floor_spread = memory_floor(x, max(repeats, 5))
  rows_out = {}
  for batch in (8192, 1024):
    (seconds, spread), acc = flaxzoo_epoch(x, y, batch, repeats)
    rows_out[f"flaxzoo_b{batch}"] = (seconds, spread, acc)
  rows_out.update(sklearn_fits(x, y, repeats))

  print(f"one logistic-regression epoch over {rows:,} x 32 rows; {jax.devices()[0].platform}, {os.cpu_count()} cores;"
        f" medians of {repeats}; memory floor (one read of x) {floor * 1e3:.2f} ms")
  print(f"{'':24s} {'time':>10s} {'x floor':>8s} {'accuracy':>9s}")
  for name, (seconds, spread, acc) in rows_out.items():
    print(f"{name:24s} {seconds * 1e3:7.1f} ms {seconds / floor:7.1f}x {acc:9.4f}"
          f"   ({spread[0] * 1e3:.1f}-{spread[1] * 1e3:.1f} ms)")
  ours = rows_out["flaxzoo_b8192"]
  metrics = {
      "x_memory_floor": ours[0] / floor,
      "speedup_vs_sklearn": rows_out["sgdclassifier"][0] / ours[0],
      "accuracy_points_vs_sklearn": 100 * (ours[2] - rows_out["sgdclassifier"][2]),
  }
  print("batch 8192: " + ", ".join(f"{k} {v:.3g}" for k, v in metrics.items()))
  if args.json:
    details = {name: {"seconds": s, "spread_s": list(sp), "accuracy": a} for name, (s, sp, a) in rows_out.items()}
    with open(args.json, "w") as f:
      json.dump({"name": "logistic_epoch", "metrics": {**metrics, "rows": rows, "memory_floor_s": floor,
                                                       "details": details}}, f, indent=2)


if __name__ == "__main__":
  main()
