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


@dataclasses.dataclass(frozen=True)
class TissueFractions:
  """Tissue volumes as fractions of total volume; age in units of 100 years.

  The reference preprocessing: `round(volume / total, 3)` for each selected
  tissue and `round(age / 100, 2)` for the label, computed in float64 and
  then cast to float32.

  Attributes:
    features: `"gm"` (gray matter only) or `"tissue"` (GM, WM, CSF).
    volume_decimals: decimals kept of each fraction.
    label_scale: years per label unit (age / label_scale is the label).
    label_decimals: decimals kept of the label.
  """

  features: str = "gm"
  volume_decimals: int = 3
  label_scale: float = 100.0
  label_decimals: int = 2

  name = "tissue_fractions"
  label_unit = "years"

  def __post_init__(self):
    if self.features not in FEATURE_SETS:
      raise ValueError(
          f"unknown feature set {self.features!r}; known: {', '.join(FEATURE_SETS)}"
      )

  @property
  def columns(self) -> tuple[str, ...]:
    return FEATURE_SETS[self.features]

  @property
  def num_features(self) -> int:
    return len(self.columns)

  def features_of(self, table: VolumeTable | Mapping[str, np.ndarray]) -> np.ndarray:
    """Raw volumes → model inputs `[n, num_features]` float32."""
    get = table.__getitem__ if isinstance(table, Mapping) else lambda k: getattr(table, k)
    total = np.asarray(get("total"), np.float64)
    fractions = [np.asarray(get(c), np.float64) / total for c in self.columns]
    return np.round(np.stack(fractions, axis=1), self.volume_decimals).astype(np.float32)

  def labels_of(self, age_years: np.ndarray) -> np.ndarray:
    """Ages in years `[n]` → labels `[n]` float32."""
    scaled = np.asarray(age_years, np.float64) / self.label_scale
    return np.round(scaled, self.label_decimals).astype(np.float32)

  def __call__(self, table) -> tuple[np.ndarray, np.ndarray]:
    """Raw table → `(x [n, num_features], y [n])`."""
    get = table.__getitem__ if isinstance(table, Mapping) else lambda k: getattr(table, k)
    return self.features_of(table), self.labels_of(get("age"))

  def postprocess(self, outputs: np.ndarray) -> np.ndarray:
    """Model outputs (label units) → years."""
    return np.asarray(outputs, np.float64) * self.label_scale

  def to_dict(self) -> dict[str, Any]:
    return {"name": self.name, "params": dataclasses.asdict(self)}


_PREPROCESSINGS = {TissueFractions.name: TissueFractions}


def preprocessing_from_dict(spec: Mapping[str, Any]) -> TissueFractions:
  """Rebuilds a preprocessing from `to_dict()` output (plain data, no code)."""
  name = spec.get("name")
  if name not in _PREPROCESSINGS:
    raise ValueError(
        f"unknown preprocessing {name!r}; known: {', '.join(_PREPROCESSINGS)}"
    )
  return _PREPROCESSINGS[name](**spec.get("params", {}))
