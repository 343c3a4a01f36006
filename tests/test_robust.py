"""Huber and quantile regression, exact: scikit-learn's optimum (its own objective code, driven to the end),
the zeros of quantile's L1 penalty, badly scaled features, weights, before convergence."""

import numpy as np
import pytest
from scipy import optimize
from sklearn.datasets import load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model._huber import _huber_loss_and_gradient

from flaxzoo.sklearn import HuberRegressor, QuantileRegressor
from flaxzoo.trainers import robust


def diabetes(badly_scaled=False, outliers=False):
  x, y = load_diabetes(return_X_y=True)
  if badly_scaled:  # raw-looking columns: scales 1e-3 to 1e3, off centre
    x = x * np.logspace(-3, 3, x.shape[1]) + np.linspace(-50, 50, x.shape[1])
  if outliers:
    y = y.copy()
    y[::20] += 400
  return x, y, np.random.default_rng(1).uniform(0.2, 3.0, len(y))


def huber_optimum(x, y, weight, epsilon, alpha):
  """scikit-learn's Huber objective (its own function) minimised by L-BFGS-B to the end, from our answer's
  neighbourhood-free start (zeros, scale 1), in standardised features for scipy's sake."""
  shift, scale = x.mean(axis=0), x.std(axis=0)

  def objective(p):  # coefficients in standardised features; the penalty on the raw ones
    raw = np.concatenate([p[:-2] / scale, [p[-2] - shift @ (p[:-2] / scale), p[-1]]])
    value, grad = _huber_loss_and_gradient(raw, x, y, epsilon, alpha, weight)
    g = np.concatenate([grad[:-2] / scale - grad[-2] * shift / scale, grad[-2:]])
    return value, g

  start = np.zeros(x.shape[1] + 2)
  start[-1] = 1.0
  bounds = [(None, None)] * (x.shape[1] + 1) + [(1e-10, None)]
  best = optimize.minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds,
                           options={"maxiter": 100_000, "ftol": 0, "gtol": 1e-12, "maxcor": 50})
  p = best.x
  coef = p[:-2] / scale
  return coef, p[-2] - shift @ coef, p[-1], best.fun / weight.sum()


def huber_objective(fit, x, y, weight, epsilon, alpha):
  coef, intercept, scale = fit
  value, _ = _huber_loss_and_gradient(np.concatenate([coef, [intercept, scale]]), x, y, epsilon, alpha, weight)
  return value / weight.sum()


@pytest.mark.parametrize(("epsilon", "alpha"), [(1.35, 1e-4), (1.1, 1.0), (2.0, 0.01)])
@pytest.mark.parametrize("badly_scaled", [False, True], ids=["standardised", "badly-scaled"])
def test_huber_reaches_scikit_learns_optimum(epsilon, alpha, badly_scaled):
  x, y, weight = diabetes(badly_scaled, outliers=True)
  coef, intercept, scale, best = huber_optimum(x, y, weight, epsilon, alpha)
  ours = HuberRegressor(epsilon=epsilon, alpha=alpha, tol=1e-9).fit(x, y, sample_weight=weight)
  value = huber_objective((ours.coef_, ours.intercept_, ours.scale_), x, y, weight, epsilon, alpha)
  assert value <= best + 1e-6 * abs(best)
  np.testing.assert_allclose(ours.coef_, coef, rtol=1e-4, atol=1e-4 * np.abs(coef).max())
  assert ours.scale_ == pytest.approx(scale, rel=1e-4)
  assert np.array_equal(ours.outliers_, np.abs(y - x @ ours.coef_ - ours.intercept_) > ours.scale_ * epsilon)
  assert 0 < ours.outliers_.sum() < len(y)  # the outliers put in are found, not every row


def test_huber_before_convergence_warns_and_lies_between_the_start_and_the_optimum():
  x, y, weight = diabetes(outliers=True)
  *_, best = huber_optimum(x, y, weight, 1.35, 1e-4)
  start = robust.huber(x, y, weight, max_iter=1, tol=0.0)
  with pytest.warns(ConvergenceWarning):
    one = HuberRegressor(max_iter=1, tol=0.0).fit(x, y, sample_weight=weight)
  value = huber_objective((one.coef_, one.intercept_, one.scale_), x, y, weight, 1.35, 1e-4)
  assert best < value and one.n_iter_ == 1 and start.n_iter == 1
  zero = huber_objective((np.zeros(x.shape[1]), np.median(y), np.mean(np.abs(y - np.median(y)))), x, y, weight,
                         1.35, 1e-4)
  assert value < zero


def pinball_objective(coef, intercept, x, y, weight, q, alpha):
  r = y - x @ coef - intercept
  return np.average(np.where(r >= 0, q * r, (q - 1) * r), weights=weight) + alpha * np.abs(coef).sum()


@pytest.mark.parametrize(("q", "alpha"), [(0.5, 0.0), (0.9, 0.05), (0.2, 0.5), (0.5, 0.01), (0.1, 0.001)])
@pytest.mark.parametrize("badly_scaled", [False, True], ids=["standardised", "badly-scaled"])
def test_quantile_reaches_scikit_learns_optimum_and_its_zeros(q, alpha, badly_scaled):
  from sklearn.linear_model import QuantileRegressor as Reference

  x, y, weight = diabetes(badly_scaled)
  reference = Reference(quantile=q, alpha=alpha).fit(x, y, sample_weight=weight)  # HiGHS: an exact vertex
  ours = QuantileRegressor(quantile=q, alpha=alpha).fit(x, y, sample_weight=weight)
  best = pinball_objective(reference.coef_, reference.intercept_, x, y, weight, q, alpha)
  assert pinball_objective(ours.coef_, ours.intercept_, x, y, weight, q, alpha) <= best * (1 + 1e-6)
  np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-4, atol=1e-4 * max(np.abs(reference.coef_).max(), 1))
  assert np.array_equal(ours.coef_ == 0.0, reference.coef_ == 0.0)  # exactly 0.0, where scikit-learn's are
  # The q-quantile: a weighted fraction q of the rows lies on or below the fit (the LP's optimality).
  below = np.average(y <= ours.predict(x) + 1e-9, weights=weight)
  assert below >= q - 1e-9 and np.average(y < ours.predict(x) - 1e-9, weights=weight) <= q + 1e-9


def test_quantile_before_convergence_warns():
  x, y, weight = diabetes()
  with pytest.warns(ConvergenceWarning):
    fit = QuantileRegressor(alpha=0.01, max_iter=2).fit(x, y, sample_weight=weight)
  assert fit.n_iter_ == 2 and np.all(np.isfinite(fit.coef_))


def test_weights_of_zero_drop_rows_and_integer_weights_repeat_them():
  x, y, _ = diabetes()
  counts = np.random.default_rng(2).integers(0, 3, len(y))
  repeated = np.repeat(np.arange(len(y)), counts)
  for estimator in (HuberRegressor(tol=1e-10), QuantileRegressor(quantile=0.7, alpha=0.01)):
    weighted = estimator.fit(x, y, sample_weight=counts.astype(float)).coef_.copy()
    np.testing.assert_allclose(estimator.fit(x[repeated], y[repeated]).coef_, weighted, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("bad", [{"epsilon": 0.5}, {"alpha": -1.0}, {"max_iter": 0}, {"tol": np.inf}])
def test_huber_refuses_bad_parameters_in_one_line(bad):
  x, y, _ = diabetes()
  with pytest.raises(ValueError, match=next(iter(bad))):
    HuberRegressor(**bad).fit(x, y)


@pytest.mark.parametrize("bad", [{"quantile": 1.0}, {"quantile": 0.0}, {"alpha": np.nan}])
def test_quantile_refuses_bad_parameters_in_one_line(bad):
  x, y, _ = diabetes()
  with pytest.raises(ValueError, match=next(iter(bad))):
    QuantileRegressor(**bad).fit(x, y)


def test_huber_whose_optimum_has_no_scale_ends_at_least_absolute_deviations():
  """More rows off an exact fit of a few than ε² - 1 times their number: the objective falls all the way to
  σ = 0, where it is `2ε mean|r| + alpha |w|² / S`; the fit ends there (σ at its floor), converged, at least
  as low as scikit-learn's, on integer targets and on rows a plane fits exactly (scikit-learn's own checks)."""
  from sklearn.linear_model import HuberRegressor as Reference

  rng = np.random.RandomState(0)
  x, y = rng.uniform(size=(20, 3)), rng.randint(0, 3, 20).astype(float)
  plane_x = np.repeat([[1.0, 3.0], [2.0, 1.0], [3.0, 3.0], [4.0, 1.0]], 4, axis=0)
  plane_y = 2.5 - 0.5 * plane_x[:, 1]
  for features, targets in ((x, y), (plane_x, plane_y)):
    weight = np.ones(len(targets))
    weight[0] = 10.0
    ours = HuberRegressor().fit(features, targets, sample_weight=weight)  # (a ConvergenceWarning fails here)
    assert ours.scale_ <= 1e-13 * max(1.0, np.abs(targets).max())
    reference = Reference().fit(features, targets, sample_weight=weight)
    value = huber_objective((ours.coef_, ours.intercept_, ours.scale_), features, targets, weight, 1.35, 1e-4)
    best = huber_objective((reference.coef_, reference.intercept_, reference.scale_), features, targets, weight,
                           1.35, 1e-4)
    assert value <= best + 1e-12
  np.testing.assert_allclose(ours.predict(plane_x), plane_y, atol=1e-12)  # the exact fit


def test_the_robust_brain_age_experiments_reach_their_losses_exact_optimum(tmp_path, data_dir):
  """`flaxzoo train brain_age_gm_median` is `QuantileRegressor(alpha=0)` (scikit-learn's, HiGHS) on its split to
  1e-6, and `brain_age_gm_huber` the optimum of its Huber loss (SciPy's BFGS at gtol 1e-12 from the
  least-squares line) to 1e-6: each by its exact solver (they were 30,000 Adam steps), as `flaxzoo list` says."""
  import json

  from conftest import run_cli
  from scipy.optimize import minimize
  from sklearn.linear_model import QuantileRegressor as Reference

  from flaxzoo.datasets.sources import load_data

  data = load_data("brain_age", features="gm", standardize=False, data_dir=data_dir)
  x, y = (v.astype(np.float64) for v in data.splits["train"])
  listed = run_cli("list").stdout
  for name, solver in (("brain_age_gm_median", "interior_point"), ("brain_age_gm_huber", "newton")):
    assert f"solver {solver}" in next(line for line in listed.splitlines() if name in line)
    result = run_cli("train", name, "--workdir", tmp_path / name, "--quiet", "--data-dir", data_dir)
    assert result.returncode == 0, result.stderr

  def params(name):
    results = json.loads((tmp_path / name / "results.json").read_text())
    return np.array([results["params"]["linear/kernel"][0][0], results["params"]["linear/bias"][0]])

  exact = Reference(quantile=0.5, alpha=0.0).fit(x, y)
  np.testing.assert_allclose(params("brain_age_gm_median"), [exact.coef_[0], exact.intercept_], rtol=1e-6)

  def huber_loss(theta):
    r = np.abs(y - (x[:, 0] * theta[0] + theta[1]))
    return np.mean(np.where(r <= 0.1, r**2 / 2, 0.1 * (r - 0.05)))

  start = np.linalg.lstsq(np.c_[x, np.ones(len(y))], y, rcond=None)[0]
  scipy = minimize(huber_loss, start, method="BFGS", options={"gtol": 1e-12})
  np.testing.assert_allclose(params("brain_age_gm_huber"), scipy.x, rtol=1e-6)
  assert huber_loss(params("brain_age_gm_huber")) <= scipy.fun * (1 + 1e-7)


def test_a_constant_column_is_not_a_second_intercept():
  """A constant feature (its weighted spread only rounding): quantile regression still equals HiGHS's vertex
  (with alpha 0 and 0.01), and Huber converges with that coefficient 0 (the intercept takes the constant)."""
  from sklearn.linear_model import QuantileRegressor as Reference

  rng = np.random.default_rng(0)
  x = np.c_[rng.normal(size=(100, 2)), np.full(100, 3.7), rng.normal(size=100)]
  y = rng.normal(size=100)
  weight = rng.uniform(0.2, 3.0, 100)
  for alpha, q in ((0.01, 0.5), (0.0, 0.9)):
    ours = QuantileRegressor(quantile=q, alpha=alpha).fit(x, y, sample_weight=weight)
    reference = Reference(quantile=q, alpha=alpha).fit(x, y, sample_weight=weight)
    best = pinball_objective(reference.coef_, reference.intercept_, x, y, weight, q, alpha)
    assert pinball_objective(ours.coef_, ours.intercept_, x, y, weight, q, alpha) <= best * (1 + 1e-9)
    assert ours.coef_[2] == 0.0
  huber = HuberRegressor(tol=1e-9).fit(x, y, sample_weight=weight)  # (a ConvergenceWarning fails here)
  assert abs(huber.coef_[2]) <= 1e-12
