"""Arranging a dataset into fixed blocks (batches) that shard evenly over devices.

A dataset of `n` examples trained with batch size `B` becomes arrays
`[num_blocks, block_size, ...]`: block `k` holds examples `order[k*B:(k+1)*B]`,
padded with weight-0 examples up to `block_size`, the smallest multiple of the
device count that holds `B`. Every device then holds the same slice of every
block, so a step only reads data already on its device, and the batches are
the same whatever the device count: the padding has weight 0 and the loss is
`sum(weight * loss) / sum(weight)` over all devices.

Shuffling (`shuffle="blocks"`): the rows are permuted once (seeded), and each
epoch visits the blocks in a fresh order, `permutation(fold_in(rng, epoch))`.
The order is a function of (seed, step), not of how steps were chunked or
resumed. Trade-off: the examples that share a batch stay together for the
whole run (as with a fixed sharded input pipeline); only the order of
batches changes between epochs.

`shuffle="rows"`: a fresh permutation of all rows every epoch, as a data
loader with `shuffle=True` does: every batch is a new random set of rows.
The permutation is never materialised (`index_shuffle`): each step computes
its rows' indices and gathers them from the resident data (no full copy per
epoch), which costs a random read per row instead of a contiguous one.
`shuffle="none"`: the batches in data order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from flaxzoo.trainers import index_shuffle

SHUFFLES = ("blocks", "rows", "none")


@dataclasses.dataclass(frozen=True)
class Layout:
  """How `num_examples` are cut into blocks for `num_shards` devices.

  Attributes:
    num_examples: real examples `n`.
    batch_size: real examples per block `B` (`n` for full batch).
    num_shards: devices the block dimension is split over.
    block_size: `B` rounded up to a multiple of `num_shards * row_chunk`.
    row_chunk: each device's share of a block is a whole number of these
      (a full batch is streamed through the step in chunks of rows).
    num_blocks: `ceil(n / B)`, the batches of one epoch.
  """

  num_examples: int
  batch_size: int
  num_shards: int
  row_chunk: int = 1

  @property
  def block_size(self) -> int:
    unit = self.num_shards * self.row_chunk
    return -(-self.batch_size // unit) * unit

  @property
  def num_blocks(self) -> int:
    return -(-self.num_examples // self.batch_size)


def make_layout(num_examples: int, batch_size: int | None, num_shards: int = 1, row_chunk: int = 1) -> Layout:
  """Full batch when `batch_size` is None or covers the data."""
  if batch_size is None or batch_size >= num_examples:
    batch_size = num_examples
  return Layout(num_examples, batch_size, num_shards, row_chunk)


def arrange(data: Mapping[str, np.ndarray], layout: Layout, order: np.ndarray | None = None) -> dict[str, np.ndarray]:
  """Host arrays `[n, ...]` → `[num_blocks, block_size, ...]`, plus `weight`.

  Args:
    data: `{"x": [n, d], "y": [n], "weight": [n] (optional)}`.
    layout: from `make_layout`.
    order: a permutation of `range(n)` applied first (None: file order).

  Returns:
    The blocks, with `weight [num_blocks, block_size]` zero on padding, and
    `scale = weight / (the block's total weight)`: the training loss is then
    `sum(scale * loss)` over the block, one sum across devices and no count
    to reduce separately (a second all-reduce per step, as costly as the first).
  """
  n, batch, block, num_blocks = layout.num_examples, layout.batch_size, layout.block_size, layout.num_blocks
  if order is None and "weight" not in data and block == batch and n == num_blocks * batch:
    # Whole batches in data order and no padding: the blocks are views, no copy.
    blocks = {key: np.asarray(value).reshape((num_blocks, block) + np.shape(value)[1:]) for key, value in data.items()}
    blocks["weight"] = np.ones((num_blocks, block), np.float32)
    blocks["scale"] = np.full((num_blocks, block), 1 / batch, np.float32)
    return blocks
  order = np.arange(n) if order is None else np.asarray(order)
  # Position p of the padded epoch holds example index[p]; slot[p] is real.
  slots = np.arange(num_blocks * block)
  block_of, offset = np.divmod(slots, block)
  position = block_of * batch + offset
  real = (offset < batch) & (position < n)
  index = np.where(real, order[np.minimum(position, n - 1)], 0)
  weight = real.astype(np.float32)
  if "weight" in data:
    weight = weight * np.asarray(data["weight"], np.float32)[index]
  blocks = {key: np.asarray(value)[index].reshape((num_blocks, block) + np.shape(value)[1:])
            for key, value in data.items() if key != "weight"}
  blocks["weight"] = weight.reshape(num_blocks, block)
  totals = blocks["weight"].sum(axis=1, keepdims=True)
  blocks["scale"] = np.divide(blocks["weight"], totals, out=np.zeros_like(blocks["weight"]), where=totals > 0)
  return blocks


def make_epoch_order_fn(num_blocks: int, shuffle: str = "blocks", layout: Layout | None = None):
  """`epoch_order_fn(epoch, rng)`: what epoch `epoch` visits, in order.

  `blocks`/`none`: block indices `[num_blocks]`. `rows`: the keys `[ROUNDS]`
  of the epoch's permutation of the examples (`index_shuffle`).
  """
  if shuffle not in SHUFFLES:
    raise ValueError(f"unknown shuffle {shuffle!r}; known: {', '.join(SHUFFLES)}")
  if shuffle == "rows":
    return lambda epoch, rng: index_shuffle.draw_keys(jax.random.fold_in(rng, epoch))
  if shuffle == "none" or num_blocks == 1:
    return lambda epoch, rng: jnp.arange(num_blocks, dtype=jnp.int32)
  return lambda epoch, rng: jax.random.permutation(jax.random.fold_in(rng, epoch), num_blocks).astype(jnp.int32)


def make_take_fn(shuffle: str = "blocks", layout: Layout | None = None):
  """`take_fn(blocks, order, position) -> batch`: the batch at `position` of an epoch's `order`."""
  if shuffle != "rows":
    return lambda blocks, order, position: take_block(blocks, order[position])
  n, batch, block = layout.num_examples, layout.batch_size, layout.block_size

  def take_rows(blocks, keys, position):
    offset = jnp.arange(block)
    place = position * batch + offset
    real = (offset < batch) & (place < n)
    index = jnp.where(real, index_shuffle.shuffled_index(jnp.minimum(place, n - 1), keys, n), 0)
    slot = (index // batch) * block + index % batch  # where example `index` lies in the blocks
    flat = {key: value.reshape((-1,) + value.shape[2:]) for key, value in blocks.items() if key != "scale"}
    rows = {key: jnp.take(value, slot, axis=0) for key, value in flat.items()}
    weight = jnp.where(real, rows["weight"], 0)
    rows["weight"] = weight
    rows["scale"] = weight / jnp.maximum(jnp.sum(weight), jnp.finfo(weight.dtype).tiny)
    return rows

  return take_rows


def take_block(blocks, index):
  """The batch `{key: [block_size, ...]}` of block `index` (no copy of other blocks)."""
  return {key: jax.lax.dynamic_index_in_dim(value, index, axis=0, keepdims=False)
          for key, value in blocks.items()}


# Evaluation reads the data in blocks of this many rows (padded with weight-0 rows).
EVAL_CHUNK = 4096


def eval_blocks(placement, cache: dict, data, arrays):
  """`arrays` (of `data`) in blocks of `EVAL_CHUNK` rows on the `placement`'s devices: every split of up to that
  many rows has the same shape (one compiled evaluation for train and test), and read-only data evaluated again
  (a run's splits, at each logged step) is laid out once, in `cache`."""
  values = list(data.values() if isinstance(data, Mapping) else data)
  if any(not isinstance(v, np.ndarray) or v.flags.writeable for v in values):  # it could change in place
    return placement.put_blocks(arrange(arrays, Layout(len(arrays["x"]), EVAL_CHUNK, placement.num_shards)))
  key = tuple((id(v), v.shape) for v in values)
  if key not in cache:
    layout = Layout(len(arrays["x"]), EVAL_CHUNK, placement.num_shards)
    if len(cache) >= 4:
      cache.pop(next(iter(cache)))
    # The data is kept beside its blocks: its ids then stay its own.
    cache[key] = (data, placement.put_blocks(arrange(arrays, layout)))
  return cache[key][1]
