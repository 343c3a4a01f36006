"""Building a TFDS dataset on first use and reading a split as NumPy columns."""

from __future__ import annotations

import os
import pathlib
import tempfile

import numpy as np

from flaxzoo.datasets.tables import DataError

_BUILDERS = {"brain_age": "flaxzoo.datasets.brain_age"}


def default_data_dir() -> pathlib.Path:
  """`$TFDS_DATA_DIR`, else `$XDG_CACHE_HOME/flaxzoo/tensorflow_datasets` (~/.cache)."""
  if os.environ.get("TFDS_DATA_DIR"):
    return pathlib.Path(os.environ["TFDS_DATA_DIR"])
  cache = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
  return pathlib.Path(cache) / "flaxzoo" / "tensorflow_datasets"


def _check_writable(data_dir: pathlib.Path) -> None:
  try:
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".flaxzoo-write-test"):
      pass
  except OSError as e:
    raise DataError(
        f"data dir {data_dir} is not writable ({e.strerror or e}); pass another"
        " with --data-dir or TFDS_DATA_DIR"
    ) from None


def get_builder(name: str, data_dir=None):
  """The TFDS builder of dataset `name`, writing array_record files to `data_dir`."""
  if name not in _BUILDERS:
    raise DataError(f"unknown dataset {name!r}; known: {', '.join(_BUILDERS)}")
  import importlib

  module = importlib.import_module(_BUILDERS[name])
  data_dir = pathlib.Path(data_dir) if data_dir else default_data_dir()
  return module.Builder(data_dir=os.fspath(data_dir), file_format="array_record")


def prepare(name: str, data_dir=None):
  """Builds dataset `name` into `data_dir` unless it is already there; returns the builder."""
  builder = get_builder(name, data_dir)
  if not builder.is_prepared():
    _check_writable(pathlib.Path(builder.data_dir).parents[1])
    builder.download_and_prepare()
  return builder


def load_split(name: str, split: str, data_dir=None) -> dict[str, np.ndarray]:
  """Reads a whole split as `{feature: [n] array}`, in the split's reference order.

  Built on first use. Read with `as_data_source()` (array_record random access),
  which needs no TensorFlow. Examples come back in storage order, not split
  order, so they are sorted by their `index` feature.
  """
  builder = prepare(name, data_dir)
  sources = builder.as_data_source()
  if split not in sources:
    raise DataError(f"dataset {name!r} has no split {split!r}; splits: {', '.join(sources)}")
  source = sources[split]
  examples = source.__getitems__(range(len(source)))
  columns = {key: np.asarray([e[key] for e in examples]) for key in examples[0]}
  order = np.argsort(columns["index"]) if "index" in columns else slice(None)
  return {key: value[order] for key, value in columns.items()}
