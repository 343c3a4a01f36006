"""Cross-validated estimators: every fold x penalty in one solve of K models, and the refit on all rows.

  from flaxzoo.sklearn import LinearClassifierCV, LinearRegressionCV

`LinearRegressionCV(alphas, cv)` is `RidgeCV(alphas, cv=cv)` and `LinearClassifierCV(Cs, cv)` is
`LogisticRegressionCV(Cs, cv=cv)` (L2): the same attributes (`alpha_` / `C_`, `scores_`, `best_score_`,
`coef_`, `intercept_`), chosen by the mean validation score over the folds. The folds are example
weights over one copy of the rows (`flaxzoo.trainers.solvers.solve`): a grid of F folds and P
penalties is one solve of F·P models. Ridge's refit is in it too (P more models on all rows: the
normal equation's sums cost the same); the classifier's refit is the chosen C alone (its passes over the
rows cost in proportion to the models).

RidgeCV's default `cv=None` is an exact leave-one-out shortcut; here `cv=None` is 5-fold (KFold, as
`cross_val_score`'s default).
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import check_scoring

from flaxzoo.sklearn.checks import check_iterations, validated
from flaxzoo.sklearn.classifier import LinearClassifier
from flaxzoo.sklearn.estimators import LinearRegression, _DenseInput, _LinearModel
from flaxzoo.sklearn.folds import split, training_masks
from flaxzoo.sklearn.inference import _Inference
from flaxzoo.sklearn.labels import class_weights
from flaxzoo.sklearn.penalty import l2_of_alpha, penalties_of_C


class _CrossValidated(_DenseInput):
  """The grid and its one solve; subclasses name the penalty and the single estimator."""

  def _check_cv_params(self):
    check_iterations(self.max_iter, self.tol)
    if self.solver not in self._solvers:
      raise ValueError(f"solver must be one of {', '.join(self._solvers)}, got {self.solver!r}")

  def _grid(self, X, y, sample_weight, targets, loss, num_classes):
    """Fits every fold x penalty and the all-rows models; sets the chosen penalty's refit. Returns the
    validation scores `[folds, penalties]`."""
    from flaxzoo.trainers import solvers

    penalties = self._penalties()
    weight = _LinearModel._weights(self, X, sample_weight)
    folds = split(self.cv, X, y, classifier=loss != "mse")
    k = targets.shape[1] if loss == "mse" else (1 if num_classes == 2 else num_classes)
    masks = training_masks(folds, len(X), self._refit_in_grid)
    # [rows, models] in memory, passed as its [models, rows] view: the solvers' many-model layout is rows x
    # models, so their copy is a plain one, not a transpose (100k rows x 60 models: ~40 ms less).
    weights = np.repeat(weight[:, None] * np.ascontiguousarray(masks.T), len(penalties), axis=1).T
    if np.any(weights.sum(axis=1) <= 0):
      raise ValueError("a training fold has no row of positive sample_weight")
    pairs = np.asarray([self._l2(p, (weight * mask).sum(), k) for mask in masks for p in penalties]).reshape(-1, 2)
    l2, l1 = pairs[:, 0], pairs[:, 1]
    dtype = solvers.pass_dtype(X, loss, k, len(weights), self.solver, float(self.tol))
    data = solvers.stage(X, targets, loss, num_classes, dtype=dtype)
    fit = solvers.solve(data, weights, l2, self.solver, float(self.tol), int(self.max_iter),
                        l1=l1 if np.any(l1 > 0) else None)
    coef = fit.coef.transpose(0, 2, 1).reshape(len(masks), len(penalties), k, X.shape[1])
    intercept = fit.intercept.reshape(len(masks), len(penalties), k)
    scores = np.empty((len(folds), len(penalties)))
    scorer = None if self.scoring is None and hasattr(self, "_default_scores") else check_scoring(
        self._single(), scoring=self.scoring)
    for f, (_, test) in enumerate(folds):
      if scorer is None:  # every penalty's default score at once
        scores[f] = self._default_scores(coef[f], intercept[f], X[test], y[test])
        continue
      for p in range(len(penalties)):
        scores[f, p] = scorer(self._fitted(coef[f, p], intercept[f, p]), X[test], y[test])
    best = int(np.argmax(scores.mean(axis=0)))
    self.best_score_ = float(scores.mean(axis=0)[best])
    n_iter = fit.n_iter.reshape(len(masks), len(penalties))
    if not self._refit_in_grid:  # the chosen penalty alone on all rows
      # From the solvers' own start, not the folds' mean fit (scikit-learn's): the refit then does not
      # depend on the splits (sample weights = repeated rows), and the sample's optimum is as near.
      l2, l1 = np.reshape(self._l2(penalties[best], weight.sum(), k), 2)
      # The model it returns passes in X's own dtype (float64 answers on float64 rows at any tol): the folds'
      # float32 passes only choose the penalty.
      rows = data if dtype is None else solvers.stage(X, targets, loss, num_classes)
      refit = solvers.solve(rows, weight[None], [l2], self.solver, float(self.tol), int(self.max_iter),
                            l1=[l1] if l1 > 0 else None)
      coef = np.concatenate([coef, np.zeros_like(coef[:1])])
      coef[-1, best], intercept = refit.coef[0].T, np.concatenate([intercept, np.zeros_like(intercept[:1])])
      intercept[-1, best] = refit.intercept[0]
    failed = int(np.sum(~fit.converged)) + (0 if self._refit_in_grid or refit.converged[0] else 1)
    if failed:  # a fold model stopped short can choose another penalty: said, as scikit-learn's CV says it
      warnings.warn(f"{type(self).__name__}: {failed} of {len(fit.converged) + (not self._refit_in_grid)} fits did"
                    f" not converge in max_iter={self.max_iter} iterations (tol={self.tol}); increase max_iter,"
                    " or scale the data", ConvergenceWarning, stacklevel=3)
    final = self._fitted(coef[-1, best], intercept[-1, best])
    self.coef_, self.intercept_ = final.coef_, final.intercept_
    self.n_iter_ = n_iter
    return scores, penalties[best]


class LinearRegressionCV(RegressorMixin, _Inference, _CrossValidated):
  """Ridge regression with `alpha` chosen by cross-validation (`RidgeCV`'s API).

  Args:
    alphas: the penalties on `Ridge`'s scale.
    cv: folds: an int (KFold), a splitter or an iterable of splits; None: 5.
    scoring: a scikit-learn scorer name or callable; None: R².
    solver: `"auto"` or `"normal_equation"`. tol, max_iter: unused by the normal equation.

  Attributes: `alpha_`, `best_score_`, `scores_` `[folds, alphas]`, `coef_`, `intercept_`, `n_features_in_`.
  """

  _solvers = ("auto", "normal_equation")
  _refit_in_grid = True  # all-rows models in the one solve: the normal equation's sums cost the same

  def __init__(self, alphas=(0.1, 1.0, 10.0), *, cv=None, scoring=None, solver="auto", tol=1e-4, max_iter=100):
    self.alphas = alphas
    self.cv = cv
    self.scoring = scoring
    self.solver = solver
    self.tol = tol
    self.max_iter = max_iter

  def __sklearn_tags__(self):
    tags = super().__sklearn_tags__()
    tags.target_tags.multi_output = True
    return tags

  def _penalties(self):
    alphas = np.asarray(self.alphas, np.float64).reshape(-1)
    if len(alphas) == 0 or not np.all(np.isfinite(alphas) & (alphas >= 0)):
      raise ValueError(f"alphas must be finite numbers >= 0, got {self.alphas!r}")
    return alphas

  def _l2(self, alpha, total, k):  # the core's (l2, l1)
    return l2_of_alpha(alpha, total, k), 0.0

  def _single(self):
    return LinearRegression()

  def _fitted(self, coef, intercept):
    model = LinearRegression()
    model.coef_, model.intercept_ = (coef[0], float(intercept[0])) if self._one_target else (coef, intercept)
    model.n_features_in_ = coef.shape[1]
    return model

  def fit(self, X, y, sample_weight=None):
    self._check_cv_params()
    X, y = validated(self, X, y, multi_output=True, y_numeric=True, dtype=[np.float64, np.float32])
    y = np.asarray(y, np.float64)
    self._one_target = y.ndim == 1
    self.scores_, self.alpha_ = self._grid(X, y, sample_weight, y.reshape(len(y), -1), "mse", None)
    self.alpha_ = float(self.alpha_)
    return self

  def _inference_problem(self, X, y, weight, offset):
    """The refit's problem: its chosen alpha on every row (`LinearRegression._inference_problem`)."""
    return LinearRegression._inference_problem(LinearRegression(alpha=self.alpha_), X, y, weight, offset)

  def predict(self, X):
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(self)
    X = validated(self, X, reset=False, dtype=[np.float64, np.float32])
    return X @ np.asarray(self.coef_).T + self.intercept_


class LinearClassifierCV(ClassifierMixin, _Inference, _CrossValidated):
  """Logistic or softmax regression with `C` (and `l1_ratio`) chosen by cross-validation (`LogisticRegressionCV`).

  Args:
    Cs: a list of `C`s (LogisticRegression's scale), or an int: that many on `np.logspace(-4, 4)`.
    l1_ratios: the elastic-net mixings to try (scikit-learn's >= 1.10 default `(0.0,)`: L2); every fold x C x
      l1_ratio is one solve (proximal Newton where any has an L1 part).
    cv: folds: an int (StratifiedKFold), a splitter or an iterable of splits; None: 5.
    scoring: a scorer name or callable; None: accuracy.
    class_weight: as `LinearClassifier`'s, from every row's label (scikit-learn's).
    solver, tol, max_iter: as `LinearClassifier`'s.

  Attributes: `C_` `[1]`, `l1_ratio_` `[1]`, `Cs_`, `best_score_`, `scores_` `{class: [folds, Cs]}` (the
  positive class for two; with several l1_ratios `[folds, Cs, l1_ratios]`), `coef_`, `intercept_`,
  `classes_`, `n_iter_` `[folds, Cs]` (`[folds, Cs, l1_ratios]`; as scikit-learn's, of the fold fits).
  """

  _solvers = ("auto", "newton", "lbfgs")
  # The refit after the folds, of the chosen C alone: 50 models a pass, not 60 (every pass over the rows costs
  # in proportion), then a few single-model passes.
  _refit_in_grid = False

  def __init__(self, Cs=10, *, l1_ratios=(0.0,), cv=None, scoring=None, class_weight=None, solver="auto",  # noqa: N803
               tol=1e-4, max_iter=100):
    self.Cs = Cs
    self.l1_ratios = l1_ratios
    self.class_weight = class_weight
    self.cv = cv
    self.scoring = scoring
    self.solver = solver
    self.tol = tol
    self.max_iter = max_iter

  def _Cs(self):  # noqa: N802
    if isinstance(self.Cs, numbers.Integral) and not isinstance(self.Cs, bool):
      if self.Cs < 1:
        raise ValueError(f"Cs must be a positive int or a list of C > 0, got {self.Cs!r}")
      return np.logspace(-4, 4, int(self.Cs))
    Cs = np.asarray(self.Cs, np.float64).reshape(-1)
    if len(Cs) == 0 or not np.all(Cs > 0):
      raise ValueError(f"Cs must be a positive int or a list of C > 0, got {self.Cs!r}")
    return Cs

  def _ratios(self):
    ratios = np.asarray(self.l1_ratios, np.float64).reshape(-1)
    if len(ratios) == 0 or not np.all((ratios >= 0) & (ratios <= 1)):
      raise ValueError(f"l1_ratios must be numbers in [0, 1], got {self.l1_ratios!r}")
    return ratios

  def _penalties(self):  # (C, l1_ratio) pairs, C-major
    return [(C, r) for C in self._Cs() for r in self._ratios()]

  def _l2(self, penalty, total, k):  # the core's (l2, l1) of a (C, l1_ratio)
    return penalties_of_C(penalty[0], penalty[1], total)

  def _single(self):
    return LinearClassifier()

  def _default_scores(self, coef, intercept, X, y):
    """Accuracy `[P]` of P models `coef [P, k, d]`, `intercept [P, k]` on `(X, y)`: the `score` of each."""
    count, k, d = coef.shape
    logits = (X @ coef.reshape(count * k, d).T).reshape(len(X), count, k).transpose(1, 0, 2) + intercept[:, None, :]
    index = (logits[:, :, 0] > 0).astype(int) if coef.shape[1] == 1 else np.argmax(logits, axis=2)
    return np.mean(self.classes_[index] == np.asarray(y)[None, :], axis=1)

  def _fitted(self, coef, intercept):
    model = LinearClassifier()
    model.coef_, model.intercept_, model.classes_ = coef, intercept, self.classes_
    model.n_features_in_ = coef.shape[1]
    return model

  def fit(self, X, y, sample_weight=None):
    self._check_cv_params()
    X, y = validated(self, X, y, dtype=[np.float64, np.float32])
    labels = LinearClassifier._encode(self, y, first=True)
    self.Cs_, ratios = self._Cs(), self._ratios()
    # The classes' weights from every row (scikit-learn's LogisticRegressionCV), times the sample weights.
    sample_weight = _LinearModel._weights(self, X, sample_weight) * class_weights(self.class_weight, self.classes_,
                                                                                labels)
    scores, (C, ratio) = self._grid(X, y, sample_weight, labels.astype(np.int32),
                                    "logistic" if len(self.classes_) == 2 else "softmax", len(self.classes_))
    self.C_, self.l1_ratio_ = np.asarray([C]), np.asarray([ratio])
    if len(ratios) > 1:  # scikit-learn's (legacy) layout: [folds, Cs, l1_ratios]
      scores = scores.reshape(len(scores), len(self.Cs_), len(ratios))
      self.n_iter_ = self.n_iter_.reshape(len(self.n_iter_), len(self.Cs_), len(ratios))
    keys = self.classes_[1:] if len(self.classes_) == 2 else self.classes_
    self.scores_ = {key: scores for key in keys}
    return self

  def _inference_problem(self, X, y, weight, offset):
    """The refit's problem: its chosen C and l1_ratio, the class weights from every row."""
    single = LinearClassifier(C=float(self.C_[0]), l1_ratio=float(self.l1_ratio_[0]), class_weight=self.class_weight)
    single.classes_ = self.classes_
    return single._inference_problem(X, y, weight, offset)

  def decision_function(self, X):
    return self._final(X, "decision_function")

  def predict_proba(self, X):
    return self._final(X, "predict_proba")

  def predict_log_proba(self, X):
    return self._final(X, "predict_log_proba")

  def predict(self, X):
    return self._final(X, "predict")

  def _final(self, X, method: str):
    """The refit model's `method` on `X` (checked against what `fit` saw)."""
    X = self._check(X)
    return getattr(self._fitted(self.coef_, self.intercept_), method)(X)

  def _check(self, X):
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(self)
    return validated(self, X, reset=False, dtype=[np.float64, np.float32])
