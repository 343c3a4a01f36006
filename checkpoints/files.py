"""Writing files so that a reader never sees half of one: a temporary file, then a rename.

The one atomic-write helper of the package: checkpoints (seals), exports and
the run layer's workdir (results, eval, predictions, logs) all write through it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pathlib
import stat
import tempfile
from typing import Any

# The most a JSON file of flaxzoo's (a card, a manifest) holds: a larger one is refused unread.
JSON_LIMIT = 64 << 20


def umask() -> int:
  """The process's umask, read without changing it (Linux), else by setting and restoring it."""
  try:
    with open("/proc/self/status") as status:
      for line in status:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except (OSError, ValueError):
    pass
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


def file_mode() -> int:
  """The mode `open()` gives a new file: 0o666 less the umask (`mkstemp` gives 0o600 whatever the umask)."""
  return 0o666 & ~umask()


def folder_mode() -> int:
  return 0o777 & ~umask()


def hold_signals():
  """Holds SIGINT and SIGTERM back: their handlers only note them until the returned call, which puts the
  handlers back and passes on the first one noted (a handler's exception, or the default action). Around
  making a temporary file and the `try` that removes it, and around the removal: a signal between the two
  once left a staging folder behind. Handlers, not the signal mask: a signal that reaches one of JAX's
  threads still runs its Python handler in the main thread. Elsewhere than the main thread: nothing held.
  `release.noted` lists the signals held so far."""
  import signal
  import threading

  if threading.current_thread() is not threading.main_thread():
    return lambda: None
  noted: list[int] = []
  previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
  for signum in previous:
    signal.signal(signum, lambda number, frame: noted.append(number))

  def release():
    for signum, handler in previous.items():
      signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    if noted:
      handler = previous[noted[0]]
      if callable(handler):
        handler(noted[0], None)
      elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), noted[0])

  release.noted = noted  # what arrived so far: a long hold stops its work at a safe point
  return release


def make_temp_folder(parent, prefix: str) -> pathlib.Path:
  """A new folder `parent/<prefix><random>` with the umask's mode (`mkdtemp` gives 0o700)."""
  path = pathlib.Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
  path.chmod(folder_mode())
  return path


def write_atomic(path, data: str | bytes) -> None:
  """Writes `data` to `path` through a temporary file beside it and `os.replace`."""
  with open_atomic(path) as f:
    f.write(data.encode() if isinstance(data, str) else data)


@contextlib.contextmanager
def open_atomic(path, *, exclusive: bool = False):
  """A binary file to write `path` with: a temporary file beside it, moved onto `path` when the block
  ends without an error, removed when it does not (nothing half-written is ever at `path`). The file gets
  the umask's mode, as `open()` would give it.

  `exclusive`: `path` must not exist, and is created only if no one else created it meanwhile (a hard
  link, which fails on an existing name; FileExistsError otherwise): of two writers, one wins and the
  other is told, never a silent overwrite. Otherwise `path` is replaced (`os.replace`).
  """
  path = pathlib.Path(path)
  release = hold_signals()  # until the `try` that removes the temporary file has begun
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    release()
    os.fchmod(fd, file_mode())
    with os.fdopen(fd, "wb") as f:
      yield f
    if exclusive:
      os.link(tmp, path)
      os.unlink(tmp)
    else:
      os.replace(tmp, path)
  except BaseException:
    release = hold_signals()
    try:
      pathlib.Path(tmp).unlink(missing_ok=True)
    finally:
      release()
    raise


def standard_json(value: Any) -> Any:
  """`value` with every non-finite float (NaN, ±inf) as None: what standard JSON can hold.

  A metric that is undefined (R2 of a constant label, ROC AUC of one class) is
  `null`; a non-finite loss or parameter never gets this far (training stops).
  """
  if isinstance(value, float):
    return value if math.isfinite(value) else None
  if isinstance(value, dict):
    return {k: standard_json(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [standard_json(v) for v in value]
  return value


def dumps(payload: Any, **kwargs) -> str:
  """Standard JSON text (`allow_nan=False`) of `payload` after `standard_json`."""
  return json.dumps(standard_json(payload), allow_nan=False, **kwargs)


def write_json_atomic(path, payload: Any) -> None:
  """`payload` as indented standard JSON, written atomically."""
  write_atomic(path, dumps(payload, indent=2) + "\n")


def read_bounded(path, limit: int = JSON_LIMIT) -> bytes:
  """The bytes of the regular file `path`, at most `limit` of them: a FIFO, a device or a folder (which would
  block or never end) and a larger file are refused at once with an OSError naming the path; links are not
  followed."""
  flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
  fd = os.open(path, flags)  # non-blocking: opening a FIFO with no writer returns at once
  try:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
      raise OSError(f"{path}: not a regular file")
    if info.st_size > limit:
      raise OSError(f"{path}: {info.st_size} bytes, more than the {limit} such a file holds")
    with os.fdopen(os.dup(fd), "rb") as f:
      data = f.read(limit + 1)
    if len(data) > limit:
      raise OSError(f"{path}: more than the {limit} bytes such a file holds")
    return data
  finally:
    os.close(fd)
