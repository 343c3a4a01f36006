"""A covariance on a fit's own rows takes the Fisher sum the fit already summed (least squares' Gram from its
normal equation, a GLM's from the covariance `fit` keeps), checked by the rows' fingerprint
(`solvers._grams.marked_ends`); any other rows, weights or coefficients get a sum of their own (issue 33's
speed rows: one Gram a block of a table's pass, not two)."""

from __future__ import annotations

import numpy as np

from flaxzoo.sklearn import LinearRegression, PoissonRegressor


def test_least_squares_takes_its_fits_gram_for_the_fits_rows_only():
  """A least-squares covariance on the fit's own rows takes the Gram the fit summed (`_fit_gram_`, checked by
  the rows' fingerprint: no second Gram in its pass); rows changed after the fit (a column shuffled as a
  permutation test does, a column rolled by one block of rows, one entry nudged by 1e-9 of its column's spread,
  the rows in another order) get their own, to the bit what the rows alone give."""
  from flaxzoo.trainers.covariance import covariance
  from flaxzoo.trainers.solvers._grams import HOST_BLOCK_ROWS

  rng = np.random.default_rng(21)
  n = 5 * HOST_BLOCK_ROWS + 123  # (blocks on each core, the last one short)
  x = rng.normal(size=(n, 4)) * [1e-3, 1.0, 1e3, 2.0] + [0.0, 5.0, 0.0, -3.0]
  y = 1.0 + x @ [200.0, -0.5, 1e-3, 0.3] + rng.normal(size=n) * (0.5 + np.abs(x[:, 1] - 5.0))
  model = LinearRegression().fit(x, y)
  fitted = model._fit_gram_
  alone = lambda rows, cov_type: covariance(rows, y, "mse", model.coef_, model.intercept_, None, cov_type).matrix
  for cov_type in ("nonrobust", "HC1", "HC3"):
    spread = np.sqrt(np.outer(np.diag(alone(x, cov_type)), np.diag(alone(x, cov_type))))
    np.testing.assert_allclose(model.covariance_matrix(x, y, cov_type=cov_type) / spread, alone(x, cov_type) / spread,
                               rtol=0, atol=1e-12)
  # Taken where the fingerprint is the fit's, whatever the Gram says (a Gram of twice the rows: half the variance)
  doubled = {**fitted, "gram": 2 * fitted["gram"]}
  taken = covariance(x, y, "mse", model.coef_, model.intercept_, cov_type="HC1", fitted=doubled).matrix
  np.testing.assert_allclose(taken, alone(x, "HC1") / 4, rtol=1e-9)
  shuffled, rolled, nudged = x.copy(), x.copy(), x.copy()
  shuffled[:, 2] = rng.permutation(shuffled[:, 2])
  rolled[:, 1] = np.roll(rolled[:, 1], HOST_BLOCK_ROWS)
  nudged[7, 0] += 1e-9 * 1e-3
  order = rng.permutation(n)
  for rows, target in ((shuffled, y), (rolled, y), (nudged, y), (x[order], y[order])):
    for cov_type in ("nonrobust", "HC1"):
      expected = covariance(rows, target, "mse", model.coef_, model.intercept_, None, cov_type).matrix
      assert np.array_equal(model.covariance_matrix(rows, target, cov_type=cov_type), expected)
      ignored = covariance(rows, target, "mse", model.coef_, model.intercept_, cov_type=cov_type, fitted=doubled)
      assert np.array_equal(ignored.matrix, expected)


def test_a_glm_covariance_takes_its_fits_fisher_sum_for_the_same_rows_weights_and_coefficients():
  """The Poisson fit's own pass (the covariance `predict_interval` reads) keeps its Fisher sum and its rows'
  fingerprint (targets and weights with the rows); a table on the same rows, weights, offset and coefficients
  takes it, to the bit what its own pass sums; other weights, rows or coefficients get their own."""
  from flaxzoo.trainers.covariance import covariance
  from flaxzoo.trainers.offsets import absorbed

  rng = np.random.default_rng(22)
  n = 9000
  x = rng.normal(size=(n, 3)) * [1.0, 1e-2, 30.0]
  offset = rng.normal(size=n) * 0.2
  y = rng.poisson(np.exp(0.3 + x @ [0.2, 10.0, 0.01] + offset)).astype(np.float64)
  weight = rng.uniform(0.5, 2.0, n)
  groups = rng.integers(0, 60, n)
  model = PoissonRegressor(alpha=0.0).fit(x, y, sample_weight=weight, offset=offset)
  kept = model._fit_gram_
  targets, weights = absorbed(y, weight, offset, 1.0)
  alone = lambda rows, t, w, cov_type, fitted=None: covariance(
      rows, t, "poisson", model.coef_, model.intercept_, w, cov_type, groups if cov_type == "cluster" else None,
      fitted=fitted).matrix
  for cov_type in ("nonrobust", "HC1", "HC3", "cluster"):
    ours = model.covariance_matrix(x, y, weight, cov_type=cov_type, groups=groups if cov_type == "cluster" else None,
                                   offset=offset)
    assert np.array_equal(ours, alone(x, targets, weights, cov_type))
    # taken, whatever it says, where the fingerprint and the coefficients are the fit's (twice the information:
    # half the model-based covariance, a quarter of a sandwich; HC3's leverage changes too)
    doubled = {**kept, "fisher": 2 * kept["fisher"]}
    if cov_type != "HC3":
      np.testing.assert_allclose(alone(x, targets, weights, cov_type, doubled),
                                 ours / (2 if cov_type == "nonrobust" else 4), rtol=1e-9)
    else:
      assert not np.allclose(alone(x, targets, weights, cov_type, doubled), ours, rtol=1e-3)
  nudged = x.copy()
  nudged[5, 1] *= 1 + 1e-12
  other = {**kept, "fisher": 2 * kept["fisher"], "theta": kept["theta"] * (1 + 1e-15)}
  for rows, t, w, fitted in ((nudged, targets, weights, doubled), (x, targets, weights * 2, doubled),
                             (x, targets[::-1].copy(), weights, doubled), (x, targets, weights, other)):
    assert np.array_equal(alone(rows, t, w, "HC1", fitted), alone(rows, t, w, "HC1"))
