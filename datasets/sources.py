"""Training data by name: `brain_age`, `csv:PATH` or `tfds:NAME[/CONFIG]`.

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
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any, Callable, Mapping

import numpy as np

from flaxzoo.datasets.csv_table import read_csv_table
from flaxzoo.datasets.loading import default_data_dir, load_split
from flaxzoo.datasets.preprocessing import Columns, TissueFractions, class_name
from flaxzoo.datasets.tables import DataError

MAX_INFERRED_CLASSES = 20
TASKS = ("regression", "classification")


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
  """

  name: str
  task: str
  preprocessing: Any
  splits: dict[str, tuple[np.ndarray, np.ndarray]]
  raw: dict[str, Mapping[str, np.ndarray]]
  class_names: tuple[str, ...] | None = None

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

  Raises:
    DataError: naming the file, line, column or dataset of the problem.
  """
  if task is not None and task not in TASKS:
    raise DataError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
  if not 0 < test_fraction < 1:
    raise DataError(f"test fraction must be between 0 and 1, got {test_fraction}")
  if dataset == "brain_age":
    data = _brain_age(features, label, task, data_dir, log)
  elif dataset.startswith("csv:"):
    data = _csv(dataset, dataset[4:], features, label, task, test_fraction, split_seed)
  elif dataset.startswith("tfds:"):
    data = _tfds(dataset, dataset[5:], features, label, task, test_fraction, split_seed, data_dir, download, log)
  else:
    raise DataError(f"unknown dataset {dataset!r}; use brain_age, csv:PATH or tfds:NAME[/CONFIG]")
  if standardize:
    data.preprocessing = data.preprocessing.standardized(data.raw["train"])
  preprocess = data.preprocessing
  data.splits = {split: preprocess(raw) for split, raw in data.raw.items()}
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


def _brain_age(features, label, task, data_dir, log) -> LoadedData:
  label = label or "age"
  try:
    preprocessing = TissueFractions(features=features or "gm", label=label)
  except ValueError as e:  # an unknown feature set or label, named with the known ones
    raise DataError(f"brain_age: {e}") from None
  if task is not None and task != preprocessing.task:
    raise DataError(f"brain_age label {label!r} is a {preprocessing.task} target, not {task}")
  raw = {split: load_split("brain_age", split, data_dir, log) for split in ("train", "test")}
  return LoadedData("brain_age", preprocessing.task, preprocessing, {}, raw, preprocessing.class_names)


def _infer_task(values: list[str]) -> str:
  try:
    numbers = np.asarray([float(v) for v in values])
  except ValueError:
    return "classification"
  integral = np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers))
  if integral and len(np.unique(numbers)) <= MAX_INFERRED_CLASSES:
    return "classification"
  return "regression"


def _split_rows(n: int, test_fraction: float, seed: int, where: str) -> dict[str, np.ndarray]:
  num_test = max(1, int(round(n * test_fraction)))
  if n - num_test < 1:
    raise DataError(f"{where}: {n} rows are too few for a train and a test split (test fraction {test_fraction})")
  order = np.random.default_rng(seed).permutation(n)
  return {"train": np.sort(order[num_test:]), "test": np.sort(order[:num_test])}


def _classes_of(values) -> tuple[str, ...]:
  names = [class_name(v) for v in values]
  unique = sorted(set(names))
  try:  # numbers in numeric order
    unique = sorted(unique, key=float)
  except ValueError:
    pass
  return tuple(unique)


def _csv(name, path, features, label, task, test_fraction, seed) -> LoadedData:
  table = read_csv_table(path)
  if not label:
    raise DataError(f"{path}: which column is the label? pass --label COLUMN; columns: {', '.join(table.header)}")
  table.index_of(label, "label column")
  columns = [c.strip() for c in features.split(",")] if features else [c for c in table.header if c != label]
  for column in columns:
    table.index_of(column, "feature column")
  if label in columns:
    raise DataError(f"{path}: the label column {label!r} is also a feature")
  if not columns:
    raise DataError(f"{path}: no feature columns besides the label {label!r}")
  values = table.text(label)
  empty = [table.lines[k] for k, v in enumerate(values) if not v]
  if empty:
    raise DataError(f"{path}, line {empty[0]}, column {label!r}: empty label")
  task = task or _infer_task(values)
  columns_raw: dict[str, np.ndarray] = {c: table.numeric(c) for c in columns}
  if task == "regression":
    columns_raw[label] = table.numeric(label)
    classes = None
  else:
    columns_raw[label] = np.asarray([class_name(v) for v in values])
    classes = _classes_of(values)
  rows = _split_rows(len(table), test_fraction, seed, path)
  raw = {split: {k: v[index] for k, v in columns_raw.items()} for split, index in rows.items()}
  preprocessing = Columns(features=tuple(columns), label=label, task=task, classes=classes)
  return LoadedData(name, task, preprocessing, {}, raw, classes)


def find_prepared(name: str, data_dir) -> pathlib.Path | None:
  """The newest prepared version folder of TFDS dataset `NAME[/CONFIG]` in `data_dir`, or None."""
  root = pathlib.Path(data_dir) / name
  if not root.is_dir():
    return None
  versions = [p for p in root.iterdir() if (p / "dataset_info.json").is_file()]
  if not versions:
    return None

  def key(path):
    try:
      return tuple(int(part) for part in path.name.split("."))
    except ValueError:
      return (-1,)

  return max(versions, key=key)


def _tfds(name, spec, features, label, task, test_fraction, seed, data_dir, download, log) -> LoadedData:
  import tensorflow_datasets as tfds

  data_dir = pathlib.Path(data_dir) if data_dir else default_data_dir()
  folder = find_prepared(spec, data_dir)
  if folder is None:
    if not download:
      raise DataError(
          f"{name}: not prepared in {data_dir} (no {spec}/VERSION/dataset_info.json). Prepare it there in"
          f" array_record format (tfds.builder({spec!r}, data_dir=...).download_and_prepare("
          "file_format='array_record')), or pass --download to let flaxzoo do that"
      )
    if log:
      log(f"downloading and preparing {spec} into {data_dir}")
    try:
      builder = tfds.builder(spec, data_dir=os.fspath(data_dir), file_format="array_record")
      builder.download_and_prepare()
    except Exception as e:  # TFDS raises many kinds; the user needs the one line
      raise DataError(f"{name}: could not download and prepare it: {type(e).__name__}: {e}") from None
    folder = find_prepared(spec, data_dir)
  builder = tfds.builder_from_directory(os.fspath(folder))
  info_features = builder.info.features
  label = label or "label"
  if label not in info_features:
    raise DataError(f"{name}: no label feature {label!r}; features: {', '.join(info_features)}")
  if features:
    columns = [c.strip() for c in features.split(",")]
    for column in columns:
      if column not in info_features:
        raise DataError(f"{name}: no feature {column!r}; features: {', '.join(info_features)}")
  else:
    columns = [c for c in info_features if c != label and _is_numeric(info_features[c])]
  sources = builder.as_data_source()
  if "train" not in sources:
    raise DataError(f"{name}: no 'train' split; splits: {', '.join(sources)}")
  raw = {}
  if "test" in sources:
    for split in ("train", "test"):
      raw[split] = _read_source(sources[split], columns + [label], name, split)
  else:
    everything = _read_source(sources["train"], columns + [label], name, "train")
    rows = _split_rows(len(everything[label]), test_fraction, seed, name)
    raw = {split: {k: v[index] for k, v in everything.items()} for split, index in rows.items()}
  for column in columns:
    if raw["train"][column].dtype.kind not in "biuf":
      raise DataError(f"{name}: feature {column!r} is not numeric ({raw['train'][column].dtype})")
  label_feature = info_features[label]
  if isinstance(label_feature, tfds.features.ClassLabel):
    task = task or "classification"
    classes = tuple(label_feature.names) if task == "classification" else None
    if classes is not None:
      raw = {s: {**r, label: np.asarray([classes[int(v)] for v in r[label]])} for s, r in raw.items()}
  else:
    task = task or _infer_task([str(v) for v in raw["train"][label]])
    classes = None
    if task == "classification":
      classes = _classes_of(np.concatenate([raw[s][label] for s in raw]))
  scale = {c: 1 / 255 for c in columns if isinstance(info_features[c], tfds.features.Image)}
  preprocessing = Columns(features=tuple(columns), label=label, task=task, classes=classes, scale=scale or None)
  return LoadedData(name, task, preprocessing, {}, raw, classes)


def _is_numeric(feature) -> bool:
  dtype = getattr(feature, "np_dtype", None)
  return dtype is not None and np.dtype(dtype).kind in "biuf"


def _read_source(source, columns, name, split) -> dict[str, np.ndarray]:
  if len(source) == 0:
    raise DataError(f"{name}: split {split!r} is empty")
  examples = source.__getitems__(range(len(source)))
  return {c: np.stack([np.asarray(e[c]) for e in examples]) for c in columns}
