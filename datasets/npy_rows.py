"""Rows of a `.npy` file by position, each chunk its own read-only memory map (for streaming)."""

from __future__ import annotations

import dataclasses
import mmap
import os

import numpy as np

from flaxzoo.datasets.tables import DataError


@dataclasses.dataclass(frozen=True)
class NpyRows:
  """The rows of a C-ordered `.npy` file, by position: `rows.read(start, stop)`."""

  path: str
  shape: tuple[int, ...]
  dtype: np.dtype
  offset: int

  @classmethod
  def open(cls, path) -> NpyRows:
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
    """Rows `start:stop`, read-only, from a memory map of just those rows (closed with the array).

    The pages are read in now (`MAP_POPULATE`), in the calling thread.
    """
    begin = self.offset + start * self.row_bytes
    length = (stop - start) * self.row_bytes
    if length == 0:
      return np.empty((0,) + self.shape[1:], self.dtype)
    base = begin - begin % mmap.ALLOCATIONGRANULARITY  # a map starts at a page boundary
    with open(self.path, "rb") as f:
      if os.fstat(f.fileno()).st_size < begin + length:
        raise DataError(f"{self.path}: ended early, before byte {begin + length}")
      mapped = mmap.mmap(f.fileno(), begin - base + length, prot=mmap.PROT_READ,
                         flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0), offset=base)
    count = (stop - start) * (self.row_bytes // self.dtype.itemsize)
    # The array holds the map; the map is unmapped when the last view of it goes.
    return np.frombuffer(mapped, self.dtype, count, offset=begin - base).reshape((stop - start,) + self.shape[1:])
