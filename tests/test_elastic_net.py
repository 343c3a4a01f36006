"""L1 and elastic-net least squares by coordinate descent on the Gram matrix: scikit-learn's optimum and its
zeros, on its scale; many targets; a path of penalties x folds as one solve sharing each fold's Gram matrix."""

import warnings

import numpy as np
import pytest
from conftest import COMPILATIONS
from sklearn.datasets import load_diabetes
from sklearn.exceptions import ConvergenceWarning

from flaxzoo.sklearn import ElasticNet, ElasticNetCV, Lasso
from flaxzoo.trainers import solvers


def objective(coef, intercept, x, y, weight, alpha, l1_ratio):
  """scikit-learn's ElasticNet objective (weights rescaled to sum to n, as its fit does)."""
  residual = y - x @ coef - intercept
  return (np.average(residual**2, weights=weight) / 2 + alpha * l1_ratio * np.abs(coef).sum()
          + alpha * (1 - l1_ratio) / 2 * coef @ coef)


def diabetes(badly_scaled=False):
  x, y = load_diabetes(return_X_y=True)
  if badly_scaled:  # raw-looking columns: scales 1e-3 to 1e3, off centre
    x = x * np.logspace(-3, 3, x.shape[1]) + np.linspace(-50, 50, x.shape[1])
  return x, y, np.random.default_rng(1).uniform(0.2, 3.0, len(y))


@pytest.mark.parametrize(("alpha", "l1_ratio"), [(0.01, 0.5), (0.1, 1.0), (1.0, 0.2), (0.002, 0.9)])
@pytest.mark.parametrize("badly_scaled", [False, True], ids=["standardised", "badly-scaled"])
def test_elastic_net_reaches_scikit_learns_optimum_and_its_zeros(alpha, l1_ratio, badly_scaled):
  from sklearn.linear_model import ElasticNet as Reference

  x, y, weight = diabetes(badly_scaled)
  reference = Reference(alpha=alpha, l1_ratio=l1_ratio, tol=1e-14, max_iter=1_000_000)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    reference.fit(x, y, sample_weight=weight)
  ours = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, tol=1e-10, max_iter=100_000).fit(x, y, sample_weight=weight)
  best = objective(reference.coef_, reference.intercept_, x, y, weight, alpha, l1_ratio)
  assert abs(objective(ours.coef_, ours.intercept_, x, y, weight, alpha, l1_ratio) - best) <= 1e-6 * best
  scale = np.abs(reference.coef_).max()
  np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=0, atol=1e-4 * scale)
  np.testing.assert_array_equal(ours.coef_ == 0.0, reference.coef_ == 0.0)  # exact zeros, the same ones
  # Before convergence: one sweep from zero, warned, between the null model and the optimum.
  with pytest.warns(ConvergenceWarning):
    early = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, tol=1e-10, max_iter=1).fit(x, y, sample_weight=weight)
  null = objective(np.zeros(x.shape[1]), np.average(y, weights=weight), x, y, weight, alpha, l1_ratio)
  assert best <= objective(early.coef_, early.intercept_, x, y, weight, alpha, l1_ratio) < null


def test_lasso_is_the_elastic_net_of_ratio_1_and_a_large_alpha_zeroes_everything():
  from sklearn.linear_model import Lasso as Reference

  x, y, _ = diabetes()
  ours, reference = Lasso(alpha=0.5, tol=1e-10).fit(x, y), Reference(alpha=0.5, tol=1e-12).fit(x, y)
  np.testing.assert_allclose(ours.coef_, reference.coef_, atol=1e-6)
  assert np.count_nonzero(ours.coef_) == np.count_nonzero(reference.coef_) < x.shape[1]
  empty = Lasso(alpha=1e4).fit(x, y)
  assert np.all(empty.coef_ == 0.0) and empty.intercept_ == pytest.approx(y.mean())


def test_several_targets_are_each_their_own_elastic_net():
  x, y, _ = diabetes()
  two = np.c_[y, -2 * y + 100 + x[:, 0] * 300]
  both = ElasticNet(alpha=0.05, l1_ratio=0.7, tol=1e-10).fit(x, two)
  for t in range(2):
    alone = ElasticNet(alpha=0.05, l1_ratio=0.7, tol=1e-10).fit(x, two[:, t])
    np.testing.assert_allclose(both.coef_[t], alone.coef_, atol=1e-8)
    assert both.intercept_[t] == pytest.approx(alone.intercept_, rel=1e-10)


def test_a_path_of_penalties_over_folds_is_one_solve_with_a_gram_matrix_a_fold():
  """5 folds x 20 penalties: 100 models, 5 Gram matrices (models with the same weights share theirs), each
  model the same as its own solve."""
  x, y, _ = diabetes(badly_scaled=True)
  folds = np.arange(len(y)) % 5
  masks = np.stack([(folds != f).astype(np.float64) for f in range(5)])
  alphas = np.logspace(0, -3, 20)
  weights = np.repeat(masks, len(alphas), axis=0)
  l2 = l1 = np.tile(alphas, 5)  # ElasticNet(alpha, l1_ratio=0.5): l2 = l1 = alpha (the core's scale)
  data = solvers.stage(x, y, "mse")
  assert len(solvers.chunked_weights(data, weights).groups) == 5
  path = solvers.solve(data, weights, l2, tol=1e-10, max_iter=100_000, l1=l1)
  assert path.converged.all() and path.solver == "coordinate_descent"
  for j in (0, 27, 99):
    alone = solvers.solve(data, weights[j:j + 1], l2[j:j + 1], tol=1e-10, max_iter=100_000, l1=l1[j:j + 1])
    np.testing.assert_allclose(path.coef[j], alone.coef[0], rtol=1e-9, atol=1e-12)


def test_models_with_distinct_weights_in_any_order_are_each_their_own_fit():
  """Models that share no weights: each its own Gram matrix, whatever order the weights come in."""
  x, y, _ = diabetes(badly_scaled=True)
  weights = np.random.default_rng(2).uniform(0.0, 2.0, size=(4, len(y)))
  data = solvers.stage(x, y, "mse")
  together = solvers.solve(data, weights, [0.1, 0.01, 0.3, 0.05], tol=1e-12, max_iter=100_000, l1=[0.2] * 4)
  for j in range(4):
    alone = solvers.solve(data, weights[j:j + 1], [[0.1, 0.01, 0.3, 0.05][j]], tol=1e-12, max_iter=100_000, l1=[0.2])
    np.testing.assert_allclose(together.coef[j], alone.coef[0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("l1_ratio", [0.5, [0.2, 0.7, 1.0]], ids=["one-ratio", "three-ratios"])
def test_elastic_net_cv_chooses_as_scikit_learn_in_one_program(l1_ratio):
  """scikit-learn's alpha grid, held-out MSE path, choice and refit (weighted rows, raw features); every
  fold x ratio x alpha and the refits in one program, and a second fit of new folds and alphas in none."""
  from sklearn.linear_model import ElasticNetCV as Reference
  from sklearn.model_selection import KFold

  x, y, weight = diabetes(badly_scaled=True)
  folds = KFold(5, shuffle=True, random_state=0)
  with COMPILATIONS as compiled:
    ours = ElasticNetCV(l1_ratio=l1_ratio, cv=folds, tol=1e-10, max_iter=100_000).fit(x, y, sample_weight=weight)
  assert compiled.count <= 3, compiled.count
  reference = Reference(l1_ratio=l1_ratio, cv=folds, tol=1e-12, max_iter=1_000_000)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    reference.fit(x, y, sample_weight=weight)
  np.testing.assert_allclose(ours.alphas_, reference.alphas_, rtol=1e-10)
  np.testing.assert_allclose(ours.mse_path_, reference.mse_path_, rtol=1e-6)
  assert (ours.alpha_, ours.l1_ratio_) == (pytest.approx(reference.alpha_), reference.l1_ratio_)
  np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=0, atol=1e-6 * np.abs(reference.coef_).max())
  np.testing.assert_array_equal(ours.coef_ == 0.0, reference.coef_ == 0.0)
  with COMPILATIONS as second:  # other folds, other alphas (as many), other weights, tolerance, sweeps
    ElasticNetCV(l1_ratio=l1_ratio, cv=KFold(5), eps=1e-2, tol=1e-8, max_iter=5000).fit(x, y)
  assert second.count == 0


def test_models_mixed_from_parts_equal_their_materialised_weights_on_every_gram_path():
  """`mix`: model k's weights are Σ_g mix[k, g] weights[g]. Disjoint parts on float64 rows sum on the host;
  overlapping parts, and float32 rows, take the device pass: each the same fit as the weights written out."""
  x, y, weight = diabetes(badly_scaled=True)
  rng = np.random.default_rng(4)
  disjoint = np.stack([np.where(np.arange(len(y)) % 3 == g, weight, 0.0) for g in range(3)])
  overlapping = rng.uniform(0.0, 1.0, size=(3, len(y))) * (rng.random((3, len(y))) < 0.7)
  mix = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 1.0, 1.0]])
  l2, l1 = [0.01, 0.1, 0.02], [0.05, 0.0, 0.3]
  for parts in (disjoint, overlapping):
    for rows in (x, x.astype(np.float32)):
      data = solvers.stage(rows, y, "mse")
      mixed = solvers.solve(data, parts, l2, tol=1e-12, max_iter=100_000, l1=l1, mix=mix)
      written = solvers.solve(data, mix @ parts, l2, tol=1e-12, max_iter=100_000, l1=l1)
      tolerance = 1e-9 if rows.dtype == np.float64 else 1e-4
      np.testing.assert_allclose(mixed.coef, written.coef, rtol=tolerance, atol=tolerance * np.abs(written.coef).max())
  data = solvers.stage(x, y, "mse")
  started = solvers.solve(data, disjoint, l2, l1=l1, mix=mix, start=(np.zeros((3, x.shape[1], 1)), np.zeros((3, 1))))
  np.testing.assert_array_equal(started.coef, solvers.solve(data, disjoint, l2, l1=l1, mix=mix).coef)  # (exact: no start)
  with pytest.raises(ValueError, match="weights must be finite and >= 0"):
    solvers.solve(data, -disjoint, l2, mix=mix)
  with pytest.raises(ValueError, match="mix must be"):
    solvers.solve(solvers.stage(x, y, "mse"), disjoint, l2, mix=mix[:, :2])
