"""Training on data larger than memory: `.npy` files read in chunks of rows,
prepared in a background thread while the device trains on the previous chunk.

Memory stays bounded by the chunks in flight (`prefetch + 1` chunks, each held
as read, as laid out in blocks and on the device), whatever the file size:
rows are read with plain positioned reads (`os.pread`) into fresh arrays, not
through a memory map, whose pages would stay resident and count towards the
process's memory until the kernel needs them back.

>>> history = fit_stream(trainer, "x.npy", "y.npy", batch_size=8192, chunk_rows=262144)
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import time

import jax
import numpy as np

from flaxzoo.datasets.tables import DataError
from flaxzoo.trainers.parallel import to_host


def _aligned_empty(shape, dtype, alignment: int = 64) -> np.ndarray:
  size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
  raw = np.empty(size + alignment, np.uint8)
  start = (-raw.ctypes.data) % alignment
  return raw[start:start + size].view(dtype).reshape(shape)


@dataclasses.dataclass(frozen=True)
class NpyRows:
  """The rows of a C-ordered `.npy` file, read by position: `rows.read(start, stop)`."""

  path: str
  shape: tuple[int, ...]
  dtype: np.dtype
  offset: int

  @classmethod
  def open(cls, path) -> "NpyRows":
    path = os.fspath(path)
    try:
      with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    except FileNotFoundError:
      raise DataError(f"{path}: no such file") from None
    except ValueError as e:
      raise DataError(f"{path}: not an .npy file ({e})") from None
    if fortran or dtype.hasobject or not shape:
      raise DataError(f"{path}: needs a C-ordered numeric array with rows, got shape {shape}, dtype {dtype}")
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    if os.path.getsize(path) < expected:
      raise DataError(f"{path}: truncated ({os.path.getsize(path)} bytes, the header says {expected})")
    return cls(path, tuple(shape), dtype, offset)

  def __len__(self) -> int:
    return self.shape[0]

  @property
  def row_bytes(self) -> int:
    return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

  def read(self, start: int, stop: int) -> np.ndarray:
    """Rows `start:stop` as a new array (64-byte aligned: the CPU device then uses it without a copy)."""
    out = _aligned_empty((stop - start,) + self.shape[1:], self.dtype)
    view = memoryview(out.reshape(-1).view(np.uint8))
    fd = os.open(self.path, os.O_RDONLY)
    try:
      done, position = 0, self.offset + start * self.row_bytes
      while done < len(view):
        got = os.preadv(fd, [view[done:]], position + done)
        if got == 0:
          raise DataError(f"{self.path}: ended early at byte {position + done}")
        done += got
    finally:
      os.close(fd)
    return out


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
      history.steps.append(int(to_host(placement.unreplicate(steps))[-1]))
      history.losses.append(float(to_host(placement.unreplicate(losses))[-1]))
      history.rows += layout.num_examples
  trainer.state = placement.unreplicate(state)
  jax.block_until_ready(trainer.state)
  history.seconds = time.perf_counter() - begin
  return history
