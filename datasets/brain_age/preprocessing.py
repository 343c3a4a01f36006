"""The brain-age reference preprocessing: tissue fractions in, age / 100 out."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from flaxzoo.datasets.brain_age import gap
from flaxzoo.datasets.brain_age.volumes import VolumeTable, iter_volume_tables, read_volume_table
from flaxzoo.datasets.preprocessing import Preprocessing, getter

FEATURE_SETS = {
    "gm": ("gm",),
    "tissue": ("gm", "wm", "csf"),
}


@dataclasses.dataclass(frozen=True)
class TissueFractions(Preprocessing):
  """Tissue volumes as fractions of total volume; age in units of 100 years.

  Registered as the preprocessing `tissue_fractions` (`flaxzoo.datasets.preprocessing.PREPROCESSINGS`).

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
      raise ValueError(f"unknown feature set {self.features!r}; known: {', '.join(FEATURE_SETS)}")
    if self.label not in ("age", "age_group"):
      raise ValueError(f"unknown label {self.label!r}; known: age, age_group")

  @property
  def task(self) -> str:
    return "regression" if self.label == "age" else "classification"

  @property
  def label_unit(self) -> str | None:
    return "years" if self.label == "age" else None

  @property
  def residual_name(self) -> str | None:
    return "brain-age gap" if self.label == "age" else None

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
    get = getter(table)
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
    return self.features_of(table), self.labels_of(getter(table)("age"))

  def postprocess(self, outputs: np.ndarray) -> np.ndarray:
    """Model outputs (label units) → years."""
    return np.asarray(outputs, np.float64) * self.label_scale

  # The hooks: predict reads volume tables; cards and predictions report the gap in years.

  def iter_inputs(self, path, columns=None, block_bytes: int = 1 << 19):
    first = 1
    for table in iter_volume_tables(path, need_age=False, columns=columns, block_bytes=block_bytes):
      yield table, np.arange(first, first + len(table)).astype(str) if table.ids is None else table.ids
      first += len(table)

  def read_inputs(self, path, columns=None):
    table = read_volume_table(path, need_age=False, columns=columns)
    return table, table.ids or tuple(str(i + 1) for i in range(len(table)))

  def natural_labels(self, raw) -> np.ndarray:
    return np.asarray(getter(raw)("age"), np.float64)

  def fit_report(self, predicted_train, raw_train) -> dict[str, Any]:
    return {"bias_correction": gap.fit_bias(predicted_train, self.natural_labels(raw_train))}

  def report_metrics(self, predicted, raw, report) -> dict[str, float]:
    return gap.brain_age_metrics(predicted, self.natural_labels(raw), report["bias_correction"])

  def predict_columns(self, predicted, table, report) -> dict[str, np.ndarray]:
    result = {"predicted_age": predicted}
    age = table.get("age") if isinstance(table, Mapping) else getattr(table, "age", None)
    if age is not None and "bias_correction" in report:
      result["age"] = np.asarray(age, np.float64)
      result["brain_age_gap"] = predicted - result["age"]
      result["corrected_gap"] = gap.corrected_gap(result["brain_age_gap"], result["age"], report["bias_correction"])
    return result

  def card_notes(self, raw_train, card) -> dict[str, Any] | None:
    return gap.card_notes(self.natural_labels(raw_train)) if self.label == "age" else None

  def card_readme(self, card) -> str | None:
    return gap.card_readme(card) if "bias_correction" in card else None
