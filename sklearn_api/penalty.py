"""scikit-learn's penalty scales written once as the training core's `l2`.

The core minimises `mean_w loss + l2 / 2 * |W|²` (weights `w` summing to 1 over the rows, the MSE
averaged over its `k` outputs, the intercept not penalised); `S` is the sum of the sample weights
(the rows, unweighted). Dividing scikit-learn's objectives by their data term's total:

- `Ridge(alpha)`: `Σ_t |y_t - X w_t - b_t|²_w + alpha |W|²`, over `k S` it is the core's with
  `l2 = 2 alpha / (k S)`;
- `LogisticRegression(C)`: `C Σ w_i loss_i + |W|² / 2`, over `C S` it is the core's with
  `l2 = 1 / (C S)` (`C = inf`: 0); `LogisticRegression(C, l1_ratio=r)`: `C Σ w_i loss_i + (1 - r) / 2 |W|²
  + r |W|₁`, the core's with `l2 = (1 - r) / (C S)` and `l1 = r / (C S)`;
- `ElasticNet(alpha, l1_ratio)` (`Lasso`: `l1_ratio = 1`), per target `Σ_i w_i r_i² / (2 S) + alpha
  l1_ratio |w|₁ + alpha (1 - l1_ratio) / 2 |w|²`: times 2 / k it is the core's with `l1 = 2 alpha l1_ratio
  / k` and `l2 = 2 alpha (1 - l1_ratio) / k` (the core's `l1 |W|₁` beside its `l2`);
- `PoissonRegressor(alpha)`, `GammaRegressor(alpha)`, `TweedieRegressor(alpha)` (log link):
  `Σ w_i dev_i / (2 S) + alpha / 2 |W|²`, the mean half deviance plus the penalty: the core's with
  `l2 = alpha` (`TweedieRegressor(power=0)` is `Ridge(alpha = S alpha)`); with glum's `l1_ratio` r,
  `l2 = alpha (1 - r)` and `l1 = alpha r`.
"""

from __future__ import annotations

import math

from flaxzoo.trainers.penalty_split import split_penalty


def l2_of_alpha(alpha: float, total_weight: float, num_targets: int = 1) -> float:
  """The core's `l2` of `Ridge(alpha=alpha)` on rows of total weight `total_weight`, `num_targets` targets."""
  return 2.0 * float(alpha) / (num_targets * float(total_weight))


def l2_of_C(C: float, total_weight: float) -> float:  # noqa: N802 - scikit-learn's name
  """The core's `l2` of `LogisticRegression(C=C)` on rows of total weight `total_weight` (`C = inf`: 0)."""
  return 0.0 if math.isinf(C) else 1.0 / (float(C) * float(total_weight))


def penalties_of_glm_alpha(alpha: float, l1_ratio: float = 0.0) -> tuple[float, float]:
  """The core's `(l2, l1)` of scikit-learn's GLM regressors' `alpha` (the mean half deviance's penalty
  already), with glum's `l1_ratio`: `alpha (l1_ratio |W|₁ + (1 - l1_ratio) / 2 |W|²)`."""
  return split_penalty(float(alpha), l1_ratio)


def penalties_of_elastic_net(alpha: float, l1_ratio: float, num_targets: int = 1) -> tuple[float, float]:
  """The core's `(l2, l1)` of `ElasticNet(alpha, l1_ratio)` (`Lasso(alpha)`: `l1_ratio = 1`), `num_targets`
  targets (each fitted on its own, as scikit-learn's)."""
  return 2.0 * alpha * (1.0 - l1_ratio) / num_targets, 2.0 * alpha * l1_ratio / num_targets


def penalties_of_C(C: float, l1_ratio: float, total_weight: float) -> tuple[float, float]:  # noqa: N802
  """The core's `(l2, l1)` of `LogisticRegression(C=C, l1_ratio=l1_ratio)` on rows of total weight
  `total_weight` (`C = inf`: no penalty)."""
  return split_penalty(l2_of_C(C, total_weight), l1_ratio)
