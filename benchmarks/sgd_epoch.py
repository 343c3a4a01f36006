"""One epoch of mini-batch SGD on synthetic least squares: flaxzoo against the
memory floor, scikit-learn's SGDRegressor and a PyTorch loop, in one process.

  python benchmarks/sgd_epoch.py [--rows 2000000] [--repeats 5] [--smoke] [--json PATH]

Data: x [rows, d] standard normal float32 (d = 64 and 16), y = x @ w + 0.1 noise.
  * memory floor: one read of x, `jnp.sum(x)` jitted (x on the device);
  * flaxzoo: one epoch of `Trainer`'s fused loop (data resident on the device,
    batches taken inside the compiled loop), shuffle `blocks` (the rows permuted
    once, the batch order every epoch) and `none`;
  * flaxzoo `rows`: a fresh row permutation every epoch (computed index by
    index, `trainers/index_shuffle.py`), each batch gathered inside the loop;
  * per-epoch permutation: the same epoch after `jax.random.permutation` and a
    gather of all rows (what a naive full reshuffle costs);
  * scikit-learn: `SGDRegressor(max_iter=1, tol=None)` (default shuffle, one
    pass, float64 input prepared outside the timing);
  * PyTorch: `nn.Linear` + `optim.SGD`, a Python loop over batches:
    `randperm` + index per epoch (`torch shuffled`, what a `DataLoader` with
    `shuffle=True` does, without its per-item overhead) and slices of a tensor
    in data order (`torch slices`, no shuffling at all); skipped with a note if
    torch is not installed (`pip install '.[bench]'`).
Headline (d=64, batch 8192): flaxzoo with block shuffling against scikit-learn
and PyTorch each shuffling as they do by default, every epoch; the JSON also
has flaxzoo against the unshuffled PyTorch loop, and flaxzoo `rows` against
`torch shuffled` (the same shuffling on both sides).
Every epoch starts from the same initial parameters; the MSE after it is over all rows.
Times are medians of `--repeats` epochs (min-max); ratios are measured in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from timing import median_time  # benchmarks/timing.py (the script's folder is on sys.path)

from flaxzoo.trainers import Trainer
from flaxzoo.zoo import LinearRegression

LR = 0.05


def make_data(rows, d, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((rows, d), dtype=np.float32)
  w = rng.standard_normal(d).astype(np.float32) / np.sqrt(d)
  y = (x @ w + 0.1 * rng.standard_normal(rows).astype(np.float32)).astype(np.float32)
  return x, y


def mse(x, y, w, b):
  return float(np.mean((x.astype(np.float64) @ np.asarray(w, np.float64).reshape(-1) + float(b) - y) ** 2))


def memory_floor(x, repeats):
  total = jax.jit(jnp.sum)
  device_x = jax.device_put(x)
  jax.block_until_ready(total(device_x))
  return median_time(lambda: jax.block_until_ready(total(device_x)), repeats)


def flaxzoo_epoch(x, y, batch, shuffle, repeats, permute_rows=False):
  """Seconds of one fused epoch and the MSE after it."""
  trainer = Trainer(LinearRegression(x.shape[1], rngs=nnx.Rngs(0)), optax.sgd(LR), "mse", parallel="none")
  layout, blocks = trainer.layout_blocks((x, y), batch, "none" if permute_rows else shuffle)
  run = trainer.fused_loop(layout.num_blocks, "none" if permute_rows else shuffle, layout)
  initial = trainer.placement.put_state(trainer.state)
  steps = layout.num_blocks

  if permute_rows:  # a fresh permutation of all rows and a gather, every epoch
    @jax.jit
    def reshuffle(blocks, key):
      flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in blocks.items()}
      order = jax.random.permutation(key, flat["x"].shape[0])
      return {k: v[order].reshape(blocks[k].shape) for k, v in flat.items()}

    def epoch():
      shuffled = reshuffle(blocks, jax.random.PRNGKey(1))
      return run(initial, shuffled, 1, steps)
  else:
    def epoch():
      return run(initial, blocks, 1, steps)

  state = jax.block_until_ready(epoch())[0]  # compiles
  seconds = median_time(lambda: jax.block_until_ready(epoch()), repeats)
  params = state.params["linear"]
  return seconds, mse(x, y, params["kernel"][...], params["bias"][...][0])


def sklearn_epoch(x, y, repeats):
  from sklearn.exceptions import ConvergenceWarning
  from sklearn.linear_model import SGDRegressor

  x64, y64 = x.astype(np.float64), y.astype(np.float64)
  models = []

  def fit():
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter=1 is the point
      models.append(SGDRegressor(max_iter=1, tol=None, random_state=0).fit(x64, y64))

  seconds = median_time(fit, repeats)
  return seconds, mse(x, y, models[-1].coef_, models[-1].intercept_[0])


def torch_epoch(x, y, batch, repeats, shuffled):
  import torch

  torch.set_num_threads(os.cpu_count())
  torch.manual_seed(0)
  tx, ty = torch.from_numpy(x), torch.from_numpy(y)
  initial = torch.nn.Linear(x.shape[1], 1).state_dict()
  holder = {}

  def epoch():
    model = torch.nn.Linear(x.shape[1], 1)
    model.load_state_dict(initial)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    order = torch.randperm(len(tx)) if shuffled else None
    for start in range(0, len(tx), batch):
      if shuffled:
        index = order[start:start + batch]
        xb, yb = tx[index], ty[index]
      else:
        xb, yb = tx[start:start + batch], ty[start:start + batch]
      optimizer.zero_grad(set_to_none=True)
      loss = torch.mean((model(xb)[:, 0] - yb) ** 2)
      loss.backward()
      optimizer.step()
    holder["model"] = model

  epoch()  # warm-up
  seconds = median_time(epoch, repeats)
  model = holder["model"]
  return seconds, mse(x, y, model.weight.detach().numpy(), model.bias.detach().numpy()[0])


def benchmark_parser(doc: str, rows: int) -> argparse.ArgumentParser:
  """The options every epoch benchmark takes: --rows, --repeats, --smoke, --json."""
  parser = argparse.ArgumentParser(description=doc.split("\n")[0])
  parser.add_argument("--rows", type=int, default=rows)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--smoke", action="store_true", help="tiny sizes, only to prove it runs")
  parser.add_argument("--json", help="write {name, metrics} here")
  return parser


def main():
  args = benchmark_parser(__doc__, 2_000_000).parse_args()
  rows = 20_000 if args.smoke else args.rows
  repeats = 1 if args.smoke else args.repeats
  try:
    import torch  # noqa: F401
    have_torch = True
  except ImportError:
    have_torch = False
    print("note: PyTorch is not installed (pip install '.[bench]'): its rows are skipped")

  results = {}
  for d in (64, 16):
    x, y = make_data(rows, d)
    floor, floor_spread = memory_floor(x, max(repeats, 5))
    for batch in (8192, 1024):
      row = {"memory_floor_s": floor, "memory_floor_spread_s": floor_spread}
      for name, kwargs in (("blocks", {"shuffle": "blocks"}), ("rows", {"shuffle": "rows"}),
                           ("none", {"shuffle": "none"}),
                           ("permutation_gather", {"shuffle": "none", "permute_rows": True})):
        (seconds, spread), error = flaxzoo_epoch(x, y, batch, repeats=repeats, **kwargs)
        row[f"flaxzoo_{name}_s"], row[f"flaxzoo_{name}_spread_s"], row[f"flaxzoo_{name}_mse"] = seconds, spread, error
      results[f"d{d}_b{batch}"] = row
    # scikit-learn and PyTorch after flaxzoo: their OpenMP threads keep spinning
    # for a while after a parallel section and would slow whatever runs next.
    sk, sk_mse = sklearn_epoch(x, y, repeats)
    for batch in (8192, 1024):
      row = results[f"d{d}_b{batch}"]
      row["sklearn_s"], row["sklearn_spread_s"] = sk
      row["sklearn_mse"] = sk_mse
      if have_torch:
        for name, shuffled in (("slices", False), ("shuffled", True)):
          (seconds, spread), error = torch_epoch(x, y, batch, repeats, shuffled)
          row[f"torch_{name}_s"], row[f"torch_{name}_spread_s"], row[f"torch_{name}_mse"] = seconds, spread, error

  print(f"one SGD epoch (lr {LR}) over {rows:,} rows; {jax.devices()[0].platform}, {os.cpu_count()} cores;"
        f" medians of {repeats}; 'x floor' = time / one read of x (jnp.sum)")
  columns = [("flaxzoo_blocks", "flaxzoo blocks"), ("flaxzoo_rows", "flaxzoo rows"), ("flaxzoo_none", "flaxzoo none"),
             ("flaxzoo_permutation_gather", "perm+gather"), ("sklearn", "sklearn SGDReg")]
  if have_torch:
    columns += [("torch_slices", "torch slices"), ("torch_shuffled", "torch shuffled")]
  print(f"{'d':>3s} {'batch':>6s} {'floor ms':>9s}" + "".join(f" {label:>22s}" for _, label in columns))
  for key, row in results.items():
    d, batch = key[1:].split("_b")
    cells = "".join(
        f" {row[f'{c}_s'] * 1e3:8.1f} ms {row[f'{c}_s'] / row['memory_floor_s']:5.1f}x"
        f" {row[f'{c}_mse']:.4f}".rjust(23) for c, _ in columns)
    print(f"{d:>3s} {batch:>6s} {row['memory_floor_s'] * 1e3:9.2f}{cells}")
  print("each cell: epoch time, x memory floor, train MSE after the epoch; spreads in the JSON")
  head = results["d64_b8192"]
  metrics = {
      "x_memory_floor": head["flaxzoo_blocks_s"] / head["memory_floor_s"],
      "speedup_vs_sklearn": head["sklearn_s"] / head["flaxzoo_blocks_s"],
      "mse_vs_sklearn": head["flaxzoo_blocks_mse"] / head["sklearn_mse"] - 1,
  }
  if have_torch:
    metrics["speedup_vs_torch"] = head["torch_shuffled_s"] / head["flaxzoo_blocks_s"]
    metrics["mse_vs_torch"] = head["flaxzoo_blocks_mse"] / head["torch_shuffled_mse"] - 1
    metrics["speedup_vs_torch_unshuffled"] = head["torch_slices_s"] / head["flaxzoo_blocks_s"]
    metrics["rows_speedup_vs_torch_shuffled"] = head["torch_shuffled_s"] / head["flaxzoo_rows_s"]
  print("d=64, batch 8192, block shuffle: " + ", ".join(f"{k} {v:.3g}" for k, v in metrics.items()))
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"name": "sgd_epoch", "metrics": {**metrics, "rows": rows, "details": results}}, f, indent=2)


if __name__ == "__main__":
  main()
