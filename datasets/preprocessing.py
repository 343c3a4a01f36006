"""Preprocessing: named transforms from raw columns to model inputs, serialised to JSON.

Kept out of the dataset builders so that stored examples stay raw and a model
card records exactly which transform its weights expect. Every transform is a
frozen dataclass registered by name (`register_preprocessing`);
`preprocessing_from_dict` rebuilds one from plain data (no code is loaded).

Besides `features_of`/`labels_of`, a transform answers what the run layer and
the cards ask of any dataset, so that none of them needs to know which
dataset it is (brain age answers in years; see `datasets/brain_age/`):
`read_inputs` (predict's input table), `natural_labels` and `postprocess`
(the label and outputs in the data's own unit), `residual_name`, and
`fit_report`/`report_metrics`/`predict_columns`/`card_readme`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from flaxzoo.datasets.tables import DataError, read_table_header, stream_columns
from flaxzoo.zoo.registry import Registry

PREPROCESSINGS: Registry[type] = Registry("preprocessing")
PREPROCESSINGS.register_lazy("tissue_fractions", "flaxzoo.datasets.brain_age.preprocessing:TissueFractions")


def register_preprocessing(cls: type) -> type:
  """Class decorator: registers a preprocessing under its `name`."""
  PREPROCESSINGS.register(cls.name, cls)
  return cls


def fit_standardization(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """Per-feature mean and standard deviation (ddof 0) of `x [n, d]`; a constant
  feature gets std 1 (as scikit-learn's `StandardScaler`)."""
  x = np.asarray(x, np.float64)
  mean, std = x.mean(axis=0), x.std(axis=0)
  std = np.where(std > 0, std, 1.0)
  return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def getter(table):
  """`get(column)` for a mapping of columns or an object with column attributes."""
  return table.__getitem__ if isinstance(table, Mapping) else lambda k: getattr(table, k)


class Preprocessing:
  """What every preprocessing shares: JSON round trip, standardisation, and defaults of the hooks."""

  name: str
  mean: tuple[float, ...] | None
  std: tuple[float, ...] | None
  label_scale: float | None = None
  label_unit: str | None = None
  residual_name: str | None = None  # a name for predicted − true (plots), when the field has one

  def raw_features(self, table) -> np.ndarray:
    raise NotImplementedError

  def labels_of(self, values) -> np.ndarray:
    raise NotImplementedError

  def features_of(self, table, dtype=np.float32) -> np.ndarray:
    """Raw table → model inputs `[n, num_features]` (standardised when fitted), float32 unless the model's
    parameters are float64 (`dtype`)."""
    x = self.raw_features(table)
    if self.mean is not None:
      x = (x - np.asarray(self.mean, np.float64)) / np.asarray(self.std, np.float64)
    return x.astype(dtype)

  def standardized(self, train_table):
    """A copy that standardises each feature with the mean and std of `train_table`."""
    mean, std = fit_standardization(self.raw_features(train_table))
    return dataclasses.replace(self, mean=mean, std=std)

  def to_dict(self) -> dict[str, Any]:
    return {"name": self.name, "params": dataclasses.asdict(self)}

  def postprocess(self, outputs: np.ndarray) -> np.ndarray:
    """Model outputs (label units) → the label's own unit, float64."""
    return np.asarray(outputs, np.float64)

  # Hooks of the higher layers; the defaults fit any table of named columns.

  def iter_inputs(self, path, columns: Mapping[str, str] | None = None, block_bytes: int = 1 << 19,
                  extra: tuple[str, ...] = ()):
    """Predict's input table a block of rows at a time: `(table, ids)` pairs; ids from an `id`
    column (strings), else row numbers from 1. `columns` maps an input name to the table's column
    where they differ; `extra`: numeric columns read beside the inputs (a model's offset)."""
    columns = columns or {}
    known = (*self.input_columns, *extra)
    unknown = sorted(set(columns) - set(known))
    if unknown:
      raise DataError(f"unknown input {unknown[0]!r}; the model's inputs: {', '.join(known)}")
    names = {c: columns.get(c, c) for c in known}
    has_id = "id" in read_table_header(path).names and "id" not in names.values()
    first = 1
    for block in stream_columns(path, numeric=tuple(dict.fromkeys(names.values())), text=("id",) if has_id else ()):
      n = len(block[next(iter(names.values()))])
      ids = block["id"] if has_id else np.arange(first, first + n).astype(str)
      yield {c: block[name] for c, name in names.items()}, ids
      first += n

  def read_inputs(self, path, columns: Mapping[str, str] | None = None):
    """`iter_inputs` in one piece: `(table, ids)`, ids a tuple of strings."""
    blocks = list(self.iter_inputs(path, columns))
    table = {c: np.concatenate([b[c] for b, _ in blocks]) for c in self.input_columns}
    return table, tuple(str(i) for _, ids in blocks for i in ids)

  @property
  def input_columns(self) -> tuple[str, ...]:
    raise NotImplementedError

  def natural_labels(self, raw) -> np.ndarray:
    """Regression: the true label of a raw split in its own unit `[n]` float64."""
    return np.asarray(self.labels_of(getter(raw)(self.label)), np.float64)

  def fit_report(self, predicted_train: np.ndarray, raw_train) -> dict[str, Any]:
    """Card entries fitted on the training split (e.g. a bias correction); none by default."""
    return {}

  def report_metrics(self, predicted: np.ndarray, raw, report: Mapping[str, Any]) -> dict[str, float]:
    """Card metrics of one split beyond the trainer's (e.g. in years); none by default."""
    return {}

  def predict_columns(self, predicted: np.ndarray, table, report: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Regression predictions as output columns; `predicted` is in the label's own unit."""
    return {"predicted": predicted}

  def card_notes(self, raw_train, card: Mapping[str, Any]) -> dict[str, Any] | None:
    """A card's `model_card` entry (intended use, cohort, limitations, licence) where the data has one."""
    return None

  def card_readme(self, card: Mapping[str, Any]) -> str | None:
    """A card's README text, or None for the generic one."""
    return None


@register_preprocessing
@dataclasses.dataclass(frozen=True)
class Columns(Preprocessing):
  """Named numeric columns of a table (CSV, or a TFDS dataset's features) as model inputs.

  Attributes:
    features: the input columns, in order; a multi-dimensional column (a TFDS
      image or tensor) is flattened.
    label: the label column.
    task: `"regression"` or `"classification"`.
    classes: the class names (classification); label `k` is `classes[k]`.
    scale: per-column factors applied first, e.g. `{"image": 1/255}`.
    mean, std: standardisation after scaling (None: off).
  """

  features: tuple[str, ...]
  label: str
  task: str
  classes: tuple[str, ...] | None = None
  scale: dict[str, float] | None = None
  mean: tuple[float, ...] | None = None
  std: tuple[float, ...] | None = None

  name = "columns"

  def __post_init__(self):
    if self.task not in ("regression", "classification"):
      raise ValueError(f"unknown task {self.task!r}; known: regression, classification")

  @property
  def class_names(self) -> tuple[str, ...] | None:
    return self.classes

  @property
  def num_features(self) -> int:
    return len(self.mean) if self.mean is not None else len(self.features)

  @property
  def input_columns(self) -> tuple[str, ...]:
    return self.features

  def raw_features(self, table: Mapping[str, np.ndarray]) -> np.ndarray:
    scale = self.scale or {}
    parts = []
    for name in self.features:
      column = np.asarray(table[name], np.float64) * scale.get(name, 1.0)
      parts.append(column.reshape(len(column), -1))
    return np.concatenate(parts, axis=1)

  def labels_of(self, values) -> np.ndarray:
    """Label values `[n]` → float32 targets, or int32 class indices of `classes`."""
    if self.task == "regression":
      return np.asarray(values, np.float64).astype(np.float32)
    index = {name: k for k, name in enumerate(self.classes)}
    names = [class_name(v) for v in np.asarray(values).reshape(-1)]
    unknown = sorted({n for n in names if n not in index})
    if unknown:
      raise DataError(f"label {self.label!r}: unknown classes {unknown[:5]}; known: {list(self.classes)}")
    return np.asarray([index[n] for n in names], np.int32)

  def __call__(self, table) -> tuple[np.ndarray, np.ndarray]:
    return self.features_of(table), self.labels_of(table[self.label])

  def natural_labels(self, raw) -> np.ndarray:
    return np.asarray(raw[self.label], np.float64)


def class_name(value) -> str:
  """The canonical name of a class label: `3`, `3.0` and `"3"` are all `"3"`."""
  if isinstance(value, (bytes, np.bytes_)):
    value = value.decode()
  if isinstance(value, str):
    value = value.strip()
    try:
      number = float(value)
    except ValueError:
      return value
  else:
    number = float(value)
  return str(int(number)) if number.is_integer() else repr(number)


_TUPLES = ("features", "classes", "mean", "std")


def preprocessing_from_dict(spec: Mapping[str, Any]) -> Preprocessing:
  """Rebuilds a preprocessing from `to_dict()` output (plain data, no code)."""
  cls = PREPROCESSINGS.get(spec.get("name"))
  params = dict(spec.get("params", {}))
  for key in _TUPLES:
    if isinstance(params.get(key), list):
      params[key] = tuple(params[key])
  try:
    return cls(**params)
  except TypeError as e:
    raise ValueError(f"preprocessing {cls.name!r}: {e}") from None


def uncertainty_lines(card: Mapping[str, Any]) -> str:
  """Card README lines for the card's bootstrap interval and cross-validation, where it has them."""
  lines = []
  boot = card.get("test_bootstrap")
  if boot:
    lines.append(f"Test {boot['metric']} {boot['value']:.4g}, 95% CI [{boot['ci95'][0]:.4g}, {boot['ci95'][1]:.4g}]"
                 f" ({boot['method']}, {boot['resamples']} resamples).")
  cv = card.get("cross_validation")
  if cv:
    metric = cv["metric"]
    stats = cv["valid"][metric]
    lines.append(f"{cv['folds']}-fold cross-validated {metric} on the training split {stats['mean']:.4g}, 95% CI"
                 f" [{stats['ci95'][0]:.4g}, {stats['ci95'][1]:.4g}] (Student t over the folds; `{cv['command']}`).")
  return "".join(line + "\n" for line in lines) + ("\n" if lines else "")
