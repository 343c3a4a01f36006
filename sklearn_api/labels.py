"""A classifier's labels: the classes and each row's code, and scikit-learn's `class_weight` as row factors."""

from __future__ import annotations

import numpy as np


def class_weights(class_weight, classes: np.ndarray, codes: np.ndarray) -> np.ndarray | float:
  """Each row's factor `[n]` of scikit-learn's `class_weight` (None, `"balanced"`: `n / (classes x count)`, or
  `{label: weight}`, others 1), for labels `classes[codes]`: it multiplies the sample weights."""
  if class_weight is None:
    return 1.0
  from sklearn.utils.class_weight import compute_class_weight

  factors = compute_class_weight(class_weight, classes=classes, y=classes[codes])
  if not np.any(factors[np.unique(codes)] > 0):
    raise ValueError(f"class_weight {class_weight!r} gives every class present a weight of 0: nothing to fit")
  return factors[codes]


def _classes_and_codes(y):
  """`np.unique(y, return_inverse=True)`; integer labels of a small range by counting, not sorting (1M
  labels: 65 ms -> 6 ms)."""
  y = np.asarray(y).reshape(-1)
  if y.dtype.kind in "iu" and len(y):
    low, high = int(y.min()), int(y.max())
    if high - low <= 2 * len(y) + 1024:
      shifted = y.astype(np.int64) - low  # (int8 labels -100 and 100: y - low overflowed int8)
      present = np.flatnonzero(np.bincount(shifted, minlength=high - low + 1))
      table = np.zeros(high - low + 1, np.intp)
      table[present] = np.arange(len(present))
      return (present + low).astype(y.dtype), table[shifted]
  return np.unique(y, return_inverse=True)
