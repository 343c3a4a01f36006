"""`LinearClassifier`: logistic (two classes) or softmax regression as a scikit-learn classifier, fitted by
flaxzoo's exact solvers or optax (`flaxzoo.sklearn.estimators` tells the shared parameters and scales)."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets

from flaxzoo.sklearn.checks import validated
from flaxzoo.sklearn.estimators import _LinearModel
from flaxzoo.sklearn.inference import _Inference
from flaxzoo.sklearn.labels import _classes_and_codes, class_weights
from flaxzoo.sklearn.penalty import penalties_of_C
from flaxzoo.zoo.links import decide, probabilities


class LinearClassifier(ClassifierMixin, _Inference, _LinearModel):
  """Logistic regression (two classes, one logit) or softmax regression (more), fitted by flaxzoo.

  Args:
    C: inverse penalty on `LogisticRegression`'s scale: `C Σ loss + (1 - l1_ratio) |coef|² / 2 + l1_ratio
      |coef|₁` (weighted rows); `np.inf`: no penalty.
    l1_ratio: scikit-learn's (>= 1.8): 0 (the default) L2, 1 L1, between the elastic net. An L1 part is fitted
      by proximal Newton (`flaxzoo.trainers.solvers`): its zeros are 0.0; `tol` is then the largest
      violation of the optimality conditions. `penalty` (scikit-learn's older name): None (from `l1_ratio`),
      `"l2"` (l1_ratio 0), `"l1"` (1), `"elasticnet"` (`l1_ratio` as given).
    class_weight: scikit-learn's: None, `"balanced"` (`n / (classes x count)`) or `{label: weight}`; it
      multiplies the sample weights (`partial_fit`: a dict only).
    solver: `"auto"` (Newton up to `solvers.NEWTON_MAX_PARAMS` parameters, else L-BFGS), `"newton"`,
      `"lbfgs"`, or `"optax"` (`optimizer` by name at `learning_rate`, through `Trainer`).
    tol: the exact solvers stop when the largest entry of the mean objective's gradient is below it;
      optax when the loss changes by less than it (relative) between checks every `check_every` steps.
    max_iter: iterations (optax: steps). `batch_size` (optax only): mini-batches.
    warm_start: start from the last fit's coefficients.

  Any labels (`classes_`, sorted as scikit-learn sorts them). Attributes as `LinearRegression`, with
  `coef_` `[1, d]` (two classes) or `[classes, d]`, and `n_iter_` `[1]`, as scikit-learn's.
  """

  def __init__(self, C=1.0, *, l1_ratio=0.0, penalty=None, class_weight=None, solver="auto", tol=1e-4, max_iter=100,
               optimizer="lbfgs", learning_rate=0.1, batch_size=None, check_every=10, seed=0, warm_start=False):
    super().__init__(solver=solver, tol=tol, max_iter=max_iter, optimizer=optimizer, learning_rate=learning_rate,
                     batch_size=batch_size, check_every=check_every, seed=seed, warm_start=warm_start)
    self.C = C
    self.l1_ratio = l1_ratio
    self.penalty = penalty
    self.class_weight = class_weight

  def _check_params(self):
    super()._check_params()
    if self.solver == "normal_equation":
      raise ValueError("solver 'normal_equation' is for LinearRegression; a classifier takes auto, newton, lbfgs or"
                       " optax")
    if not isinstance(self.C, numbers.Real) or not self.C > 0 or np.isnan(self.C):
      raise ValueError(f"C must be a number > 0 (np.inf: no penalty), got {self.C!r}")
    if isinstance(self.l1_ratio, bool) or not isinstance(self.l1_ratio, numbers.Real) or not 0 <= self.l1_ratio <= 1:
      raise ValueError(f"l1_ratio must be a number in [0, 1], got {self.l1_ratio!r}")
    if self.penalty not in (None, "l2", "l1", "elasticnet"):
      raise ValueError(f"penalty must be None, 'l2', 'l1' or 'elasticnet', got {self.penalty!r}")

  def _ratio(self) -> float:
    return float({"l2": 0.0, "l1": 1.0}.get(self.penalty, self.l1_ratio))

  def _l2(self, weight, k):
    return penalties_of_C(self.C, self._ratio(), weight.sum())[0]

  def _l1(self, weight):
    return penalties_of_C(self.C, self._ratio(), weight.sum())[1]

  def _loss(self, num_outputs):
    return "logistic" if num_outputs == 1 else "softmax"

  def _model_name(self, num_outputs):
    return "logistic_regression" if num_outputs == 1 else "softmax_regression"

  def _model_args(self, d, k):
    return {"in_features": d, "num_classes": 2 if k == 1 else k}

  def _encode(self, y, first: bool, classes=None):
    # Integer labels are classes already: no second pass for scikit-learn's check (14 ms a million labels).
    if not (np.ndim(y) == 1 and np.asarray(y).dtype.kind in "iub"):
      check_classification_targets(y)
    codes = None
    if first:
      if classes is None:
        self.classes_, codes = _classes_and_codes(y)
      else:
        self.classes_ = LabelEncoder().fit(classes).classes_
      if len(self.classes_) < 2:
        raise ValueError(f"the data has one class only ({self.classes_[0]!r}); a classifier needs at least 2")
    if codes is not None:
      return codes.reshape(-1)
    unknown = np.setdiff1d(np.unique(y), self.classes_)
    if len(unknown):
      raise ValueError(f"labels {unknown[:5].tolist()} are not among classes_ {self.classes_.tolist()}")
    return np.searchsorted(self.classes_, y)

  def fit(self, X, y, sample_weight=None):
    self._check_params()
    X, y = validated(self, X, y, dtype=[np.float64, np.float32])
    weight = self._weights(X, sample_weight)
    labels = self._encode(y, first=True)
    weight = weight * class_weights(self.class_weight, self.classes_, labels)
    k = 1 if len(self.classes_) == 2 else len(self.classes_)
    # A warm start only where both arrays have this fit's shapes (a swapped or reshaped one: the default start)
    start = (self.coef_, self.intercept_) if self.warm_start and np.shape(getattr(self, "coef_", None)) == (
        k, X.shape[1]) and np.shape(getattr(self, "intercept_", None)) == (k,) else None
    self._num_classes = len(self.classes_)
    self.coef_, self.intercept_, n_iter, _ = self._fit(X, labels.astype(np.int32), weight, k, start)
    self.n_iter_ = np.asarray([n_iter], np.int32)
    return self

  # optax's steps fit L2 only: with an L1 part there is no partial_fit (as hasattr tells a caller).
  @available_if(lambda self: self.penalty == "l2" or (self.penalty != "l1" and self.l1_ratio == 0))
  def partial_fit(self, X, y, classes=None, sample_weight=None):
    """One pass of the optimizer over this batch; the first call needs `classes` (all the labels)."""
    first = not hasattr(self, "coef_")
    if first and classes is None:
      raise ValueError("classes must be given at the first call to partial_fit")
    self._check_params()
    X, y = validated(self, X, y, dtype=[np.float64, np.float32], reset=first)
    weight = self._weights(X, sample_weight)
    labels = self._encode(y, first=first, classes=classes)
    if isinstance(self.class_weight, str):  # (scikit-learn's SGDClassifier refuses it there too)
      raise ValueError("class_weight='balanced' needs all the labels at once: use fit, or a dict of weights")
    weight = weight * class_weights(self.class_weight, self.classes_, labels)
    k = 1 if len(self.classes_) == 2 else len(self.classes_)
    start = None if first else (self.coef_, self.intercept_)
    if start is not None and (np.shape(self.coef_) != (k, X.shape[1]) or np.shape(self.intercept_) != (k,)):
      raise ValueError(f"partial_fit continues from coef_ {np.shape(self.coef_)} and intercept_"
                       f" {np.shape(self.intercept_)}; these classes need ({k}, {X.shape[1]}) and ({k},)")
    steps = 1 if self.batch_size is None else -(-len(X) // int(self.batch_size))
    self.coef_, self.intercept_, n = self._train(X, labels.astype(np.int32), weight, k, steps,
                                                 self._l2(weight, k), start)
    self.n_iter_ = np.asarray([n if first else int(self.n_iter_[0]) + n], np.int32)
    return self

  def _inference_problem(self, X, y, weight, offset):
    if offset is not None:
      raise ValueError("LinearClassifier takes no offset")
    if len(self.classes_) != 2:
      raise ValueError(f"standard errors are computed for two classes, this model has {len(self.classes_)}")
    labels = self._encode(y, first=False)
    weight = weight * class_weights(self.class_weight, self.classes_, labels)
    ratio = self._ratio()
    return (X, labels.astype(np.int32), weight, "logistic", lambda total: penalties_of_C(self.C, ratio, total)[0],
            penalties_of_C(self.C, ratio, weight.sum())[1])

  def decision_function(self, X):
    """Logits: `[n]` for two classes (of `classes_[1]`), else `[n, classes]`."""
    scores = self._raw(X)
    return scores[:, 0] if scores.shape[1] == 1 else scores

  def predict_proba(self, X):
    return probabilities(self._raw(X))

  def predict_log_proba(self, X):
    scores = self._raw(X)
    if scores.shape[1] == 1:
      z = scores[:, 0]
      return np.stack([-np.logaddexp(0, z), -np.logaddexp(0, -z)], axis=1)
    return scores - np.logaddexp.reduce(scores, axis=1, keepdims=True)

  def predict(self, X):
    scores = self._raw(X)  # (first: an unfitted estimator's NotFittedError, not classes_' AttributeError)
    return self.classes_[decide(scores)]
