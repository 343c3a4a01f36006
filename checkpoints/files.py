"""Writing files so that a reader never sees half of one: a temporary file, then a rename.

The one atomic-write helper of the package: checkpoints (seals), exports and
the run layer's workdir (results, eval, predictions, logs) all write through it.
"""

from __future__ import annotations

import json
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


def write_json_atomic(path, payload: Any) -> None:
  """`payload` as indented JSON, written atomically."""
  write_atomic(path, json.dumps(payload, indent=2) + "\n")
