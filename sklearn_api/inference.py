"""Standard errors, coefficient tables and prediction intervals on the fitted estimators (glum's names).

  table = model.coef_table(X, y, cov_type="HC1")     # DataFrame: coef, std_err, statistic, p_value, ci_low, ci_high
  cov = model.covariance_matrix(X, y)                # [(d + 1), (d + 1)], [intercept, coef]
  band = model.predict_interval(X_new, kind="observation")   # [n, 2]

The numbers are statsmodels' (`flaxzoo.trainers.covariance` writes the conventions once): least squares as
`OLS`/`WLS` (sample_weight the WLS weights), the classifier as `GLM(Binomial)`, the regressors as `GLM` with the
log link and `var_weights`. `cov_type="bootstrap"`: `n_resamples` refits on resampled rows (with `groups`: whole
clusters), all of them one solve of `n_resamples` models from the fit's own optimum. A penalised fit's
covariance is the penalised Hessian's sandwich (`PenalisedCovarianceWarning`); an L1 part has none.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from sklearn.utils.validation import _assert_all_finite, _check_sample_weight, check_is_fitted, validate_data

from flaxzoo.sklearn.checks import check_finite, validated

BOOTSTRAP = "bootstrap"


class PenalisedCovarianceWarning(UserWarning):
  """The fit is penalised: its covariance is the penalised Hessian's sandwich, not a sampling covariance of the
  unpenalised estimator (statsmodels' numbers hold for `alpha=0` / `C=np.inf`)."""


class _Inference:
  """Subclasses: `_inference_problem(X, y, sample_weight, offset)` → `(x, targets, weights, loss, l2_at, l1)` in
  the core's units (`l2_at(total_weight)`: the fit's `l2` on rows of that total weight)."""

  def _params(self) -> np.ndarray:
    """`[(d + 1)]`: `[intercept, coef]` of the one fitted model."""
    check_is_fitted(self)
    coef = np.asarray(self.coef_, np.float64)
    if coef.ndim > 1 and coef.shape[0] != 1 or np.size(self.intercept_) != 1:
      raise ValueError(f"{type(self).__name__}: standard errors are computed for one target or two classes, this"
                       f" model has {coef.shape[0]} outputs")
    return np.concatenate([np.reshape(self.intercept_, 1), coef.reshape(-1)])

  def _names(self) -> list[str]:
    names = getattr(self, "feature_names_in_", None)
    names = [str(v) for v in names] if names is not None else [f"x{j}" for j in range(self.n_features_in_)]
    return ["intercept"] + names

  def _problem(self, X, y, sample_weight, offset):
    self._params()
    # X's finiteness is checked by the sums that read it (`_checked_finite`): one read of the rows fewer
    X, y = validate_data(self, X, y, reset=False, dtype=[np.float64, np.float32], y_numeric=False,
                         multi_output=True, ensure_all_finite=False)
    problem = self._inference_problem(X, y, _check_sample_weight(sample_weight, X, dtype=np.float64), offset)
    if problem[5] > 0:
      raise ValueError(f"{type(self).__name__}: an L1 penalty selects the features: no valid standard error after"
                       " selection (refit the selected features with l1_ratio=0, or use cov_type='bootstrap' on an"
                       " L2 or unpenalised fit)")
    return problem

  def covariance_matrix(self, X, y, sample_weight=None, *, cov_type="nonrobust", groups=None, n_resamples=999,
                        random_state=None, offset=None):
    """`[(d + 1), (d + 1)]`: the covariance of `[intercept, coef]` on the training rows `(X, y)`."""
    return self._covariance(X, y, sample_weight, cov_type, groups, n_resamples, random_state, offset)[0]

  def coef_table(self, X, y, sample_weight=None, *, cov_type="nonrobust", groups=None, confidence=0.95,
                 n_resamples=999, random_state=None, offset=None):
    """A DataFrame indexed by `intercept` and the features' names, with columns `coef, std_err, statistic,
    p_value, ci_low, ci_high` (statsmodels' numbers; see the module's docstring)."""
    import pandas as pd

    from flaxzoo.trainers.coefficients import bootstrap_rows, check_confidence, coefficient_rows

    check_confidence(confidence)
    matrix, cov, resamples = self._covariance(X, y, sample_weight, cov_type, groups, n_resamples, random_state,
                                              offset)
    params = self._params()
    rows = bootstrap_rows(params, resamples, confidence) if resamples is not None else coefficient_rows(
        params, cov, confidence)
    return pd.DataFrame(rows, index=pd.Index(self._names(), name="term"))

  def _covariance(self, X, y, sample_weight, cov_type, groups, n_resamples, random_state, offset):
    """`(matrix, Covariance or None, resamples [B, d + 1] or None)`."""
    from flaxzoo.trainers import covariance as covariance_lib

    if cov_type != BOOTSTRAP:
      covariance_lib.check_cov_type(cov_type, groups)
    x, targets, weights, loss, l2_at, _ = self._problem(X, y, sample_weight, offset)
    l2 = l2_at(weights.sum())
    if l2 > 0:
      warnings.warn(f"{type(self).__name__} is penalised (l2 > 0): its covariance is the penalised Hessian's"
                    " sandwich, not statsmodels' unpenalised one", PenalisedCovarianceWarning, stacklevel=3)
    params = self._params()
    if cov_type == BOOTSTRAP:
      from flaxzoo.trainers.bootstrap import resampled_fits

      check_finite(x, type(self).__name__)
      resamples = resampled_fits(x, targets, loss, weights, l2_at, params, n_resamples, random_state, groups,
                                 tol=getattr(self, "tol", 1e-4), max_iter=getattr(self, "max_iter", 100))
      return np.cov(resamples, rowvar=False), None, resamples
    try:
      cov = covariance_lib.covariance(x, targets, loss, params[1:], params[0], weights, cov_type, groups, l2,
                                      fitted=getattr(self, "_fit_gram_", None))
    except covariance_lib.NonFiniteSums:
      _assert_all_finite(x, input_name="X", estimator_name=type(self).__name__)  # (scikit-learn's message)
      raise
    return cov.matrix, cov, None

  def _keep_covariance(self, x, targets, weights, loss, l2, moments=None, data=None):
    """Keeps what `predict_interval` needs, `[(d + 1), (d + 1)]` (the model-based covariance, its scale and
    degrees of freedom): no training rows. From least squares' normal equation (`moments`) where it has one,
    else one pass (over the fit's own staged rows `data` where they are float64)."""
    from flaxzoo.trainers.covariance import CollinearityWarning, covariance, from_moments

    params = self._params()
    self._covariance_ = None
    # The fit's Fisher sum and its rows' fingerprint (least squares' Gram from its fit; a GLM's from the pass
    # below): a covariance on the same rows takes it, no Gram of its own (`sandwich_sums`); a cache, not saved
    single = moments is not None and len(moments["gram"]) == 1 and moments.get("sketch") is not None
    self._fit_gram_ = {"gram": moments["gram"][0], "sketch": moments["sketch"]} if single else None
    kept = {}
    if len(x) > len(params):  # (a dict of numbers: `save` writes it, exactly)
      fitted = None
      if moments is not None and len(moments["gram"]) == 1:
        fitted = from_moments({**moments, "gram": moments["gram"][0]}, params[1:], params[0], float(np.sum(weights)),
                              len(x), l2)
      if fitted is None:
        staged = data if data is not None and data.dtype == np.float64 and data.sharding is None else None
        with warnings.catch_warnings():  # (collinear columns: a prediction's interval is identified all the same)
          warnings.simplefilter("ignore", CollinearityWarning)
          fitted = covariance(x, targets, loss, params[1:], params[0], weights, "nonrobust", l2=l2, data=staged,
                              keep=kept)
        if kept:
          self._fit_gram_ = kept
      if np.all(np.isfinite(fitted.matrix)):  # (features ~1e-300: a variance beyond float64 keeps none)
        self._covariance_ = dataclasses.asdict(fitted)

  def _interval(self, X, confidence, kind, offset=None):
    """`(prediction [n], half-width of the linear predictor's interval [n], kept Covariance, q)`."""
    from flaxzoo.trainers.coefficients import quantile
    from flaxzoo.trainers.covariance import Covariance

    check_is_fitted(self)
    if kind not in ("observation", "mean"):
      raise ValueError(f"kind must be 'observation' or 'mean', got {kind!r}")
    kept = getattr(self, "_covariance_", None)
    if kept is None:
      raise ValueError(f"{type(self).__name__}: no interval: this fit kept no covariance (one target, an exact"
                       " solver, more rows than parameters and variances within float64 keep one; a saved model of"
                       " over 512 parameters is loaded without it)")
    X = validated(self, X, reset=False, dtype=[np.float64, np.float32])
    self._params()
    cov = Covariance(**kept)
    if cov.penalised:
      warnings.warn(f"{type(self).__name__} is penalised (l2 > 0): its interval is the penalised Hessian's"
                    " sandwich's", PenalisedCovarianceWarning, stacklevel=3)
    f = np.concatenate([np.ones((len(X), 1)), np.asarray(X, np.float64)], axis=1)
    variance = np.einsum("ij,jk,ik->i", f, cov.matrix, f)
    eta = f @ self._params() + (0.0 if offset is None else offset)
    return eta, variance, cov, quantile(confidence, cov.use_t, cov.df_resid)
