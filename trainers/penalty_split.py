"""An elastic-net strength split by its L1 ratio, written once: `--penalty`/`--l1-ratio` and the estimators'
`l1_ratio` (imports nothing: a config's flags stay light)."""

from __future__ import annotations


def split_penalty(strength: float, l1_ratio: float) -> tuple[float, float]:
  """The core's `(l2, l1)` of `strength (l1_ratio |W|₁ + (1 - l1_ratio) / 2 |W|²)`."""
  return strength * (1.0 - l1_ratio), strength * l1_ratio
