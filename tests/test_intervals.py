"""Prediction intervals and the covariance `fit` keeps for them (O(d²), no training rows): statsmodels' numbers,
through a save and a load too (issue 33). Coefficient tables: tests/test_inference.py."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

sm = pytest.importorskip("statsmodels.api")

from inference_cases import N, three_scales  # noqa: E402

from flaxzoo.sklearn import GammaRegressor, LinearRegression, PoissonRegressor  # noqa: E402


def test_prediction_intervals_match_statsmodels():
  rng, X, eta, _ = three_scales(5)
  y = eta + rng.standard_normal(N)
  model = LinearRegression().fit(X, y)
  frame = sm.OLS(y, sm.add_constant(X)).fit().get_prediction(sm.add_constant(X)[:50]).summary_frame(alpha=0.1)
  np.testing.assert_allclose(model.predict_interval(X[:50], confidence=0.9),
                             frame[["obs_ci_lower", "obs_ci_upper"]], rtol=1e-6)
  np.testing.assert_allclose(model.predict_interval(X[:50], confidence=0.9, kind="mean"),
                             frame[["mean_ci_lower", "mean_ci_upper"]], rtol=1e-6, atol=1e-9)
  counts = rng.poisson(np.exp(0.5 * eta)).astype(float)
  positive = rng.gamma(2.0, np.exp(0.5 * eta) / 2.0)
  for estimator, target, family in ((PoissonRegressor, counts, sm.families.Poisson()),
                                    (GammaRegressor, positive, sm.families.Gamma(sm.families.links.Log()))):
    fitted = estimator(alpha=0.0, tol=1e-10).fit(X, target)
    reference = sm.GLM(target, sm.add_constant(X), family=family).fit(tol=1e-13)
    frame = reference.get_prediction(sm.add_constant(X)[:50]).summary_frame()
    np.testing.assert_allclose(fitted.predict_interval(X[:50]), frame[["mean_ci_lower", "mean_ci_upper"]],
                               rtol=1e-6)


def test_observation_interval_covers_its_share_of_new_rows():
  rng = np.random.default_rng(6)
  beta = np.array([0.5, -1.0, 2.0])
  x = rng.standard_normal((2000, 3))
  model = LinearRegression().fit(x, 1.0 + x @ beta + 1.5 * rng.standard_normal(2000))
  new = rng.standard_normal((200_000, 3))
  truth = 1.0 + new @ beta + 1.5 * rng.standard_normal(200_000)
  band = model.predict_interval(new, confidence=0.9)
  coverage = np.mean((band[:, 0] <= truth) & (truth <= band[:, 1]))
  assert 0.88 <= coverage <= 0.92, coverage


def test_a_saved_model_keeps_its_intervals(tmp_path):
  from flaxzoo.sklearn import load
  from flaxzoo.sklearn.saving import save

  rng, X, eta, _ = three_scales(14)
  y = rng.poisson(np.exp(0.5 * eta)).astype(float)
  offset = rng.normal(size=N) * 0.2
  model = PoissonRegressor(alpha=0.0).fit(X, y, offset=offset)
  back = load(save(model, tmp_path, "visits"))
  np.testing.assert_array_equal(back.predict_interval(X[:100], offset=offset[:100]),
                                model.predict_interval(X[:100], offset=offset[:100]))
  linear = LinearRegression().fit(X, eta + rng.standard_normal(N))
  again = load(save(linear, tmp_path, "linear"))
  np.testing.assert_array_equal(again.predict_interval(X[:100]), linear.predict_interval(X[:100]))


def test_the_kept_covariance_is_the_one_a_pass_computes():
  """`fit` keeps least squares' covariance from the normal equation's Gram matrix (`from_moments`, no pass); a
  near-exact fit (the residuals' sum of squares lost in cancellation there) from the pass: both agree with it."""
  from flaxzoo.trainers.covariance import covariance, from_moments
  from flaxzoo.trainers.exact import fit_affine

  rng, X, eta, _ = three_scales(15)
  x, weight = X.to_numpy(), rng.uniform(0.5, 2.0, N)
  for noise, kept_from_moments in ((1.0, True), (1e-9, False)):
    y = eta + noise * rng.standard_normal(N)
    fit = fit_affine(x, y, "mse", weight[None], [0.0])
    coef, intercept = fit.coef[0, :, 0], fit.intercept[0, 0]
    moments = from_moments({**fit.moments, "gram": fit.moments["gram"][0]}, coef, intercept, weight.sum(), N)
    assert (moments is not None) == kept_from_moments
    by_pass = covariance(x, y, "mse", coef, intercept, weight)
    if moments is not None:
      np.testing.assert_allclose(np.diag(moments.matrix), np.diag(by_pass.matrix), rtol=1e-7)
      assert (moments.df_resid, moments.use_t) == (by_pass.df_resid, by_pass.use_t)
    model = LinearRegression().fit(X, y, sample_weight=weight)
    np.testing.assert_allclose(np.diag(model._covariance_["matrix"]), np.diag(by_pass.matrix), rtol=1e-7)


def test_partial_fit_drops_the_last_fits_covariance():
  rng, X, eta, _ = three_scales(16)
  y = eta + rng.standard_normal(N)
  model = LinearRegression().fit(X, y)
  model.predict_interval(X[:5])
  model.partial_fit(X, y)
  with pytest.raises(ValueError, match="kept no covariance"):
    model.predict_interval(X[:5])


def test_collinear_columns_warn_and_intervals_stay_statsmodels():
  """A rank-deficient design: the degrees of freedom are n - rank (statsmodels'), the collinear coefficients'
  standard errors are said to be unidentified, and a prediction's interval (identified) is statsmodels'."""
  from flaxzoo.trainers.covariance import CollinearityWarning

  rng = np.random.default_rng(17)
  x = rng.normal(size=(500, 2))
  X = np.c_[x, x[:, 0] + x[:, 1]]
  y = 1 + x @ [1.0, 2.0] + rng.normal(size=500)
  model = LinearRegression().fit(X, y)  # no warning at fit
  with warnings.catch_warnings():  # (statsmodels says so too)
    warnings.simplefilter("ignore")
    reference = sm.OLS(y, sm.add_constant(X)).fit()
  with pytest.warns(CollinearityWarning, match="rank 3 of 4"):
    table = model.coef_table(X, y)
  assert table["std_err"].iloc[0] == pytest.approx(reference.bse[0], rel=1e-8)  # the intercept: identified
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    frame = reference.get_prediction(sm.add_constant(X)[:20]).summary_frame()
  np.testing.assert_allclose(model.predict_interval(X[:20]), frame[["obs_ci_lower", "obs_ci_upper"]], rtol=1e-9)


def test_a_wide_saved_model_loads_without_its_covariance_and_says_so(tmp_path):
  from flaxzoo.sklearn import load
  from flaxzoo.sklearn.saving import save

  rng = np.random.default_rng(18)
  X = rng.normal(size=(1200, 520))
  model = LinearRegression().fit(X, X[:, 0] + rng.normal(size=1200))
  model.predict_interval(X[:2])  # kept
  back = load(save(model, tmp_path, "wide"))
  np.testing.assert_array_equal(back.predict(X[:5]), model.predict(X[:5]))
  with pytest.raises(ValueError, match="over 512 parameters"):
    back.predict_interval(X[:2])
