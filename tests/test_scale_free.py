"""A fit on rescaled data gives the rescaled answer: features x cx, targets x cy and sample weights x cw
(1e-12 ... 1e12, under hypothesis), with each estimator's penalty rescaled as its objective says, stop at the
same coefficients in the original units. Tolerances are relative to the problem's scale, never absolute: on the
old code a Lasso of y x 1e-5 returned all zeros, and a QuantileRegressor of y x 1e-10 or weights of 1e-12 stopped
at its start."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flaxzoo import sklearn as fz

SCALES = st.sampled_from([10.0**e for e in range(-12, 13, 3)])
SETTINGS = settings(max_examples=int(__import__("os").environ.get("FLAXZOO_HYPOTHESIS_EXAMPLES", 12)), deadline=None)


def _data(kind="linear"):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(150, 4)) * [1.0, 3.0, 0.2, 1.0] + [0.0, 5.0, -1.0, 2.0]
  z = (x - x.mean(axis=0)) / x.std(axis=0) @ [0.5, -0.4, 0.0, 0.3]
  y = {"counts": lambda: rng.poisson(np.exp(z)).astype(float), "positive": lambda: rng.gamma(2.0, np.exp(z) / 2),
       }.get(kind, lambda: 2.0 * z + rng.standard_t(3, size=150))()
  return x, y, rng.uniform(0.5, 2.0, size=150)


# name -> (estimator of (cx, cy, cw), the data's kind, how the intercept moves with cy): each penalty rescaled
# so that the objective at (coef x cy / cx) is the original's times a constant.
CASES = {
    "Lasso": (lambda cx, cy, cw: fz.Lasso(alpha=0.05 * cx * cy, tol=1e-12), "linear"),
    # Its L1 part scales with cx cy and its L2 part with cx²: y is scaled as x is, so that l1_ratio stays 0.5
    # (a ratio near 1 would lose the L2 part to the rounding of 1 - l1_ratio).
    "ElasticNet": (lambda cx, cy, cw: fz.ElasticNet(alpha=0.1 * cx * cy, l1_ratio=0.5, tol=1e-12), "linear"),
    "Ridge": (lambda cx, cy, cw: fz.LinearRegression(alpha=3.0 * cx**2 * cw), "linear"),
    "QuantileRegressor": (lambda cx, cy, cw: fz.QuantileRegressor(quantile=0.3, alpha=0.02 * cx), "linear"),
    "HuberRegressor": (lambda cx, cy, cw: fz.HuberRegressor(alpha=0.1 * cx**2 / cy * cw, tol=1e-10), "linear"),
    "PoissonRegressor": (lambda cx, cy, cw: fz.PoissonRegressor(alpha=0.01 * cx**2 * cy, tol=1e-10), "counts"),
    "GammaRegressor": (lambda cx, cy, cw: fz.GammaRegressor(alpha=0.01 * cx**2, tol=1e-10), "positive"),
    "LinearClassifier": (lambda cx, cy, cw: fz.LinearClassifier(C=0.5 / cx**2 / cw, tol=1e-10), "labels"),
}


def _answer(name, cx, cy, cw):
  """`(coef, intercept)` of the fit on the rescaled data, in the original units (the intercept of a log link
  moves by log cy)."""
  make, kind = CASES[name]
  x, y, w = _data(kind)
  if kind == "labels":
    y, cy = (y > np.median(y)).astype(int), 1.0
  if name == "ElasticNet":
    cy = cx
  estimator = make(cx, cy, cw).fit(x * cx, y * cy, sample_weight=w * cw)
  coef, intercept = np.ravel(estimator.coef_), float(np.ravel(estimator.intercept_)[0])
  if kind in ("counts", "positive"):  # a log link: the intercept moves by log cy
    return coef * cx, intercept - np.log(cy)
  if kind == "labels":
    return coef * cx, intercept
  return coef * cx / cy, intercept / cy


@pytest.mark.parametrize("name", list(CASES))
@SETTINGS
@given(cx=SCALES, cy=SCALES, cw=SCALES)
def test_a_fit_on_rescaled_data_gives_the_rescaled_answer(name, cx, cy, cw):
  coef, intercept = _answer(name, 1.0, 1.0, 1.0)
  scaled_coef, scaled_intercept = _answer(name, cx, cy, cw)
  size = max(np.max(np.abs(coef)), abs(intercept))
  np.testing.assert_allclose(scaled_coef, coef, rtol=0, atol=1e-6 * size)
  assert scaled_intercept == pytest.approx(intercept, abs=1e-6 * size)
  assert np.array_equal(scaled_coef == 0, coef == 0)  # the same L1 zeros


@pytest.mark.parametrize("c", [1e-300, 1e-200, 1e-180, 1e154, 1e200, 1e300])
def test_features_of_extreme_scale_give_the_least_squares_answer_not_nan_or_zeros(c):
  """Features x 1e154 ... 1e300 overflowed the Gram sums (NaN) and x 1e-180 underflowed them (all zeros, as
  constant columns) on the old code: they are staged times an exact power of two, and give lstsq's answer."""
  x, y, w = _data()
  x = np.c_[x, x[:, 0]]  # collinear too: the minimum-norm answer
  expected = np.linalg.lstsq(np.c_[x, np.ones(len(x))], y, rcond=None)[0]
  fit = fz.LinearRegression().fit(x * c, y)
  np.testing.assert_allclose(fit.coef_ * c, expected[:-1], rtol=1e-9, atol=1e-12)
  assert fit.intercept_ == pytest.approx(expected[-1], rel=1e-9)
  lasso = fz.Lasso(alpha=0.05 * c, tol=1e-12).fit(x * c, y)
  np.testing.assert_allclose(lasso.coef_ * c, fz.Lasso(alpha=0.05, tol=1e-12).fit(x, y).coef_, rtol=1e-8, atol=1e-10)


def test_a_cv_classifier_that_stops_short_warns():
  """max_iter=1 chose another C, silently, on the old code: each fit that does not converge is counted."""
  from sklearn.exceptions import ConvergenceWarning

  x, y, _ = _data()
  with pytest.warns(ConvergenceWarning, match=r"LinearClassifierCV: \d+ of 16 fits did not converge in max_iter=1"):
    fz.LinearClassifierCV(Cs=3, cv=5, max_iter=1).fit(x, (y > np.median(y)).astype(int))


def test_elastic_net_cv_on_a_rescaled_target_picks_scikit_learns_alpha():
  """On diabetes with y / 1000, ElasticNetCV picked alpha 6.1e-5 where scikit-learn picks 4.9e-6 (coefficients
  65% off): its fits stopped on an absolute tolerance."""
  from sklearn.datasets import load_diabetes
  from sklearn.linear_model import ElasticNetCV

  x, y = load_diabetes(return_X_y=True)
  theirs = ElasticNetCV(cv=5).fit(x, y / 1000)
  ours = fz.ElasticNetCV(cv=5).fit(x, y / 1000)
  assert ours.alpha_ == pytest.approx(theirs.alpha_, rel=1e-9)
  # (both at tol 1e-4: 0.2% apart; it was 65%)
  np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=0, atol=1e-2 * np.max(np.abs(theirs.coef_)))


def test_a_classifier_on_features_near_1e_9_converges_to_its_optimum():
  """The Newton damping was relative to the penalty's curvature (l2 / scale², ~1e18 here), which swamped the
  intercept's: LinearClassifierCV's fits never converged and its coefficients were 16x off. Where the penalty
  dominates, the optimum is C Xᵀ(y - ȳ) to first order (here exact to rounding)."""
  import warnings

  from sklearn.datasets import load_breast_cancer
  from sklearn.preprocessing import StandardScaler

  x, y = load_breast_cancer(return_X_y=True)
  x = StandardScaler().fit_transform(x) * 1e-9
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # no ConvergenceWarning
    fit = fz.LinearClassifier(C=1e-4, tol=1e-12).fit(x, y)
    cv = fz.LinearClassifierCV(Cs=[1e-4, 1e-3], cv=3).fit(x, y)
  first_order = 1e-4 * x.T @ (y - y.mean())
  np.testing.assert_allclose(fit.coef_[0], first_order, rtol=1e-9)
  assert fit.intercept_[0] == pytest.approx(np.log(y.mean() / (1 - y.mean())), rel=1e-9)
  assert cv.n_iter_.max() < 10
