"""Huber (robust) and quantile regression as scikit-learn estimators, fitted exactly by `flaxzoo.trainers.robust`.

  from flaxzoo.sklearn import HuberRegressor, QuantileRegressor

scikit-learn's `HuberRegressor(epsilon, alpha)` (the scale σ fitted jointly: `Σ w (σ + H_ε(r / σ) σ) + alpha
|coef|²`) and `QuantileRegressor(quantile, alpha)` (`mean_w ρ_q(r) + alpha |coef|₁`): the same parameters,
scales and objectives, every fit with an intercept. Huber by Newton (`tol`: the largest entry of the mean
objective's gradient, stricter than scikit-learn's L-BFGS-B test on the sum); quantile by an interior-point
method on the dual linear programme, finished on the optimal vertex (`tol`: the duality gap relative to the
objective), so that its L1 zeros are 0.0, as scikit-learn's HiGHS vertex.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from flaxzoo.sklearn.checks import check_iterations, validated
from flaxzoo.sklearn.estimators import _DenseInput


class _Robust(RegressorMixin, _DenseInput):
  def _inputs(self, X, y, sample_weight):
    X, y = validated(self, X, y, y_numeric=True, dtype=[np.float64, np.float32])
    weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
    if not (np.all(weight >= 0) and np.any(weight > 0)):
      raise ValueError("sample_weight must be >= 0 with a positive entry")
    return X, np.asarray(y, np.float64), weight

  def _warn(self, fit):
    if not fit.converged:
      warnings.warn(f"{type(self).__name__} did not converge in max_iter={self.max_iter} iterations (tol={self.tol})",
                    ConvergenceWarning, stacklevel=3)

  def predict(self, X):
    """`X coef_ + intercept_` `[n]`."""
    check_is_fitted(self)
    X = validated(self, X, reset=False, dtype=[np.float64, np.float32])
    return X @ self.coef_ + self.intercept_


class HuberRegressor(_Robust):
  """`sklearn.linear_model.HuberRegressor`: squared loss for `|r| <= epsilon σ`, absolute beyond, σ fitted.

  Attributes: `coef_` `[d]`, `intercept_`, `scale_` (σ), `outliers_` `[n]` (`|r| > epsilon σ`), `n_iter_`.
  """

  def __init__(self, *, epsilon=1.35, max_iter=100, alpha=1e-4, warm_start=False, tol=1e-5):
    self.epsilon = epsilon
    self.max_iter = max_iter
    self.alpha = alpha
    self.warm_start = warm_start
    self.tol = tol

  def fit(self, X, y, sample_weight=None):
    from flaxzoo.trainers import robust

    if not isinstance(self.epsilon, numbers.Real) or not 1.0 <= self.epsilon < np.inf:
      raise ValueError(f"epsilon must be a finite number >= 1.0, got {self.epsilon!r}")
    if not isinstance(self.alpha, numbers.Real) or not 0 <= self.alpha < np.inf:
      raise ValueError(f"alpha must be a finite number >= 0, got {self.alpha!r}")
    check_iterations(self.max_iter, self.tol)
    X, y, weight = self._inputs(X, y, sample_weight)
    start = None
    if self.warm_start and getattr(self, "coef_", np.empty(0)).shape == (X.shape[1],):
      start = (self.coef_, self.intercept_, self.scale_)
    fit = robust.huber(X, y, weight, float(self.epsilon), float(self.alpha), float(self.tol), int(self.max_iter),
                       start)
    self._warn(fit)
    self.coef_, self.intercept_, self.scale_, self.n_iter_ = fit.coef, fit.intercept, fit.scale, fit.n_iter
    self.outliers_ = np.abs(y - X @ self.coef_ - self.intercept_) > self.scale_ * self.epsilon
    return self


class QuantileRegressor(_Robust):
  """`sklearn.linear_model.QuantileRegressor`: the `quantile` q's pinball loss plus `alpha |coef|₁`.

  Attributes: `coef_` `[d]` (L1 zeros are 0.0), `intercept_`, `n_iter_` (interior-point iterations).
  """

  def __init__(self, *, quantile=0.5, alpha=1.0, tol=1e-10, max_iter=100):
    self.quantile = quantile
    self.alpha = alpha
    self.tol = tol
    self.max_iter = max_iter

  def fit(self, X, y, sample_weight=None):
    from flaxzoo.trainers import robust

    if not isinstance(self.quantile, numbers.Real) or not 0 < self.quantile < 1:
      raise ValueError(f"quantile must be a number in (0, 1), got {self.quantile!r}")
    if not isinstance(self.alpha, numbers.Real) or not 0 <= self.alpha < np.inf:
      raise ValueError(f"alpha must be a finite number >= 0, got {self.alpha!r}")
    check_iterations(self.max_iter, self.tol)
    X, y, weight = self._inputs(X, y, sample_weight)
    fit = robust.quantile(X, y, weight, float(self.quantile), float(self.alpha), float(self.tol), int(self.max_iter))
    self._warn(fit)
    self.coef_, self.intercept_, self.n_iter_ = fit.coef, fit.intercept, fit.n_iter
    return self
