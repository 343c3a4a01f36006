"""A sweep's data on the devices, for each of its optax paths: the statistics, the full batch, or mini-batches
(one order for all models, or each model's own)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from flaxzoo.trainers import statistics as statistics_lib
from flaxzoo.trainers.batching import arrange, make_epoch_order_fn, make_layout, take_block
from flaxzoo.trainers.placement import to_host


def prepare(sweep, arrays, weights, batch_size, shuffle):
  """`(path, loop key, step maker, epoch order fn, take fn, num_blocks, device blocks)` for this data."""
  n = len(arrays["x"])
  if statistics_lib.chosen(sweep.statistics, sweep._loss_spec, sweep._affine, batch_size is None or batch_size >= n):
    return ("statistics",) + _statistics(sweep, arrays, weights)
  order_of_epoch = make_epoch_order_fn(1)
  if batch_size is None or batch_size >= n:
    return _full_batch(sweep, arrays, weights, n, order_of_epoch)
  # Mini-batches: each model's batches as `Trainer.fit` lays out its rows with its seed.
  rows = [np.flatnonzero(w > 0) for w in weights]
  layouts = [make_layout(len(r), batch_size) for r in rows]
  if len({(lay.num_blocks, lay.block_size) for lay in layouts}) > 1:
    raise ValueError(f"with batch size {batch_size} the models' rows ({sorted({len(r) for r in rows})}) make"
                     " different numbers of batches an epoch; pick a batch size that divides them alike")
  layout = layouts[0]
  order_fn = make_epoch_order_fn(layout.num_blocks, shuffle)
  epoch_orders = lambda epoch, rngs: jax.vmap(lambda rng: order_fn(epoch, rng))(rngs)
  if all(np.array_equal(w, weights[0]) for w in weights) and len(set(sweep.seeds.tolist())) == 1:
    # One data order for all (a grid of hyperparameters): the batches of `Trainer.fit`, read once a step.
    order = None
    if shuffle == "blocks" and layout.num_blocks > 1:
      order = np.random.default_rng(int(sweep.seeds[0])).permutation(len(rows[0]))
    if len(rows[0]) == n and np.all(weights[0] == 1):
      subset = {"x": arrays["x"], "y": arrays["y"]}  # every row, unweighted: arranged as `Trainer` does, one copy
    else:
      subset = {"x": arrays["x"][rows[0]], "y": arrays["y"][rows[0]], "weight": weights[0][rows[0]]}
    blocks = sweep._put_shared(arrange(subset, layout, order))
    take = lambda blocks, orders, position: take_block(blocks, orders[0][position])
    key = ("shared", layout.num_blocks, layout.block_size, shuffle, sweep._step_key())
    return "mini-batch", key, lambda: sweep._model_step(None, None), epoch_orders, take, layout.num_blocks, blocks
  return _per_model_batches(sweep, arrays, weights, rows, layouts, shuffle, epoch_orders)


def _full_batch(sweep, arrays, weights, n: int, order_of_epoch):
  """Full batch: the rows once, every model's weights over them."""
  layout = make_layout(n, None)
  data = arrange({k: v for k, v in arrays.items() if k != "weight"}, layout)
  weight = np.zeros((sweep._padded, layout.block_size), np.float32)
  weight[:, :n] = weights
  blocks = {"x": sweep._put_shared(data["x"]), "y": sweep._put_shared(data["y"]),
            "weight": sweep._put_models(weight[:, None]),
            "scale": sweep._put_models((weight / weight.sum(axis=1, keepdims=True))[:, None])}

  def take(blocks, order, position):
    return {"x": blocks["x"][0], "y": blocks["y"][0], "weight": blocks["weight"][:, 0],
            "scale": blocks["scale"][:, 0]}

  return "full batch", ("full", sweep._step_key()), lambda: sweep._model_step(None), order_of_epoch, take, 1, \
      blocks


def _per_model_batches(sweep, arrays, weights, rows, layouts, shuffle: str, epoch_orders):
  """Each model's own batches of its rows (its weights, its seed's order), gathered from one copy of the data."""
  layout = layouts[0]
  per_model = []
  for k, r in enumerate(rows):
    order = None
    if shuffle == "blocks" and layout.num_blocks > 1:
      order = np.random.default_rng(int(sweep.seeds[min(k, sweep.num_models - 1)])).permutation(len(r))
    blocks = arrange({"index": r.astype(np.int32), "weight": weights[k][r]}, layouts[k], order)
    per_model.append(blocks)
  stacked = {key: np.stack([b[key] for b in per_model]) for key in ("index", "weight", "scale")}
  data = {"x": sweep._put_shared(arrays["x"]), "y": sweep._put_shared(arrays["y"])}
  blocks = {"data": data, "models": sweep._put_models(stacked)}

  def take(blocks, orders, position):
    def one(model_blocks, order):
      batch = take_block(model_blocks, order[position])
      return batch["index"], batch["weight"], batch["scale"]

    index, weight, scale = jax.vmap(one)(blocks["models"], orders)
    x, y = blocks["data"]["x"], blocks["data"]["y"]
    return {"x": jnp.take(x, index, axis=0), "y": jnp.take(y, index, axis=0), "weight": weight, "scale": scale}

  key = ("mini", layout.num_blocks, layout.block_size, shuffle, sweep._step_key())
  return "mini-batch", key, lambda: sweep._model_step(0), epoch_orders, take, layout.num_blocks, blocks


def _statistics(sweep, arrays, weights):
  """The statistics of every distinct weight vector once; each model's gathered from them."""
  distinct, which = np.unique(weights, axis=0, return_inverse=True)
  shift = statistics_lib.shift_of(arrays["x"], arrays["y"])
  x, y, *shift = jax.device_put((arrays["x"], arrays["y"], *shift), sweep.placement.devices[0])
  each = [to_host(statistics_lib.weighted_statistics(x, y, w, *shift)) for w in distinct]
  stats = jax.tree.map(lambda *v: np.stack(v)[np.ravel(which)], *each)
  blocks = sweep._put_models(stats)
  key = ("statistics", sweep._step_key())
  return key, sweep._statistics_step, make_epoch_order_fn(1), (lambda stats, order, position: stats), 1, blocks
