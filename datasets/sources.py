"""Training data by name: `brain_age`, `csv:PATH` or `tfds:NAME[/CONFIG]`, through one registry.

`load_data` returns the preprocessed train and test splits, the fitted
preprocessing (which a checkpoint records, so that predictions apply the
same transform) and the task:

- `brain_age`: the reference split; features `gm` or `tissue`, label `age`
  (regression) or `age_group` (age >= 60, classification).
- `csv:PATH`: a CSV/TSV with a header; `label` names the label column,
  `features` the input columns (default: all others, numeric). The task is
  inferred from the label unless given: text, or integers with at most
  `MAX_INFERRED_CLASSES` distinct values, is classification; other numbers
  regression. A seeded split holds out `test_fraction` of the rows.
- `tfds:NAME[/CONFIG]`: a TFDS dataset already prepared (array_record) in the
  data dir, read with no TensorFlow; images are flattened and scaled to
  [0, 1]. Its `test` split is used when it has one.

Standardisation (mean 0, std 1 per feature, fitted on the train split) is
applied when `standardize` is set.

A dataset kind registers a loader under the part of its name before `:`
(`register_source`); `load_data` looks it up and does the rest (standardise,
preprocess, check classes) the same way for every kind.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from flaxzoo.datasets.preprocessing import class_name
from flaxzoo.datasets.tables import DataError
from flaxzoo.zoo.registry import Registry, UnknownNameError

MAX_INFERRED_CLASSES = 20
TASKS = ("regression", "classification")


@dataclasses.dataclass(frozen=True)
class Request:
  """What a source is asked for (see `load_data`'s arguments); `spec` is the name after `KIND:`."""

  name: str
  spec: str
  features: str | None
  label: str | None
  task: str | None
  test_fraction: float
  split_seed: int
  data_dir: Any
  download: bool
  log: Callable[[str], None] | None
  progress_bar: bool


# `loader(request) -> LoadedData` (splits left empty: `load_data` fills them), by kind.
SOURCES: Registry[Callable[[Request], LoadedData]] = Registry("dataset")


def register_source(kind: str, loader: Callable[[Request], LoadedData] | str) -> None:
  """Registers `loader` (a function, or `"package.module:function"`) for datasets named `KIND` or `KIND:SPEC`."""
  if isinstance(loader, str):
    SOURCES.register_lazy(kind, loader)
  else:
    SOURCES.register(kind, loader)


# The sources flaxzoo knows, by path (imported when used).
register_source("brain_age", "flaxzoo.datasets.brain_age.source:load_brain_age")
register_source("csv", "flaxzoo.datasets.csv_source:load_csv")
register_source("claims", "flaxzoo.datasets.claims:load_claims")
register_source("tfds", "flaxzoo.datasets.tfds_source:load_tfds")


@dataclasses.dataclass
class LoadedData:
  """Preprocessed splits of a dataset and what it takes to reproduce them.

  Attributes:
    name: the dataset as given (`brain_age`, `csv:...`, `tfds:...`).
    task: `regression` or `classification`.
    preprocessing: the fitted transform from raw columns to `(x, y)`.
    splits: `{"train": (x [n, d] float32, y [n]), "test": ...}`; classification
      labels are int32 class indices.
    raw: the raw columns of each split (for cards and plots).
    class_names: classification only.
    record: which data this is, for results and cards: `name`, and a
      `sha256` of the file, a `version` and the split where there are.
    row_ids: `{split: [n]}` the dataset's own row ids where a source has
      them apart from its columns (see `rows_of`).
  """

  name: str
  task: str
  preprocessing: Any
  splits: dict[str, tuple[np.ndarray, np.ndarray]]
  raw: dict[str, Mapping[str, np.ndarray]]
  class_names: tuple[str, ...] | None = None
  record: dict[str, Any] = dataclasses.field(default_factory=dict)
  row_ids: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  # `{split: [n]}` float64: a column added to the linear predictor (`--offset`), where the run has one.
  offsets: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  def split_data(self, split: str):
    """What a `Trainer` fits and evaluates on: `(x, y)`, or `{"x", "y", "offset"}` with an offset."""
    x, y = self.splits[split]
    return {"x": x, "y": y, "offset": self.offsets[split]} if split in self.offsets else (x, y)

  def file_column(self, column: str, split: str, numeric: bool = False) -> np.ndarray:
    """A column of a csv dataset for the rows of `split` `[n]` (strings; `numeric`: float64, read as the table
    reader reads numbers), also one the model does not read."""
    if not self.name.startswith("csv:"):
      raise ValueError(f"column {column!r}: only a csv dataset's other columns can be read, not {self.name!r}'s")
    from flaxzoo.datasets.tables import read_table_header, stream_columns

    path = self.name.removeprefix("csv:")
    if column not in read_table_header(path).names:
      raise ValueError(f"column {column!r}: no such column in {path}")
    if numeric:
      values = np.concatenate([block[column] for block in stream_columns(path, numeric=(column,))])
    else:
      text = lambda v: v.to_pylist() if hasattr(v, "to_pylist") else list(v)  # (Arrow's strings, or NumPy's)
      values = np.concatenate([np.asarray(text(block[column]), str) for block in stream_columns(path, text=(column,))])
    return values[self.rows_of(split)]

  def rows_of(self, split: str) -> np.ndarray:
    """The dataset's own id of each row of `split` `[n]`: the 0-based data row of the file (csv, and
    brain_age's TSV, as its TFDS examples carry it), else the example's index in its TFDS split."""
    if split in self.row_ids:
      return np.asarray(self.row_ids[split])
    if "row" in self.raw.get(split, {}):
      return np.asarray(self.raw[split]["row"])
    return np.arange(len(self.splits[split][0]))

  @property
  def num_features(self) -> int:
    return int(self.splits["train"][0].shape[1])

  @property
  def num_classes(self) -> int | None:
    return None if self.class_names is None else len(self.class_names)


def load_data(
    dataset: str,
    *,
    features: str | None = None,
    label: str | None = None,
    task: str | None = None,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    standardize: bool = False,
    data_dir=None,
    download: bool = False,
    log: Callable[[str], None] | None = None,
    progress_bar: bool = False,
) -> LoadedData:
  """Loads, splits and preprocesses `dataset` (see the module docstring).

  Args:
    features: brain_age: `gm` or `tissue`; csv/tfds: comma-separated columns
      (default: every column but the label).
    label: brain_age: `age` (default) or `age_group`; csv: required; tfds:
      default `label`.
    task: `regression`, `classification`, or None to infer.
    test_fraction, split_seed: the held-out share and the seed of the split
      (csv, and tfds datasets without a test split).
    download: tfds only: download and prepare a dataset that is missing.
    progress_bar: show TFDS's own bars while a dataset is built.

  Raises:
    DataError: naming the file, line, column or dataset of the problem.
  """
  if task is not None and task not in TASKS:
    raise DataError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
  if not 0 < test_fraction < 1:
    raise DataError(f"test fraction must be between 0 and 1, got {test_fraction}")
  kind, _, spec = dataset.partition(":")
  try:
    loader = SOURCES.get(kind)
  except UnknownNameError:
    raise DataError(f"unknown dataset {dataset!r}; use brain_age, csv:PATH or tfds:NAME[/CONFIG]") from None
  data = loader(Request(dataset, spec, features, label, task, test_fraction, split_seed, data_dir, download, log,
                        progress_bar))
  data.record = {"name": dataset, **data.record}
  if standardize:
    data.preprocessing = data.preprocessing.standardized(data.raw["train"])
  preprocess = data.preprocessing
  data.splits = {split: preprocess(raw) for split, raw in data.raw.items()}
  for x, y in data.splits.values():
    x.flags.writeable = y.flags.writeable = False  # the run's data, shared by its steps and evaluations
  for split, (x, _) in data.splits.items():
    if not np.all(np.isfinite(x)):  # e.g. a TFDS feature of 1e308: float32 inputs overflow
      column = int(np.argmax(~np.all(np.isfinite(x), axis=0)))
      raise DataError(f"{data.name}: split {split!r}, model input {column} is not finite after preprocessing"
                      " (a value too large for float32?)")
  if data.task == "classification":
    _check_classes(data)
  return data


def _check_classes(data: LoadedData) -> None:
  y = data.splits["train"][1]
  present = np.unique(y)
  if data.num_classes < 2 or len(present) < 2:
    only = data.class_names[int(present[0])] if len(present) else "none"
    raise DataError(f"{data.name}: the label has one class only ({only!r}) in the train split;"
                    " classification needs at least 2")
  if data.num_classes > len(y):
    raise DataError(f"{data.name}: the label has {data.num_classes} classes but the train split has only"
                    f" {len(y)} rows; is it a regression target (--task regression)?")


def check_distinct(columns: list[str], where) -> None:
  """A feature named twice would be trained on twice (and look like two): one line naming it."""
  seen = set()
  for column in columns:
    if column in seen:
      raise DataError(f"{where}: --features names the column {column!r} twice")
    seen.add(column)


def infer_task(values: list[str]) -> str:
  try:
    numbers = np.asarray([float(v) for v in values])
  except ValueError:
    return "classification"
  integral = np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers))
  if integral and len(np.unique(numbers)) <= MAX_INFERRED_CLASSES:
    return "classification"
  return "regression"


def split_rows(n: int, test_fraction: float, seed: int, where: str) -> dict[str, np.ndarray]:
  num_test = max(1, int(round(n * test_fraction)))
  if n - num_test < 1:
    raise DataError(f"{where}: {n} rows are too few for a train and a test split (test fraction {test_fraction})")
  order = np.random.default_rng(seed).permutation(n)
  return {"train": np.sort(order[num_test:]), "test": np.sort(order[:num_test])}


def classes_of(values) -> tuple[str, ...]:
  names = [class_name(v) for v in values]
  unique = sorted(set(names))
  if all(_is_number(name) for name in unique):  # numbers in numeric order
    unique = sorted(unique, key=float)
  return tuple(unique)


def _is_number(text: str) -> bool:
  try:
    float(text)
  except ValueError:
    return False
  return True
