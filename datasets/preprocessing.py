"""The brain-age preprocessing as a named transform that serialises to JSON.

Kept out of the dataset builder so that the stored examples stay raw (cm^3 and
years) and a model card can record exactly which transform its weights expect.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from flaxzoo.datasets.tables import VolumeTable

FEATURE_SETS = {
    "gm": ("gm",),
    "tissue": ("gm", "wm", "csf"),
}


def fit_standardization(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """Per-feature mean and standard deviation (ddof 0) of `x [n, d]`; a constant
  feature gets std 1 (as scikit-learn's `StandardScaler`)."""
  x = np.asarray(x, np.float64)
  mean, std = x.mean(axis=0), x.std(axis=0)
  std = np.where(std > 0, std, 1.0)
  return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _finish(x: np.ndarray, mean, std) -> np.ndarray:
  """float64 features → (standardised when `mean` is set) float32 model inputs."""
  if mean is not None:
    x = (x - np.asarray(mean, np.float64)) / np.asarray(std, np.float64)
  return x.astype(np.float32)


class _Transform:
  """What every preprocessing shares: JSON round trip and standardisation."""

  name: str
  mean: tuple[float, ...] | None
  std: tuple[float, ...] | None

  def raw_features(self, table) -> np.ndarray:
    raise NotImplementedError

  def features_of(self, table) -> np.ndarray:
    """Raw table → model inputs `[n, num_features]` float32."""
    return _finish(self.raw_features(table), self.mean, self.std)

  def standardized(self, train_table):
    """A copy that standardises each feature with the mean and std of `train_table`."""
    mean, std = fit_standardization(self.raw_features(train_table))
    return dataclasses.replace(self, mean=mean, std=std)

  def to_dict(self) -> dict[str, Any]:
    return {"name": self.name, "params": dataclasses.asdict(self)}


def _getter(table):
  return table.__getitem__ if isinstance(table, Mapping) else lambda k: getattr(table, k)


@dataclasses.dataclass(frozen=True)
class TissueFractions(_Transform):
  """Tissue volumes as fractions of total volume; age in units of 100 years.

  The reference preprocessing: `round(volume / total, 3)` for each selected
  tissue and `round(age / 100, 2)` for the label, computed in float64 and
  then cast to float32.

  Attributes:
    features: `"gm"` (gray matter only) or `"tissue"` (GM, WM, CSF).
    volume_decimals: decimals kept of each fraction.
    label_scale: years per label unit (age / label_scale is the label).
    label_decimals: decimals kept of the label.
    label: `"age"` (regression) or `"age_group"` (classification: 1 when
      age >= `age_group_threshold` years, else 0).
    age_group_threshold: years.
    mean, std: standardisation of the fractions (None: off, the reference).
  """

  features: str = "gm"
  volume_decimals: int = 3
  label_scale: float = 100.0
  label_decimals: int = 2
  label: str = "age"
  age_group_threshold: float = 60.0
  mean: tuple[float, ...] | None = None
  std: tuple[float, ...] | None = None

  name = "tissue_fractions"

  def __post_init__(self):
    if self.features not in FEATURE_SETS:
      raise ValueError(
          f"unknown feature set {self.features!r}; known: {', '.join(FEATURE_SETS)}"
      )
    if self.label not in ("age", "age_group"):
      raise ValueError(f"unknown label {self.label!r}; known: age, age_group")

  @property
  def task(self) -> str:
    return "regression" if self.label == "age" else "classification"

  @property
  def label_unit(self) -> str | None:
    return "years" if self.label == "age" else None

  @property
  def class_names(self) -> tuple[str, ...] | None:
    if self.label == "age":
      return None
    t = f"{self.age_group_threshold:g}"
    return (f"age<{t}", f"age>={t}")

  @property
  def columns(self) -> tuple[str, ...]:
    return FEATURE_SETS[self.features]

  @property
  def num_features(self) -> int:
    return len(self.columns)

  def raw_features(self, table: VolumeTable | Mapping[str, np.ndarray]) -> np.ndarray:
    """Raw volumes → rounded fractions `[n, num_features]` float64."""
    get = _getter(table)
    total = np.asarray(get("total"), np.float64)
    fractions = [np.asarray(get(c), np.float64) / total for c in self.columns]
    return np.round(np.stack(fractions, axis=1), self.volume_decimals)

  def labels_of(self, age_years: np.ndarray) -> np.ndarray:
    """Ages in years `[n]` → labels `[n]`: float32 ages / 100, or int32 age groups."""
    age = np.asarray(age_years, np.float64)
    if self.label == "age_group":
      return (age >= self.age_group_threshold).astype(np.int32)
    return np.round(age / self.label_scale, self.label_decimals).astype(np.float32)

  def __call__(self, table) -> tuple[np.ndarray, np.ndarray]:
    """Raw table → `(x [n, num_features], y [n])`."""
    return self.features_of(table), self.labels_of(_getter(table)("age"))

  def postprocess(self, outputs: np.ndarray) -> np.ndarray:
    """Model outputs (label units) → years."""
    return np.asarray(outputs, np.float64) * self.label_scale


@dataclasses.dataclass(frozen=True)
class Columns(_Transform):
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
  label_scale = None
  label_unit = None

  def __post_init__(self):
    if self.task not in ("regression", "classification"):
      raise ValueError(f"unknown task {self.task!r}; known: regression, classification")

  @property
  def class_names(self) -> tuple[str, ...] | None:
    return self.classes

  @property
  def num_features(self) -> int:
    return len(self.mean) if self.mean is not None else len(self.features)

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
      raise ValueError(f"label {self.label!r}: unknown classes {unknown[:5]}; known: {list(self.classes)}")
    return np.asarray([index[n] for n in names], np.int32)

  def __call__(self, table) -> tuple[np.ndarray, np.ndarray]:
    return self.features_of(table), self.labels_of(table[self.label])

  def postprocess(self, outputs: np.ndarray) -> np.ndarray:
    return np.asarray(outputs, np.float64)


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


_PREPROCESSINGS = {TissueFractions.name: TissueFractions, Columns.name: Columns}
_TUPLES = ("classes", "mean", "std")


def preprocessing_from_dict(spec: Mapping[str, Any]):
  """Rebuilds a preprocessing from `to_dict()` output (plain data, no code)."""
  name = spec.get("name")
  if name not in _PREPROCESSINGS:
    raise ValueError(
        f"unknown preprocessing {name!r}; known: {', '.join(_PREPROCESSINGS)}"
    )
  params = dict(spec.get("params", {}))
  if name == Columns.name and isinstance(params.get("features"), list):
    params["features"] = tuple(params["features"])
  for key in _TUPLES:
    if isinstance(params.get(key), list):
      params[key] = tuple(params[key])
  return _PREPROCESSINGS[name](**params)
