"""The estimators' shared parameter checks, each refused in one line naming the parameter.

(scikit-learn's `_parameter_constraints` would do this job, but it lives in a private module,
`sklearn.utils._param_validation`, and its messages name types, not the fix.)
"""

from __future__ import annotations

import numbers

import numpy as np


def check_iterations(max_iter, tol) -> None:
  """scikit-learn's `max_iter` (an int >= 1) and `tol` (a finite number >= 0), refused in one line."""
  if not isinstance(max_iter, numbers.Integral) or isinstance(max_iter, bool) or max_iter < 1:
    raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
  if not isinstance(tol, numbers.Real) or not 0 <= tol < np.inf:
    raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
