"""Wide data (more coefficients than rows): Newton's systems solved in the rows' size give the dense answer,
and HuberRegressor on 200 x 2000 reaches (below) the optimum scikit-learn's own objective finds."""

import warnings

import numpy as np
import pytest

from flaxzoo.trainers.wide_systems import solve_bordered


@pytest.mark.parametrize("border", [0, 1, 2])
def test_the_bordered_woodbury_solve_is_the_dense_solve(border):
  rng = np.random.default_rng(border)
  n, p = 30, 120
  z = np.c_[rng.normal(size=(n, p - 1)), np.ones(n)]
  d = rng.uniform(0, 1, n)
  d[:4] = 0  # rows without curvature (Huber's outliers)
  own = np.r_[np.ones(p - 1, bool), False]  # the intercept has no penalty of its own: in the border
  diagonal = np.where(own, rng.uniform(1e-3, 1, p), 1e-9)
  edge = rng.normal(size=(n, border)) * (d > 0)[:, None]
  corner = np.diag(rng.uniform(10, 20, border))
  matrix = np.block([[z.T @ (d[:, None] * z) + np.diag(diagonal), z.T @ edge], [edge.T @ z, corner]])
  rhs = rng.normal(size=p + border)
  np.testing.assert_allclose(solve_bordered(z, d, diagonal, own, edge, corner, rhs), np.linalg.solve(matrix, rhs),
                             rtol=1e-7, atol=1e-9)


def test_huber_on_wide_data_reaches_scikit_learns_optimum():
  """200 x 2000 took 103 s (dense p³ systems, every iteration to max_iter); scikit-learn's L-BFGS-B driven to
  tol 1e-12 stops above flaxzoo's objective."""
  from sklearn.linear_model import HuberRegressor
  from sklearn.linear_model._huber import _huber_loss_and_gradient

  from flaxzoo.sklearn import HuberRegressor as Ours

  rng = np.random.default_rng(0)
  x = rng.normal(size=(200, 2000))
  y = x[:, :5] @ np.ones(5) + rng.standard_t(2, 200)
  ours = Ours().fit(x, y)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    theirs = HuberRegressor(max_iter=100_000, tol=1e-12).fit(x, y)

  def objective(m):
    return _huber_loss_and_gradient(np.r_[m.coef_, m.intercept_, m.scale_], x, y, 1.35, 1e-4, np.ones(200))[0]

  assert ours.n_iter_ < 100
  assert objective(ours) <= objective(theirs) * (1 + 1e-6)
