"""Coefficient tables and their standard errors: statsmodels' numbers through flaxzoo's estimators (issue 33).

Prediction intervals and the covariance `fit` keeps for them: tests/test_intervals.py.

Every comparison fits statsmodels at a tight tolerance and flaxzoo at `tol=1e-10`, then asks for the same
covariance: std errors to 1e-6 relative, p-values and interval bounds to 1e-5.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

sm = pytest.importorskip("statsmodels.api")
from inference_cases import N, three_scales  # noqa: E402
from statsmodels.stats.sandwich_covariance import cov_white_simple  # noqa: E402

from flaxzoo.sklearn import (  # noqa: E402
  GammaRegressor,
  LinearClassifier,
  LinearClassifierCV,
  LinearRegression,
  LinearRegressionCV,
  PoissonRegressor,
  TweedieRegressor,
)
from flaxzoo.sklearn.inference import PenalisedCovarianceWarning  # noqa: E402

COV_TYPES = ("nonrobust", "HC0", "HC1", "HC2", "HC3", "cluster")


def _statsmodels(model, cov_type, groups, fit_kw=None):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    kw = {"cov_kwds": {"groups": groups}} if cov_type == "cluster" else {}
    return model.fit(cov_type=cov_type, **kw, **(fit_kw or {}))


def _compare(table, bse, pvalues, conf_int):
  np.testing.assert_allclose(table["std_err"], bse, rtol=1e-6)
  np.testing.assert_allclose(table["p_value"], pvalues, rtol=1e-5, atol=1e-300)
  np.testing.assert_allclose(table[["ci_low", "ci_high"]], conf_int, rtol=1e-5, atol=1e-12)


def _check_table(model, X, y, reference, cov_type, groups, **kw):
  table = model.coef_table(X, y, cov_type=cov_type, groups=groups if cov_type == "cluster" else None, **kw)
  assert list(table.index) == ["intercept", "age", "income", "dose"]
  assert list(table.columns) == ["coef", "std_err", "statistic", "p_value", "ci_low", "ci_high"]
  np.testing.assert_allclose(table["coef"], reference.params, rtol=1e-6, atol=1e-9 * np.min(reference.bse))
  _compare(table, reference.bse, reference.pvalues, np.asarray(reference.conf_int()))
  return table


@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_least_squares_matches_ols_and_wls(cov_type, weighted):
  rng, X, eta, groups = three_scales()
  y = eta + rng.standard_normal(N) * (0.5 + np.abs(X["age"].to_numpy()))  # heteroscedastic
  weight = rng.uniform(0.2, 3.0, N) if weighted else None
  model = LinearRegression().fit(X, y, sample_weight=weight)
  exog = sm.add_constant(X)
  sm_model = sm.WLS(y, exog, weights=weight) if weighted else sm.OLS(y, exog)
  reference = _statsmodels(sm_model, cov_type, groups)
  table = _check_table(model, X, y, reference, cov_type, groups, sample_weight=weight)
  # The covariance matrix itself, in [intercept, coef] order.
  matrix = model.covariance_matrix(X, y, weight, cov_type=cov_type, groups=groups if cov_type == "cluster" else None)
  expected = np.asarray(reference.cov_params())
  np.testing.assert_allclose(matrix, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())
  assert (table["p_value"] > 0).all()


def _glm_reference(y, X, family, cov_type, groups, weight=None, offset=None):
  """statsmodels' GLM numbers for `cov_type`; HC1 as `cov_white_simple(use_correction=True)` (its GLM reports
  HC0 under every HC name), HC2 and HC3 from the IRLS weighted least squares at the optimum (canonical links)."""
  exog = sm.add_constant(X)
  model = sm.GLM(y, exog, family=family, var_weights=weight, offset=offset)
  base = _statsmodels(model, "HC0" if cov_type.startswith("HC") else cov_type, groups, {"tol": 1e-13})
  if cov_type in ("nonrobust", "HC0", "cluster"):
    return base.params, base.cov_params()
  if cov_type == "HC1":
    return base.params, cov_white_simple(base, use_correction=True)
  mu = base.fittedvalues
  eta = np.log(mu / (1 - mu)) if isinstance(family, sm.families.Binomial) else np.log(mu)
  curvature = mu * (1 - mu) if isinstance(family, sm.families.Binomial) else mu
  irls = np.ones(len(y)) * curvature * (1.0 if weight is None else weight)
  working = eta + (y - mu) / curvature
  reference = sm.WLS(working, exog, weights=irls).fit(cov_type=cov_type)
  return base.params, reference.cov_params()


def _check_glm(model, X, y, params, cov, cov_type, groups, **kw):
  from scipy import stats

  table = model.coef_table(X, y, cov_type=cov_type, groups=groups if cov_type == "cluster" else None, **kw)
  bse = np.sqrt(np.diag(np.asarray(cov)))
  params = np.asarray(params)
  z = params / bse
  q = stats.norm.ppf(0.975)
  np.testing.assert_allclose(table["coef"], params, rtol=1e-6, atol=1e-6 * np.min(bse))
  _compare(table, bse, 2 * stats.norm.sf(np.abs(z)), np.stack([params - q * bse, params + q * bse], axis=1))


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_logistic_matches_binomial_glm(cov_type):
  rng, X, eta, groups = three_scales(1)
  y = (rng.random(N) < 1 / (1 + np.exp(-eta))).astype(np.int64)
  model = LinearClassifier(C=np.inf, tol=1e-10).fit(X, y)
  params, cov = _glm_reference(y.astype(float), X, sm.families.Binomial(), cov_type, groups)
  _check_glm(model, X, y, params, cov, cov_type, groups)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_poisson_with_150_clusters_matches_glm(cov_type):
  rng, X, eta, groups = three_scales(2)
  y = rng.poisson(np.exp(0.5 * eta + 0.3)).astype(np.float64)
  model = PoissonRegressor(alpha=0.0, tol=1e-10).fit(X, y)
  params, cov = _glm_reference(y, X, sm.families.Poisson(), cov_type, groups)
  _check_glm(model, X, y, params, cov, cov_type, groups)


def _gamma_leverage_reference(base, X, weight, power):
  """HC2/HC3 of a gamma fit, written out: statsmodels' score_obs and observed Hessian, the leverage from the
  IRLS (Fisher) weights w μ^0 of the hat matrix."""
  exog = sm.add_constant(X).to_numpy()
  scores = base.model.score_obs(base.params)
  bread = np.linalg.inv(-base.model.hessian(base.params))
  fisher = exog * weight[:, None]
  leverage = np.einsum("ij,jk,ik->i", exog, np.linalg.inv(exog.T @ fisher), fisher)
  meat = (scores / (1 - leverage)[:, None] ** (power / 2)).T @ (scores / (1 - leverage)[:, None] ** (power / 2))
  return bread @ meat @ bread


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_gamma_matches_glm(cov_type):
  rng, X, eta, groups = three_scales(3)
  y = rng.gamma(2.0, np.exp(0.5 * eta) / 2.0)
  weight = rng.uniform(0.5, 2.0, N)
  model = GammaRegressor(alpha=0.0, tol=1e-10).fit(X, y, sample_weight=weight)
  family = sm.families.Gamma(sm.families.links.Log())
  if cov_type in ("HC2", "HC3"):
    base = _statsmodels(sm.GLM(y, sm.add_constant(X), family=family, var_weights=weight), "nonrobust", None,
                        {"tol": 1e-13})
    params, cov = base.params, _gamma_leverage_reference(base, X, weight, int(cov_type[-1]) - 1)
  else:
    params, cov = _glm_reference(y, X, family, cov_type, groups, weight)
  _check_glm(model, X, y, params, cov, cov_type, groups, sample_weight=weight)


def test_tweedie_nonrobust_uses_pearson_scale():
  rng, X, eta, _ = three_scales(4)
  y = rng.gamma(2.0, np.exp(0.5 * eta) / 2.0) * (rng.random(N) < 0.8)
  model = TweedieRegressor(power=1.5, alpha=0.0, tol=1e-10).fit(X, y)
  family = sm.families.Tweedie(var_power=1.5, link=sm.families.links.Log())
  params, cov = _glm_reference(y, X, family, "nonrobust", None)
  _check_glm(model, X, y, params, cov, "nonrobust", None)


def test_bootstrap_agrees_with_hc0_and_covers_the_coefficient():
  rng, X, eta, groups = three_scales(7)
  y = (rng.random(N) < 1 / (1 + np.exp(-eta))).astype(np.int64)
  model = LinearClassifier(C=np.inf).fit(X, y)
  boot = model.coef_table(X, y, cov_type="bootstrap", n_resamples=300, random_state=0)
  hc0 = model.coef_table(X, y, cov_type="HC0")
  np.testing.assert_allclose(boot["std_err"], hc0["std_err"], rtol=0.15)
  assert ((boot["ci_low"] <= boot["coef"]) & (boot["coef"] <= boot["ci_high"])).all()
  again = model.coef_table(X, y, cov_type="bootstrap", n_resamples=300, random_state=0)
  pd.testing.assert_frame_equal(boot, again)  # the seed decides the resamples
  clustered = model.coef_table(X, y, cov_type="bootstrap", groups=groups, n_resamples=300, random_state=0)
  cluster = model.coef_table(X, y, cov_type="cluster", groups=groups)
  np.testing.assert_allclose(clustered["std_err"], cluster["std_err"], rtol=0.25)


def test_a_weighted_glm_bootstrap_agrees_with_hc0_and_its_draws_do_not_depend_on_the_threads(monkeypatch):
  """Rows resampled with their weights (the chord's refits from the fit's own weighted Hessian): std errors
  within 15% of HC0's; the same seed draws the same resamples on 1 thread or 3."""
  rng, X, eta, _ = three_scales(8)
  weight = rng.uniform(0.5, 2.0, N)
  offset = rng.normal(size=N) * 0.3
  y = rng.poisson(np.exp(0.4 * eta + offset)).astype(float)
  model = PoissonRegressor(alpha=0.0).fit(X, y, sample_weight=weight, offset=offset)
  hc0 = model.coef_table(X, y, weight, cov_type="HC0", offset=offset)
  tables = {}
  for threads in ("1", "3"):
    monkeypatch.setenv("FLAXZOO_HOST_THREADS", threads)
    tables[threads] = model.coef_table(X, y, weight, cov_type="bootstrap", n_resamples=300, random_state=1,
                                       offset=offset)
  np.testing.assert_allclose(tables["1"]["std_err"], hc0["std_err"], rtol=0.15)
  pd.testing.assert_frame_equal(tables["1"], tables["3"])


@pytest.mark.parametrize("exposure", [False, True])
def test_poisson_offset_equals_statsmodels(exposure):
  rng, X, eta, groups = three_scales(8)
  offset = rng.normal(size=N) * 0.5
  y = rng.poisson(np.exp(0.5 * eta + offset)).astype(np.float64)
  kw = {"exposure": np.exp(offset)} if exposure else {"offset": offset}
  model = PoissonRegressor(alpha=0.0, tol=1e-10).fit(X, y, **kw)
  reference = sm.GLM(y, sm.add_constant(X), family=sm.families.Poisson(), **kw).fit(tol=1e-13)
  np.testing.assert_allclose(np.r_[model.intercept_, model.coef_], reference.params, rtol=1e-6,
                             atol=1e-6 * np.min(reference.bse))
  table = model.coef_table(X, y, offset=offset)
  np.testing.assert_allclose(table["std_err"], reference.bse, rtol=1e-6)
  np.testing.assert_allclose(model.predict(X[:20], offset=offset[:20]), reference.predict(
      sm.add_constant(X)[:20], offset=offset[:20]), rtol=1e-8)
  clustered = _statsmodels(sm.GLM(y, sm.add_constant(X), family=sm.families.Poisson(), offset=offset), "cluster",
                           groups, {"tol": 1e-13})
  np.testing.assert_allclose(model.coef_table(X, y, offset=offset, cov_type="cluster", groups=groups)["std_err"],
                             clustered.bse, rtol=1e-6)


def test_gamma_offset_equals_statsmodels():
  rng, X, eta, _ = three_scales(9)
  offset = rng.normal(size=N) * 0.5
  y = rng.gamma(2.0, np.exp(0.5 * eta + offset) / 2.0)
  model = GammaRegressor(alpha=0.0, tol=1e-10).fit(X, y, offset=offset)
  reference = sm.GLM(y, sm.add_constant(X), family=sm.families.Gamma(sm.families.links.Log()), offset=offset).fit(
      tol=1e-13)
  np.testing.assert_allclose(model.coef_table(X, y, offset=offset)["std_err"], reference.bse, rtol=1e-6)


def test_penalised_fit_warns_and_gives_the_sandwich():
  rng, X, eta, _ = three_scales(10)
  y = eta + rng.standard_normal(N)
  alpha = 50.0
  model = LinearRegression(alpha=alpha).fit(X, y)
  with pytest.warns(PenalisedCovarianceWarning, match="sandwich"):
    matrix = model.covariance_matrix(X, y)
  f = np.column_stack([np.ones(N), X.to_numpy()])
  gram = f.T @ f
  penalised = np.linalg.inv(gram + alpha * np.diag([0.0, 1.0, 1.0, 1.0]))
  params = np.r_[model.intercept_, model.coef_]
  scale = np.sum((y - f @ params) ** 2) / (N - 4)
  expected = scale * penalised @ gram @ penalised
  spread = np.sqrt(np.outer(np.diag(expected), np.diag(expected)))  # entries relative to their row's and column's
  np.testing.assert_allclose(np.diag(matrix), np.diag(expected), rtol=1e-6)
  np.testing.assert_allclose(matrix / spread, expected / spread, atol=1e-9)
  with pytest.warns(PenalisedCovarianceWarning):  # a CV estimator's refit: its chosen penalty, the same numbers
    cv = LinearRegressionCV(alphas=[alpha]).fit(X, y)  # (its Gram summed by the covariance, the fit's by the fit)
    np.testing.assert_allclose(cv.covariance_matrix(X, y) / spread, matrix / spread, rtol=0, atol=1e-11)


def test_cv_refits_have_tables():
  rng, X, eta, _ = three_scales(11)
  y = (rng.random(N) < 1 / (1 + np.exp(-eta))).astype(np.int64)
  cv = LinearClassifierCV(Cs=[1e6], cv=3, tol=1e-10).fit(X, y)
  single = LinearClassifier(C=1e6, tol=1e-10).fit(X, y)
  with pytest.warns(PenalisedCovarianceWarning):
    ours = cv.coef_table(X, y, cov_type="HC1")
  with pytest.warns(PenalisedCovarianceWarning):
    theirs = single.coef_table(X, y, cov_type="HC1")
  np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=1e-6)


def test_what_has_no_standard_error_says_so_in_one_line():
  rng, X, eta, groups = three_scales(12)
  y = (rng.random(N) < 1 / (1 + np.exp(-eta))).astype(np.int64)
  lasso = LinearClassifier(C=1.0, l1_ratio=1.0).fit(X, y)
  with pytest.raises(ValueError, match="L1 penalty selects the features"):
    lasso.coef_table(X, y)
  three = rng.integers(0, 3, N)
  with pytest.raises(ValueError, match="two classes"):
    LinearClassifier().fit(X, three).coef_table(X, three)
  model = LinearClassifier(C=np.inf).fit(X, y)
  with pytest.raises(ValueError, match="cov_type must be one of"):
    model.coef_table(X, y, cov_type="HC4")
  with pytest.raises(ValueError, match="needs groups"):
    model.coef_table(X, y, cov_type="cluster")
  with pytest.raises(ValueError, match="confidence"):
    model.coef_table(X, y, confidence=95)
  poisson = PoissonRegressor(alpha=0.0).fit(X, rng.poisson(1.0, N))
  with pytest.raises(ValueError, match="kind='mean'"):
    poisson.predict_interval(X, kind="observation")


def test_a_second_table_compiles_nothing():
  """Nor one of another number of rows in the same bucket (the compiled passes' shapes are the row buckets)."""
  from conftest import COMPILATIONS

  rng, X, eta, groups = three_scales(13)
  y = rng.poisson(np.exp(0.5 * eta)).astype(float)
  labels = (y > 1).astype(int)

  def tables(y, labels, groups, X=X):
    model = PoissonRegressor(alpha=0.0).fit(X, y)
    model.coef_table(X, y, cov_type="cluster", groups=groups)
    model.coef_table(X, y, cov_type="HC3")
    model.predict_interval(X)
    classifier = LinearClassifier(C=np.inf).fit(X, labels)
    classifier.coef_table(X, labels, cov_type="HC1")
    classifier.coef_table(X, labels, cov_type="bootstrap", n_resamples=50, random_state=0)

  tables(y, labels, groups)
  with COMPILATIONS as compiled:
    y2 = rng.poisson(np.exp(0.4 * eta)).astype(float)
    tables(y2, (y2 > 0).astype(int), rng.integers(0, 150, N))
    tables(y2[:-77], (y2[:-77] > 0).astype(int), groups[:-77], X[:-77])
  assert compiled.count == 0


@pytest.mark.parametrize("where, value", [(2900, np.nan), (0, np.inf), (1500, -np.inf)])
@pytest.mark.parametrize("make", [LinearRegression, lambda: PoissonRegressor(alpha=0.0),
                                  lambda: LinearClassifier(C=np.inf)], ids=["ols", "poisson", "logistic"])
def test_a_table_of_rows_with_nan_or_infinity_is_scikit_learns_error(make, where, value):
  """X's finiteness is read from the covariance's own sums (no pass of its own): the same one-line error as
  scikit-learn's check, for every cov type and the bootstrap, wherever the bad entry is."""
  rng, X, eta, groups = three_scales()
  X = X.to_numpy()
  y = rng.poisson(np.exp(0.3 * eta)) if "Poisson" in repr(make()) else (eta + rng.standard_normal(N) > 0) * 1.0
  model = make().fit(X, y)
  bad = X.copy()
  bad[where, 1] = value
  word = "NaN" if np.isnan(value) else "infinity"
  for cov_type in COV_TYPES + ("bootstrap",):
    with pytest.raises(ValueError, match=f"Input X contains {word}"):
      model.coef_table(bad, y, cov_type=cov_type, groups=groups if cov_type == "cluster" else None, n_resamples=5)


def test_the_host_sums_on_any_number_of_threads_are_the_one_threads(monkeypatch):
  """The covariance's blocked sums split over threads (`host_blas.in_parts`; `FLAXZOO_HOST_THREADS` sets how
  many) give the one-thread sums."""
  rng = np.random.default_rng(5)
  X = rng.standard_normal((30_000, 4)) + [0, 0, 3, 0]  # (8 blocks of the sums' 4096 rows)
  y = rng.poisson(np.exp(0.2 * X[:, 0] - 0.1 * X[:, 1])).astype(float)
  groups = rng.integers(0, 200, len(X))
  model = PoissonRegressor(alpha=0.0).fit(X, y)
  tables = {}
  for threads in ("1", "3"):
    monkeypatch.setenv("FLAXZOO_HOST_THREADS", threads)
    tables[threads] = [model.coef_table(X, y, cov_type=cov_type, groups=groups if cov_type == "cluster" else None)
                       for cov_type in ("nonrobust", "HC3", "cluster")]
  for one, three in zip(tables["1"], tables["3"]):
    np.testing.assert_allclose(three["std_err"], one["std_err"], rtol=1e-12)


@pytest.mark.parametrize("loss", ["poisson", "logistic", "gamma"])
def test_the_sums_from_rows_only_on_the_device_are_the_host_rows_sums(loss):
  """Where the rows are only on the device (an accelerator, or rows sharded over devices), each chunk's terms and
  rows come back from it: the same sums as from the rows where they are on the host."""
  import dataclasses

  from flaxzoo.trainers import solvers

  rng = np.random.default_rng(11)
  x = rng.standard_normal((70_000, 3)) * [1.0, 1e3, 1e-3] + [0.0, 5e3, 0.0]  # (two chunks, the last padded)
  eta = 0.3 * x[:, 0] + 1e-4 * (x[:, 1] - 5e3)
  y = {"poisson": rng.poisson(np.exp(eta)) * 1.0, "logistic": (rng.random(len(x)) < 0.5) * 1,
       "gamma": rng.gamma(2.0, np.exp(eta) / 2)}[loss]
  data = solvers.stage(x, y, loss, 2 if loss == "logistic" else None, sample=False)
  theta = np.array([0.3, 0.1, -0.05, 0.2])
  weight, groups = rng.uniform(0.5, 2.0, len(x)), rng.integers(0, 40, len(x))
  host = solvers.sandwich_sums(data, theta, weight, groups, 40, robust=True)
  device = solvers.sandwich_sums(dataclasses.replace(data, host_rows=None), theta, weight, groups, 40, robust=True)
  assert data.host_rows is not None
  for name in ("fisher", "observed", "meat", "clusters", "pearson"):
    np.testing.assert_allclose(device[name], host[name], rtol=1e-10, atol=1e-12 * np.max(np.abs(host[name])))

