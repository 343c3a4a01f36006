"""A run's folder: created and checked before any work, files replaced atomically, old outputs moved aside."""

from __future__ import annotations

import pathlib
import time

from flaxzoo.checkpoints.files import write_atomic as write_atomic
from flaxzoo.checkpoints.files import write_json_atomic as write_json_atomic
from flaxzoo.datasets.loading import ensure_writable
from flaxzoo.datasets.tables import DataError
from flaxzoo.experiments.errors import ConfigError


def prepare_workdir(workdir) -> pathlib.Path:
  """Creates `workdir` and checks that it can be written to, before any work."""
  try:
    return ensure_writable(workdir, "workdir")
  except DataError as e:
    raise ConfigError(str(e)) from None


def move_aside(path: pathlib.Path, label: str = "old") -> pathlib.Path:
  """Renames `path` to `<name>.<label>-<time>[-n]` beside it (never deletes); returns the new path."""
  stamp = time.strftime("%Y%m%d-%H%M%S")
  target = path.with_name(f"{path.name}.{label}-{stamp}")
  n = 1
  while target.exists():
    target = path.with_name(f"{path.name}.{label}-{stamp}-{n}")
    n += 1
  path.rename(target)
  return target
