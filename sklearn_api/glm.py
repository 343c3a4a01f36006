"""Generalized linear models with a log link as scikit-learn estimators, fitted by flaxzoo's exact solvers.

  from flaxzoo.sklearn import GammaRegressor, PoissonRegressor, TweedieRegressor

scikit-learn's `PoissonRegressor`, `GammaRegressor` and `TweedieRegressor`: the same parameters, scales
and objective, `mean_w(half deviance) + alpha / 2 |coef|²` (the intercept not penalised), which is the
training core's with `l2 = alpha` (`penalty.penalties_of_glm_alpha`). `TweedieRegressor(power=0)` (the
normal distribution, identity link) is least squares, `Ridge(alpha=n alpha)`. Beyond scikit-learn, glum's
`l1_ratio` (default 0): `alpha (l1_ratio |coef|₁ + (1 - l1_ratio) / 2 |coef|²)`, fitted by proximal Newton
(L1 zeros are 0.0; power 0: `ElasticNet(alpha, l1_ratio)`). Fitted by Newton with Fisher's
curvature (IRLS) from the intercept-only fit, or L-BFGS (`solver`: `"auto"` (the default; Newton up to
`solvers.NEWTON_MAX_PARAMS` parameters), `"newton"` (also as scikit-learn's `"newton-cholesky"`) or
`"lbfgs"`); every fit has an intercept (scikit-learn's `fit_intercept=True`).
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import d2_tweedie_score
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from flaxzoo.sklearn.checks import check_iterations, validated
from flaxzoo.sklearn.estimators import _DenseInput
from flaxzoo.sklearn.inference import _Inference
from flaxzoo.sklearn.penalty import penalties_of_elastic_net, penalties_of_glm_alpha
from flaxzoo.trainers.loss_names import family_of
from flaxzoo.zoo.links import inverse_link

GLM_SOLVERS = {"auto": "auto", "newton": "newton", "newton-cholesky": "newton", "lbfgs": "lbfgs"}


class _GeneralizedLinear(RegressorMixin, _Inference, _DenseInput):
  """What the three share; subclasses name `_power()` (0: normal with the identity link)."""

  def __init__(self, *, alpha=1.0, l1_ratio=0.0, solver="auto", max_iter=100, tol=1e-4, warm_start=False):
    self.alpha = alpha
    self.l1_ratio = l1_ratio
    self.solver = solver
    self.max_iter = max_iter
    self.tol = tol
    self.warm_start = warm_start

  def __sklearn_tags__(self):
    tags = super().__sklearn_tags__()
    tags.target_tags.positive_only = self._power() > 0
    return tags

  def _check_params(self):
    if not isinstance(self.alpha, numbers.Real) or not np.isfinite(self.alpha) or self.alpha < 0:
      raise ValueError(f"alpha must be a finite number >= 0, got {self.alpha!r}")
    if isinstance(self.l1_ratio, bool) or not isinstance(self.l1_ratio, numbers.Real) or not 0 <= self.l1_ratio <= 1:
      raise ValueError(f"l1_ratio must be a number in [0, 1], got {self.l1_ratio!r}")
    if self.solver not in GLM_SOLVERS:
      raise ValueError(f"solver must be one of {', '.join(GLM_SOLVERS)}, got {self.solver!r}")
    check_iterations(self.max_iter, self.tol)

  def _family(self) -> tuple[str, float | None]:
    return family_of("tweedie", self._power())

  def _loss(self) -> str:
    family, power = self._family()
    return "mse" if self._power() == 0 else family if family != "tweedie" else f"tweedie:{power!r}"

  def _penalties(self) -> tuple[float, float]:
    """The core's `(l2, l1)` (the same on any total weight: the mean half deviance's penalty already)."""
    if self._power() == 0:
      return penalties_of_elastic_net(float(self.alpha), float(self.l1_ratio))
    return penalties_of_glm_alpha(float(self.alpha), float(self.l1_ratio))

  def _inference_problem(self, X, y, weight, offset):
    from flaxzoo.trainers.offsets import absorbed, checked_offset

    total = weight.sum()
    y, weight = absorbed(y, weight, checked_offset(offset, None, len(X)), self._power())
    l2, l1 = (v * total / weight.sum() for v in self._penalties())  # (the offset's weights: `_fit_penalties`)
    return X, y, weight, self._loss(), lambda _: l2, l1

  def fit(self, X, y, sample_weight=None, offset=None, exposure=None):
    """Fits `coef_ [d]`, `intercept_` (float64) on `X [n, d]`, targets `y [n]` in the family's domain; `offset
    [n]` adds to the linear predictor (`exposure [n]`: its log, statsmodels' meaning), `trainers.offsets`."""
    from flaxzoo.trainers import solvers
    from flaxzoo.trainers.offsets import absorbed, checked_offset

    self._check_params()
    X, y = validated(self, X, y, dtype=[np.float64, np.float32], y_numeric=True)
    y = np.asarray(y, np.float64)
    weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
    offset = checked_offset(offset, exposure, len(X))
    total = weight.sum()
    y, weight = absorbed(y, weight, offset, self._power())
    # The solvers' objective is the weights' mean loss plus the penalty: with the offset's weights (another
    # total) the same penalty relative to the data's deviance is the core's times total / new total.
    l2, l1 = (v * total / weight.sum() for v in self._penalties())
    start = None
    if self.warm_start and getattr(self, "coef_", np.empty(0)).shape == (X.shape[1],):
      start = (self.coef_[None, :, None], np.asarray([[self.intercept_]]))
    if self._power() == 0:  # least squares: Ridge(S alpha), or with l1_ratio ElasticNet(alpha, l1_ratio)
      data = solvers.stage(X, y, "mse")
      fit = solvers.solve(data, weight[None], [l2], "normal_equation", float(self.tol), 100 * int(self.max_iter),
                          l1=[l1] if l1 > 0 else None)
    else:
      family, power = self._family()
      try:
        data = solvers.stage(X, y, family, power=power)
      except ValueError as e:  # the targets' domain, in the estimator's words
        raise ValueError(f"{type(self).__name__}: {e}") from None
      try:  # (an L1 part is proximal Newton's)
        solver = solvers.choose(GLM_SOLVERS[self.solver], family, num_params=X.shape[1] + 1, l1=l1 > 0)
      except ValueError as e:
        raise ValueError(f"{type(self).__name__}: l1_ratio > 0: {e}") from None
      fit = solvers.solve(data, weight[None], [l2], solver, float(self.tol), int(self.max_iter), start,
                          l1=[l1] if l1 > 0 else None)
      if not fit.converged[0]:
        warnings.warn(f"{type(self).__name__} did not converge in max_iter={self.max_iter} iterations"
                      f" (tol={self.tol}); increase max_iter, or scale the data", ConvergenceWarning, stacklevel=2)
    self.coef_, self.intercept_ = fit.coef[0, :, 0], float(fit.intercept[0, 0])
    self.n_iter_ = int(fit.n_iter[0])
    self._covariance_ = None
    if l1 == 0:  # what predict_interval reads (one pass, `_keep_covariance`)
      self._keep_covariance(X, y, weight, self._loss(), l2, data=data)
    return self

  def _linear_predictor(self, X, offset=None, exposure=None):
    from flaxzoo.trainers.offsets import checked_offset

    check_is_fitted(self)
    X = validated(self, X, reset=False, dtype=[np.float64, np.float32])
    offset = checked_offset(offset, exposure, len(X))
    return X @ self.coef_ + self.intercept_ + (0.0 if offset is None else offset)

  def predict(self, X, offset=None, exposure=None):
    """The predicted means `[n]`: `exp(X coef + intercept + offset)` (power 0: `X coef + intercept + offset`)."""
    return inverse_link("identity" if self._power() == 0 else "log", self._linear_predictor(X, offset, exposure))

  def predict_interval(self, X, *, confidence=0.95, kind="mean", offset=None, exposure=None):
    """`[n, 2]` (low, high): the `confidence` interval of the mean, the linear predictor's normal interval
    through the link (statsmodels' GLM `get_prediction().conf_int()`); power 0 (least squares) also
    `kind="observation"` (Student's t, as `LinearRegression`'s). From the covariance `fit` kept."""
    from flaxzoo.trainers.offsets import checked_offset

    if kind == "observation" and self._power() != 0:
      raise ValueError(f"{type(self).__name__}: kind='observation' is least squares' (power 0); a GLM's interval"
                       " is of the mean (kind='mean')")
    eta, variance, cov, q = self._interval(X, confidence, kind, checked_offset(offset, exposure, len(X)))
    spread = q * np.sqrt(variance + (cov.scale if kind == "observation" else 0.0))
    link = "identity" if self._power() == 0 else "log"
    return np.stack([inverse_link(link, eta - spread), inverse_link(link, eta + spread)], axis=1)

  def score(self, X, y, sample_weight=None):
    """D², the fraction of the family's deviance explained (scikit-learn's GLM `score`)."""
    return d2_tweedie_score(y, self.predict(X), sample_weight=sample_weight, power=self._power())


class PoissonRegressor(_GeneralizedLinear):
  """`sklearn.linear_model.PoissonRegressor`: counts (targets >= 0), log link, L2 penalty `alpha`."""

  def _power(self):
    return 1.0


class GammaRegressor(_GeneralizedLinear):
  """`sklearn.linear_model.GammaRegressor`: positive targets, log link, L2 penalty `alpha`."""

  def _power(self):
    return 2.0


class TweedieRegressor(_GeneralizedLinear):
  """`sklearn.linear_model.TweedieRegressor`: Tweedie deviance of `power` p (0: normal, identity link; 1:
  Poisson; 1 < p < 2: compound Poisson-gamma; 2: gamma; > 2), log link for p >= 1. `link`: `"auto"`, or the
  one it means (`"identity"` for p = 0, `"log"` else); other powers and links are refused."""

  def __init__(self, *, power=0.0, alpha=1.0, l1_ratio=0.0, link="auto", solver="auto", max_iter=100, tol=1e-4,
               warm_start=False):
    super().__init__(alpha=alpha, l1_ratio=l1_ratio, solver=solver, max_iter=max_iter, tol=tol, warm_start=warm_start)
    self.power = power
    self.link = link

  def _power(self):
    return float(self.power)

  def _check_params(self):
    super()._check_params()
    power = self.power
    if not isinstance(power, numbers.Real) or not np.isfinite(power) or not (power == 0 or power >= 1):
      raise ValueError(f"power must be 0 or >= 1 (no distribution between), got {power!r}")
    expected = "identity" if power == 0 else "log"
    if self.link not in ("auto", expected):
      raise ValueError(f"link {self.link!r} with power {power:g}: only {expected!r} (or 'auto') is fitted here")
