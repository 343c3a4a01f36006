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
import tempfile
from typing import Any


def write_atomic(path, data: str | bytes) -> None:
  """Writes `data` to `path` through a temporary file beside it and `os.replace`."""
  path = pathlib.Path(path)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise


@contextlib.contextmanager
def open_atomic(path):
  """A binary file to write `path` with: a temporary file beside it, renamed onto `path` when the
  block ends without an error, removed when it does not (nothing half-written is ever at `path`)."""
  path = pathlib.Path(path)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      yield f
    os.replace(tmp, path)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
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
