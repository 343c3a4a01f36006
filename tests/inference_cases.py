"""The generated data the inference tests compare with statsmodels on (tests/test_inference.py, test_intervals.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

N = 3000


def three_scales(seed=0):
  """`(rng, X [N, 3] DataFrame, eta [N] centred, groups [N] in 0..149)`: named columns at three scales (1, 1e3 and
  1e-3), one far from zero."""
  rng = np.random.default_rng(seed)
  X = pd.DataFrame(rng.standard_normal((N, 3)) * [1.0, 1e3, 1e-3] + [0.0, 5e3, 0.0], columns=["age", "income", "dose"])
  eta = X.to_numpy() @ [0.3, 2e-4, 150.0] - 1.0
  groups = rng.integers(0, 150, N)
  return rng, X, eta - eta.mean(), groups
