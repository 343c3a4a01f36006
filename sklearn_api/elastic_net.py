"""L1 and elastic-net least squares as scikit-learn estimators, fitted by coordinate descent on the Gram matrix.

  from flaxzoo.sklearn import ElasticNet, Lasso

scikit-learn's `ElasticNet(alpha, l1_ratio)` and `Lasso(alpha)`: the same objective per target, `Σ_i w_i
(y_i - x_i w - b)² / (2 Σ w) + alpha l1_ratio |w|₁ + alpha (1 - l1_ratio) / 2 |w|²` (the intercept not
penalised), written once as the core's penalties (`penalty.penalties_of_elastic_net`). One pass over the
rows sums the weighted Gram matrix; cyclic coordinate descent on it (scikit-learn's `precompute=True`)
soft-thresholds each coefficient, so the zeros L1 promises are 0.0. `tol`: the largest violation of the
optimality conditions (the minimum-norm subgradient of the core's objective in standardised features: the
other solvers' gradient test) relative to the target's standard deviation, so that a fit of `y x c` stops
where a fit of `y` does (scikit-learn scales its duality gap by `|y|²` for the same reason); `max_iter`: sweeps over the
coefficients. Always with an intercept; `precompute`, `selection`, `positive` and `warm_start` are not
offered (the Gram matrix is always used, the order is cyclic, the start is 0).
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import MultiOutputMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from flaxzoo.sklearn.checks import check_iterations, validated
from flaxzoo.sklearn.estimators import _DenseInput
from flaxzoo.sklearn.folds import as_parts, split, training_masks
from flaxzoo.sklearn.penalty import penalties_of_elastic_net


class ElasticNet(MultiOutputMixin, RegressorMixin, _DenseInput):
  """`sklearn.linear_model.ElasticNet`: least squares with `alpha l1_ratio |w|₁ + alpha (1 - l1_ratio)/2 |w|²`.

  Attributes: `coef_` `[d]` (`[targets, d]`), `intercept_`, `n_iter_` (sweeps), `n_features_in_`.
  """

  def __init__(self, alpha=1.0, *, l1_ratio=0.5, max_iter=1000, tol=1e-4):
    self.alpha = alpha
    self.l1_ratio = l1_ratio
    self.max_iter = max_iter
    self.tol = tol

  def __sklearn_tags__(self):
    tags = super().__sklearn_tags__()
    tags.target_tags.multi_output = True
    return tags

  def _check_params(self):
    if not isinstance(self.alpha, numbers.Real) or not np.isfinite(self.alpha) or self.alpha < 0:
      raise ValueError(f"alpha must be a finite number >= 0, got {self.alpha!r}")
    if not isinstance(self.l1_ratio, numbers.Real) or not 0 <= self.l1_ratio <= 1:
      raise ValueError(f"l1_ratio must be a number in [0, 1], got {self.l1_ratio!r}")
    check_iterations(self.max_iter, self.tol)

  def fit(self, X, y, sample_weight=None):
    """Fits on `X [n, d]`, `y [n]` or `[n, targets]`."""
    from flaxzoo.trainers import solvers

    self._check_params()
    X, y = validated(self, X, y, multi_output=True, y_numeric=True, dtype=[np.float64, np.float32])
    y = np.asarray(y, np.float64)
    weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
    targets = y.reshape(len(y), -1)
    l2, l1 = penalties_of_elastic_net(float(self.alpha), float(self.l1_ratio), targets.shape[1])
    data = solvers.stage(X, targets, "mse")
    fit = solvers.solve(data, weight[None], [l2], "normal_equation", float(self.tol), int(self.max_iter), l1=[l1])
    if not fit.converged[0]:
      warnings.warn(f"{type(self).__name__} did not converge in max_iter={self.max_iter} sweeps (tol={self.tol});"
                    " increase max_iter", ConvergenceWarning, stacklevel=2)
    coef, intercept = fit.coef[0].T, fit.intercept[0]
    self.coef_, self.intercept_ = (coef[0], float(intercept[0])) if y.ndim == 1 else (coef, intercept)
    self.n_iter_ = int(fit.n_iter[0])
    return self

  def predict(self, X):
    """`X coef_ᵀ + intercept_`: `[n]` (or `[n, targets]`)."""
    check_is_fitted(self)
    X = validated(self, X, reset=False, dtype=[np.float64, np.float32])
    return X @ np.asarray(self.coef_).T + self.intercept_


class Lasso(ElasticNet):
  """`sklearn.linear_model.Lasso`: least squares with `alpha |w|₁` (an elastic net of `l1_ratio` 1)."""

  def __init__(self, alpha=1.0, *, max_iter=1000, tol=1e-4):
    super().__init__(alpha=alpha, l1_ratio=1.0, max_iter=max_iter, tol=tol)


class ElasticNetCV(ElasticNet):
  """`sklearn.linear_model.ElasticNetCV`: `alpha` (and `l1_ratio`, given a list) chosen by the folds' mean
  squared error, then refit on all rows.

  Args:
    l1_ratio: a number in (0, 1], or a list of them. eps, alphas: scikit-learn's grid, `alphas` (an int) values
      from `alpha_max` (every coefficient 0) down to `eps alpha_max`, or a list of alphas.
    cv: folds: an int (KFold), a splitter or an iterable of splits; None: 5. max_iter, tol: as `ElasticNet`'s.

  Every fold x l1_ratio x alpha and the refits of every (l1_ratio, alpha) on all rows are ONE solve: one Gram
  pass a fold (and one over all rows), then coordinate descent for every model in one program.
  Attributes: `alpha_`, `l1_ratio_`, `alphas_` (`[alphas]`, or `[l1_ratios, alphas]`), `mse_path_`
  (`[alphas, folds]`, or `[l1_ratios, alphas, folds]`), `coef_`, `intercept_`, `n_iter_`.
  """

  def __init__(self, *, l1_ratio=0.5, eps=1e-3, alphas=100, cv=None, max_iter=1000, tol=1e-4):
    self.l1_ratio = l1_ratio
    self.eps = eps
    self.alphas = alphas
    self.cv = cv
    self.max_iter = max_iter
    self.tol = tol

  def __sklearn_tags__(self):
    tags = super().__sklearn_tags__()
    tags.target_tags.multi_output = False
    return tags

  def _check_params(self):
    ratios = np.atleast_1d(np.asarray(self.l1_ratio, np.float64))
    if ratios.ndim != 1 or len(ratios) == 0 or not np.all((ratios > 0) & (ratios <= 1)):
      raise ValueError(f"l1_ratio must be a number in (0, 1] or a list of them, got {self.l1_ratio!r}")
    if not isinstance(self.eps, numbers.Real) or not 0 < self.eps < np.inf:
      raise ValueError(f"eps must be a number > 0, got {self.eps!r}")
    check_iterations(self.max_iter, self.tol)
    return ratios

  def _alpha_grid(self, X, y, weight, ratio):
    """scikit-learn's `_alpha_grid`: from the alpha that zeroes every coefficient down by `eps`."""
    if not isinstance(self.alphas, numbers.Integral) or isinstance(self.alphas, bool):
      alphas = np.asarray(self.alphas, np.float64).reshape(-1)
      if len(alphas) == 0 or not np.all(np.isfinite(alphas) & (alphas >= 0)):
        raise ValueError(f"alphas must be an int >= 1 or a list of numbers >= 0, got {self.alphas!r}")
      return np.sort(alphas)[::-1]
    if self.alphas < 1:
      raise ValueError(f"alphas must be an int >= 1 or a list of numbers >= 0, got {self.alphas!r}")
    # Σ w (x - x̄)(y - ȳ) = xᵀ (w (y - ȳ)): the weighted-centred y sums to 0 (one pass over X, not two).
    xy = X.T @ (weight * (y - np.average(y, weights=weight)))
    alpha_max = np.abs(xy).max() / (weight.sum() * ratio)
    if alpha_max <= np.finfo(np.float64).resolution:
      return np.full(int(self.alphas), np.finfo(np.float64).resolution)
    return np.geomspace(alpha_max, alpha_max * self.eps, num=int(self.alphas))

  def fit(self, X, y, sample_weight=None):
    """Fits every fold x l1_ratio x alpha and the all-rows models in one solve; keeps the best's refit."""
    from flaxzoo.trainers import solvers

    ratios = self._check_params()
    X, y = validated(self, X, y, y_numeric=True, dtype=[np.float64, np.float32])
    y = np.asarray(y, np.float64)
    weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
    grid = np.stack([self._alpha_grid(X, y, weight, ratio) for ratio in ratios])  # [L, P]
    folds = split(self.cv, X, y, classifier=False)
    # Every training set (each fold's, then the refit's) as a sum of disjoint parts of the rows: one sum over
    # each part's rows gives every Gram matrix.
    parts, mix = as_parts(training_masks(folds, len(y), refit=True), weight)
    if np.any(mix @ parts.sum(axis=1) <= 0):
      raise ValueError("a training fold has no row of positive sample_weight")
    # Models: (fold or all rows) x l1_ratio x alpha.
    penalties = np.array([penalties_of_elastic_net(a, r) for r, row in zip(ratios, grid) for a in row])
    l2, l1 = np.tile(penalties.T, len(mix))
    data = solvers.stage(X, y, "mse")
    fit = solvers.solve(data, parts, l2, "normal_equation", float(self.tol), int(self.max_iter), l1=l1,
                        mix=np.repeat(mix, grid.size, axis=0))
    coef = fit.coef[:, :, 0].reshape(len(mix), *grid.shape, X.shape[1])
    intercept = fit.intercept[:, 0].reshape(len(mix), *grid.shape)
    mse = np.empty(grid.shape + (len(folds),))
    for f, (_, test) in enumerate(folds):  # every model's held-out residuals, one GEMM: [rows, l1_ratios x alphas]
      residual = np.c_[X[test], np.ones(len(test)), y[test]] @ np.r_[
          -coef[f].reshape(-1, X.shape[1]).T, -intercept[f].reshape(1, -1), np.ones((1, grid.size))]
      np.square(residual, out=residual)
      mse[:, :, f] = (weight[test] @ residual / weight[test].sum()).reshape(grid.shape)
    best = np.unravel_index(np.argmin(mse.mean(axis=2)), grid.shape)
    if not fit.converged.reshape(len(mix), *grid.shape)[-1][best]:
      warnings.warn(f"ElasticNetCV's refit did not converge in max_iter={self.max_iter} sweeps (tol={self.tol});"
                    " increase max_iter", ConvergenceWarning, stacklevel=2)
    self.l1_ratio_, self.alpha_ = float(ratios[best[0]]), float(grid[best])
    self.coef_, self.intercept_ = coef[-1][best], float(intercept[-1][best])
    self.n_iter_ = int(fit.n_iter.reshape(len(mix), *grid.shape)[-1][best])
    one = np.ndim(self.l1_ratio) == 0
    self.alphas_ = grid[0] if one else grid
    self.mse_path_ = mse[0] if one else mse
    return self
