"""The standardisation every exact fit shares: the shift and scale of a column, and the rule for a constant one.

Features are standardised inside the fits (`(x - shift) / scale`), so that a column scaled by 1e-10 or
shifted by 1e7 loses nothing. The solvers and the moments take the shift from the first `SHIFT_ROWS` rows;
the robust fits from every (weighted) row.
"""

from __future__ import annotations

import numpy as np

# Shift and scale of the standardisation (and the moments' shift): from this many first rows.
SHIFT_ROWS = 1024


def steadied(shift: np.ndarray, scale: np.ndarray, value: np.ndarray | None = None):
  """`(constant [d], shift [d], scale [d])`: a constant column is one whose spread is the rounding of its mean
  (the mean of 200 values 3.7 is not 3.7, the std 8e-15); dividing by that made it a huge copy of the
  intercept (no fit converged). Its scale becomes O(1), `max(|shift|, 1)`, and its shift `value` where given
  (a value of the column: then it is exactly 0 where it is constant)."""
  tiny, eps = np.finfo(np.float64).tiny, np.finfo(np.float64).eps
  constant = scale <= 64 * eps * np.maximum(np.abs(shift), tiny)
  if value is not None:
    shift = np.where(constant, value, shift)
  return constant, shift, np.where(constant, np.maximum(np.abs(shift), 1.0), scale)
