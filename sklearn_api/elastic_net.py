"""L1 and elastic-net least squares as scikit-learn estimators, fitted by coordinate descent on the Gram matrix.

  from flaxzoo.sklearn import ElasticNet, Lasso

scikit-learn's `ElasticNet(alpha, l1_ratio)` and `Lasso(alpha)`: the same objective per target, `Σ_i w_i
(y_i - x_i w - b)² / (2 Σ w) + alpha l1_ratio |w|₁ + alpha (1 - l1_ratio) / 2 |w|²` (the intercept not
penalised), written once as the core's penalties (`penalty.penalties_of_elastic_net`). One pass over the
rows sums the weighted Gram matrix; cyclic coordinate descent on it (scikit-learn's `precompute=True`)
soft-thresholds each coefficient, so the zeros L1 promises are 0.0. `tol`: the largest violation of the
optimality conditions (the minimum-norm subgradient of the core's objective in standardised features: the
other solvers' gradient test), where scikit-learn's is a duality gap; `max_iter`: sweeps over the
coefficients. Always with an intercept; `precompute`, `selection`, `positive` and `warm_start` are not
offered (the Gram matrix is always used, the order is cyclic, the start is 0).
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import MultiOutputMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from flaxzoo.sklearn.estimators import _DenseInput
from flaxzoo.sklearn.penalty import penalties_of_elastic_net


class ElasticNet(MultiOutputMixin, RegressorMixin, _DenseInput):
  """`sklearn.linear_model.ElasticNet`: least squares with `alpha l1_ratio |w|₁ + alpha (1 - l1_ratio)/2 |w|²`.

  Attributes: `coef_` `[d]` (`[targets, d]`), `intercept_`, `n_iter_` (sweeps), `n_features_in_`.
  """

  def __init__(self, alpha=1.0, *, l1_ratio=0.5, max_iter=1000, tol=1e-4):
    self.alpha = alpha
    self.l1_ratio = l1_ratio
    self.max_iter = max_iter
    self.tol = tol

  def __sklearn_tags__(self):
    tags = super().__sklearn_tags__()
    tags.target_tags.multi_output = True
    return tags

  def _check_params(self):
    if not isinstance(self.alpha, numbers.Real) or not np.isfinite(self.alpha) or self.alpha < 0:
      raise ValueError(f"alpha must be a finite number >= 0, got {self.alpha!r}")
    if not isinstance(self.l1_ratio, numbers.Real) or not 0 <= self.l1_ratio <= 1:
      raise ValueError(f"l1_ratio must be a number in [0, 1], got {self.l1_ratio!r}")
    if not isinstance(self.max_iter, numbers.Integral) or isinstance(self.max_iter, bool) or self.max_iter < 1:
      raise ValueError(f"max_iter must be an integer >= 1, got {self.max_iter!r}")
    if not isinstance(self.tol, numbers.Real) or not 0 <= self.tol < np.inf:
      raise ValueError(f"tol must be a finite number >= 0, got {self.tol!r}")

  def fit(self, X, y, sample_weight=None):
    """Fits on `X [n, d]`, `y [n]` or `[n, targets]`."""
    from flaxzoo.trainers import solvers

    self._check_params()
    X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=[np.float64, np.float32])
    y = np.asarray(y, np.float64)
    weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
    targets = y.reshape(len(y), -1)
    l2, l1 = penalties_of_elastic_net(float(self.alpha), float(self.l1_ratio), targets.shape[1])
    data = solvers.stage(X, targets, "mse")
    fit = solvers.solve(data, weight[None], [l2], "normal_equation", float(self.tol), int(self.max_iter), l1=[l1])
    if not fit.converged[0]:
      warnings.warn(f"{type(self).__name__} did not converge in max_iter={self.max_iter} sweeps (tol={self.tol});"
                    " increase max_iter", ConvergenceWarning, stacklevel=2)
    coef, intercept = fit.coef[0].T, fit.intercept[0]
    self.coef_, self.intercept_ = (coef[0], float(intercept[0])) if y.ndim == 1 else (coef, intercept)
    self.n_iter_ = int(fit.n_iter[0])
    return self

  def predict(self, X):
    """`X coef_ᵀ + intercept_`: `[n]` (or `[n, targets]`)."""
    check_is_fitted(self)
    X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
    return X @ np.asarray(self.coef_).T + self.intercept_


class Lasso(ElasticNet):
  """`sklearn.linear_model.Lasso`: least squares with `alpha |w|₁` (an elastic net of `l1_ratio` 1)."""

  def __init__(self, alpha=1.0, *, max_iter=1000, tol=1e-4):
    super().__init__(alpha=alpha, l1_ratio=1.0, max_iter=max_iter, tol=tol)
