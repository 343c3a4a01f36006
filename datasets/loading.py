"""Building a TFDS dataset on first use and reading a split as NumPy columns."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pathlib
import sys
import tempfile

import numpy as np

from flaxzoo.datasets.tables import DataError

_BUILDERS = {"brain_age": "flaxzoo.datasets.brain_age.brain_age_dataset_builder"}


def default_data_dir() -> pathlib.Path:
  """`$TFDS_DATA_DIR`, else `$XDG_CACHE_HOME/flaxzoo/tensorflow_datasets` (~/.cache)."""
  if os.environ.get("TFDS_DATA_DIR"):
    return pathlib.Path(os.environ["TFDS_DATA_DIR"])
  cache = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
  return pathlib.Path(cache) / "flaxzoo" / "tensorflow_datasets"


def ensure_writable(directory, what: str = "data dir", hint: str = "") -> pathlib.Path:
  """Creates `directory` and checks that it can be written to, before any work (the one probe).

  Raises:
    DataError: `"{what} {directory} is not writable (reason){hint}"`.
  """
  directory = pathlib.Path(directory)
  try:
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".flaxzoo-write-test"):
      pass
  except OSError as e:
    raise DataError(f"{what} {directory} is not writable ({e.strerror or e}){hint}") from None
  return directory


@contextlib.contextmanager
def _quiet_absl():
  """Hides TFDS's absl warnings that mean nothing to a user: before a first build
  it warns that the folder it is about to create has no dataset_info.json."""
  logger = logging.getLogger("absl")
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(level)


def get_builder(name: str, data_dir=None):
  """The TFDS builder of dataset `name`, writing array_record files to `data_dir`."""
  if name not in _BUILDERS:
    raise DataError(f"unknown dataset {name!r}; known: {', '.join(_BUILDERS)}")
  import importlib

  module = importlib.import_module(_BUILDERS[name])
  data_dir = pathlib.Path(data_dir) if data_dir else default_data_dir()
  with _quiet_absl():
    return module.Builder(data_dir=os.fspath(data_dir), file_format="array_record")


def prepare(name: str, data_dir=None, log=None, progress_bar: bool = False):
  """Builds dataset `name` into `data_dir` unless it is already there; returns the builder.

  Args:
    log: called with one line before a build.
    progress_bar: show TFDS's own bars during a build (a terminal; none in
      logs or with --quiet).
  """
  with _quiet_absl():
    builder = get_builder(name, data_dir)
    if not builder.is_prepared():
      root = pathlib.Path(builder.data_dir).parents[1]
      ensure_writable(root, "data dir", "; pass another with --data-dir or TFDS_DATA_DIR")
      if log:
        log(f"building dataset {name} {builder.version} into {root} (first use)")
      from tensorflow_datasets.core.utils import tqdm_utils

      was_active = tqdm_utils._active  # pylint: disable=protected-access
      tqdm_utils.display_progress_bar(progress_bar)
      try:
        # TFDS prints its own two lines to stdout, which belongs to results.
        with contextlib.redirect_stdout(sys.stderr if log else io.StringIO()):
          builder.download_and_prepare()
      finally:
        tqdm_utils.display_progress_bar(was_active)
  return builder


def load_split(name: str, split: str, data_dir=None, log=None, progress_bar: bool = False) -> dict[str, np.ndarray]:
  """Reads a whole split as `{feature: [n] array}`, in the split's reference order.

  Built on first use. Read with `as_data_source()` (array_record random access),
  which needs no TensorFlow. Examples come back in storage order, not split
  order, so they are sorted by their `index` feature.
  """
  builder = prepare(name, data_dir, log, progress_bar)
  sources = builder.as_data_source()
  if split not in sources:
    raise DataError(f"dataset {name!r} has no split {split!r}; splits: {', '.join(sources)}")
  source = sources[split]
  examples = source.__getitems__(range(len(source)))
  columns = {key: np.asarray([e[key] for e in examples]) for key in examples[0]}
  order = np.argsort(columns["index"]) if "index" in columns else slice(None)
  return {key: value[order] for key, value in columns.items()}
