"""Training on data larger than memory: `.npy` files read in chunks of rows,
prepared in a background thread while the device trains on the previous chunk.

Each chunk is its own read-only memory map of the file's rows, populated in
the background thread, which the CPU device then uses in place (rows of a
multiple of 64 bytes are 64-byte aligned in an .npy file, and JAX does not copy
aligned host memory onto the CPU): no copy of the data at all when the batches
are in file order. A map is closed when the chunk's training is done, so memory
stays bounded by the chunks in flight (`prefetch + 1` prepared ahead, and at
most two queued on the device), whatever the file size;
one map of the whole file would keep every page it touched resident (and
counted in the process's memory) until the kernel needs them back. Reading
each chunk into a fresh array instead (`os.preadv`) cost a copy of every row:
~11 ms per 65 MiB chunk, as much as training on it.

>>> history = fit_stream(trainer, "x.npy", "y.npy", batch_size=8192, chunk_rows=262144)
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time

import jax

from flaxzoo.datasets.npy_rows import NpyRows
from flaxzoo.datasets.tables import DataError
from flaxzoo.trainers.placement import to_host


@dataclasses.dataclass
class StreamHistory:
  """What `fit_stream` did: the loss after each chunk, rows read, seconds."""

  steps: list[int] = dataclasses.field(default_factory=list)
  losses: list[float] = dataclasses.field(default_factory=list)
  rows: int = 0
  seconds: float = 0.0


def fit_stream(trainer, x_path, y_path, *, batch_size: int, epochs: int = 1, chunk_rows: int = 262_144,
               shuffle: str = "blocks", prefetch: int = 1) -> StreamHistory:
  """Trains `trainer` for `epochs` passes over `x.npy [n, d]` and `y.npy [n]`, a chunk at a time.

  Each chunk of `chunk_rows` rows (a multiple of `batch_size`, so batches never
  straddle chunks) is read, laid out in blocks and put on the device in a
  background thread while the previous chunk trains in one compiled call.
  `shuffle="blocks"` permutes the rows within each chunk (seeded), `"none"`
  keeps file order; the chunks go in file order. With `"none"` the steps are
  those of `trainer.fit(..., shuffle="none")` on the whole file.
  """
  x_rows, y_rows = NpyRows.open(x_path), NpyRows.open(y_path)
  if len(x_rows) != len(y_rows):
    raise DataError(f"{y_path}: {len(y_rows)} rows, but {x_path} has {len(x_rows)}")
  if chunk_rows < batch_size:
    raise ValueError(f"chunk_rows ({chunk_rows}) must be at least batch_size ({batch_size})")
  chunk_rows -= chunk_rows % batch_size
  n = len(x_rows)
  bounds = [(start, min(start + chunk_rows, n)) for start in range(0, n, chunk_rows)]

  def prepare(start, stop):
    chunk = {"x": x_rows.read(start, stop), "y": y_rows.read(start, stop)}
    layout, blocks = trainer.layout_blocks(chunk, batch_size, shuffle, name=f"{x_path} rows {start}:{stop}")
    return layout, jax.block_until_ready(blocks)

  history = StreamHistory()
  placement = trainer.placement
  state = placement.put_state(trainer.state)
  begin = time.perf_counter()
  results = []
  with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
    work = [bounds[k % len(bounds)] for k in range(epochs * len(bounds))]
    pending = [pool.submit(prepare, *bounds_) for bounds_ in work[:prefetch + 1]]
    for k in range(len(work)):
      layout, blocks = pending.pop(0).result()
      if k + prefetch + 1 < len(work):
        pending.append(pool.submit(prepare, *work[k + prefetch + 1]))
      # The rows of a chunk were permuted by its layout (shuffle "blocks"); its
      # batches then go in order, whatever the step count at the chunk's start.
      run = trainer.fused_loop(layout.num_blocks, "none")
      state, steps, losses = run(state, blocks, 1, layout.num_blocks)
      del blocks  # its memory goes back once the call is done with it
      # Wait for the chunk before this one, not this one: the device goes on
      # to this chunk without a gap, and at most two chunks are queued on it.
      if results:
        jax.block_until_ready(results[-1])
      results.append((steps, losses))
      history.rows += layout.num_examples
  for steps, losses in results:
    history.steps.append(int(to_host(placement.unreplicate(steps))[-1]))
    history.losses.append(float(to_host(placement.unreplicate(losses))[-1]))
  trainer.state = placement.unreplicate(state)
  jax.block_until_ready(trainer.state)
  history.seconds = time.perf_counter() - begin
  return history
