"""Inputs a hostile user tries that gave a traceback on the old code: each is fitted as scikit-learn fits it,
or refused in one line naming the parameter."""

import numpy as np
import pytest

from flaxzoo import sklearn as fz


def _rows(n=200, d=3, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d))
  return x, x[:, 0] + 0.5 * x[:, 1] + 0.3 * rng.standard_t(2, size=n)


@pytest.mark.parametrize("estimator", [fz.LinearClassifier(), fz.LinearClassifierCV(Cs=2, cv=3)],
                         ids=["LinearClassifier", "LinearClassifierCV"])
def test_int8_labels_far_apart_are_two_classes(estimator):
  """int8 labels -100 and 100 overflowed int8 when counted (`y - low`)."""
  x, y = _rows()
  labels = np.where(y > 0, 100, -100).astype(np.int8)
  fitted = estimator.fit(x, labels)
  assert fitted.classes_.tolist() == [-100, 100]
  same = type(estimator)(**estimator.get_params()).fit(x, (labels > 0).astype(int))
  np.testing.assert_array_equal(fitted.coef_, same.coef_)
  assert set(fitted.predict(x)) <= {-100, 100}


@pytest.mark.parametrize("cls", [fz.LinearClassifier, fz.LinearClassifierCV])
def test_class_weights_that_zero_every_class_are_one_line(cls):
  x, y = _rows()
  with pytest.raises(ValueError, match=r"class_weight \{0: 0, 1: 0\} gives every class present a weight of 0"):
    cls(class_weight={0: 0, 1: 0}).fit(x, (y > 0).astype(int))


def test_huber_with_a_target_near_1e150_is_the_rescaled_fit():
  """y near 1e150 overflowed the Hessian (r² / σ³): y is divided by an exact power of two first."""
  x, y = _rows()
  c = 2.0**500  # ~3e150, exact
  fit = fz.HuberRegressor(alpha=1e-3, tol=1e-10).fit(x, y)
  scaled = fz.HuberRegressor(alpha=1e-3 / c, tol=1e-10).fit(x, y * c)
  np.testing.assert_allclose(scaled.coef_ / c, fit.coef_, rtol=1e-12)
  assert scaled.scale_ / c == pytest.approx(fit.scale_, rel=1e-12)
  assert scaled.n_iter_ == fit.n_iter_


def test_an_l1_classifier_of_many_parameters_fits_under_auto():
  """Above 400 parameters `auto` chose L-BFGS for L1 and then refused it, telling the user to use 'auto'."""
  x, _ = _rows(n=300, d=450, seed=1)
  labels = (x[:, 0] + x[:, 1] > 0).astype(int)
  fit = fz.LinearClassifier(C=0.1, l1_ratio=1.0).fit(x, labels)
  assert 0 < np.count_nonzero(fit.coef_) < 50
  with pytest.raises(ValueError, match="not lbfgs"):
    fz.LinearClassifier(C=0.1, l1_ratio=1.0, solver="lbfgs").fit(x, labels)


def test_a_swapped_warm_start_is_a_fresh_fit_and_partial_fit_names_the_shapes():
  """A warm start from a transposed coef_ was reshaped into a scrambled start (regression) or broke inside the
  solver (a classifier with another intercept's shape): a fit starts afresh, partial_fit says why it cannot go on."""
  x, y = _rows()
  targets = np.c_[y, -y]
  labels = (y > 0).astype(int)
  for estimator, t in ((fz.LinearRegression(warm_start=True), targets), (fz.LinearClassifier(warm_start=True), labels)):
    estimator.fit(x, t)
    fresh = type(estimator)(**estimator.get_params()).fit(x, t).coef_
    estimator.coef_, estimator.intercept_ = estimator.coef_.T.copy(), np.zeros(3)
    np.testing.assert_array_equal(estimator.fit(x, t).coef_, fresh)
  for estimator, t in ((fz.LinearRegression(solver="optax"), targets), (fz.LinearClassifier(solver="optax"), labels)):
    estimator.partial_fit(x, t, **({"classes": [0, 1]} if t is labels else {}))
    estimator.coef_ = estimator.coef_.T.copy()
    with pytest.raises(ValueError, match=r"partial_fit continues from coef_ \(3, \d\)"):
      estimator.partial_fit(x, t)


def test_nan_or_inf_anywhere_in_a_large_x_is_scikit_learns_refusal_and_huge_finite_values_fit():
  # 131072 x 32 entries: X's check sums a share of the rows on each core (`checks.check_finite`)
  import sklearn
  from sklearn.utils.validation import _assert_all_finite

  from flaxzoo.sklearn.checks import check_finite
  from flaxzoo.trainers.host_blas import PARALLEL_ENTRIES

  rng = np.random.default_rng(0)
  x = rng.standard_normal((131072, 32))
  assert x.size >= PARALLEL_ENTRIES
  y = x[:, 0] + rng.standard_normal(len(x))
  for row, bad in ((0, np.nan), (65535, np.inf), (65536, -np.inf), (131071, np.nan)):  # each share's ends
    x_bad = x.copy()
    x_bad[row, 5] = bad
    with pytest.raises(ValueError) as theirs:
      _assert_all_finite(x_bad, input_name="X", estimator_name="PoissonRegressor")
    with pytest.raises(ValueError) as ours:
      fz.PoissonRegressor().fit(x_bad, np.exp(y / 4))
    assert str(ours.value) == str(theirs.value)
    # least squares reads X's finiteness from its Gram matrix (host or device, weighted, float32, two targets)
    weight = np.arange(len(y)) % 3 + 1.0
    for rows, estimator, target, kw in ((x_bad, fz.LinearRegression(), y, {}), (x_bad, fz.LinearRegression(alpha=2.0), y, {}),
                                        (x_bad, fz.LinearRegression(), y, {"sample_weight": weight}),
                                        (x_bad.astype(np.float32), fz.LinearRegression(), np.c_[y, -y], {})):
      with pytest.raises(ValueError) as theirs:
        _assert_all_finite(rows, input_name="X", estimator_name="LinearRegression")
      with pytest.raises(ValueError) as ours:
        estimator.fit(rows, target, **kw)
      assert str(ours.value) == str(theirs.value)
  x_bad = np.asfortranarray(x)  # (a column-major copy: each share's rows are strided)
  x_bad[70_000, 1] = np.inf
  with pytest.raises(ValueError, match="Input X contains infinity"):
    fz.LinearRegression().fit(x_bad, y)
  # finite entries whose sum overflows float64 are finite: the check passes, as scikit-learn's does
  huge = np.full((131072, 32), 1e300)
  check_finite(huge, "LinearRegression")
  with sklearn.config_context(assume_finite=True):  # scikit-learn's switch: no check
    check_finite(np.full((131072, 32), np.nan), "LinearRegression")
  fitted = fz.LinearRegression().fit(x, y)
  np.testing.assert_allclose(fitted.predict(x), x @ fitted.coef_ + fitted.intercept_)
  with pytest.raises(ValueError, match="Input X contains NaN"):
    fitted.predict(np.where(np.arange(len(x))[:, None] == 100_000, np.nan, x))
