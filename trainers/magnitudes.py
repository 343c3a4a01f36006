"""Exact rescaling of numbers of extreme magnitude: a power of two brings them near 1 without rounding.

Squares and sums of squares of values near 1e154 overflow float64, and those of values near 1e-180 underflow
to 0; dividing by a power of two first, and multiplying the answer back, changes no digit.
"""

from __future__ import annotations

import numpy as np

# Magnitudes within 2^±RANGE_EXPONENT (1e-30 ... 1e30) are left as they are: their squares, summed over any
# number of rows, stay far inside float64's range.
RANGE_EXPONENT = 100


def power_of_two_units(magnitude) -> np.ndarray:
  """`[...]`: 1 where `magnitude` (>= 0) lies within 2^±RANGE_EXPONENT (or is 0 or not finite), else the power
  of two 2^e with `magnitude / 2^e` in [0.5, 1)."""
  magnitude = np.asarray(magnitude, np.float64)
  extreme = np.isfinite(magnitude) & ((magnitude > 2.0**RANGE_EXPONENT)
                                      | ((magnitude > 0) & (magnitude < 2.0**-RANGE_EXPONENT)))
  return np.where(extreme, np.ldexp(1.0, np.frexp(np.where(extreme, magnitude, 1.0))[1]), 1.0)
