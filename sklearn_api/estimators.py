"""flaxzoo's linear models as scikit-learn estimators, trained by flaxzoo's `Trainer`.

  from flaxzoo.sklearn import LinearClassifier, LinearRegression

Parameters map to scikit-learn's as follows (`n` = the training rows, or the sum of the
sample weights):

| flaxzoo | scikit-learn |
|---|---|
| `LinearRegression()` | `sklearn.linear_model.LinearRegression()` (the same least-squares optimum) |
| `LinearRegression(l2=a / n)` | `Ridge(alpha=a)` |
| `LinearClassifier()` | `LogisticRegression(penalty=None)` |
| `LinearClassifier(l2=1 / (C * n))` | `LogisticRegression(C=C)` |

The objective is the weighted mean loss plus `l2 / 2 * |coef|^2` (the intercept is not penalised).
Fitting lays the data out on the device once and runs the optimizer in compiled blocks of
`check_every` steps until the objective changes by less than `tol` (relative) or `steps` are
taken. Features are centred before fitting (an exact reparametrisation: the intercept absorbs the
shift, the penalty is unchanged), which is what makes L-BFGS reach the optimum in float32.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data


class _LinearModel(BaseEstimator):
  """What both estimators share: the parameters, the trainer, the convergence loop."""

  def __init__(self, *, optimizer="lbfgs", learning_rate=0.1, steps=1000, batch_size=None, l2=0.0, tol=1e-8,
               check_every=10, seed=0, warm_start=False):
    self.optimizer = optimizer
    self.learning_rate = learning_rate
    self.steps = steps
    self.batch_size = batch_size
    self.l2 = l2
    self.tol = tol
    self.check_every = check_every
    self.seed = seed
    self.warm_start = warm_start

  # Subclasses: `_loss(num_outputs)`, `_model_name(num_outputs)`, `_model_args(d, k)`.

  def _make_optimizer(self):
    if isinstance(self.optimizer, str):
      from flaxzoo.experiments.config import OPTIMIZERS

      return OPTIMIZERS.get(self.optimizer)(self.learning_rate)
    return self.optimizer  # any optax.GradientTransformation

  def _check_params(self):
    for name in ("steps", "check_every"):
      value = getattr(self, name)
      if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if self.batch_size is not None and (not isinstance(self.batch_size, numbers.Integral) or self.batch_size < 1):
      raise ValueError(f"batch_size must be None or an integer >= 1, got {self.batch_size!r}")
    for name in ("l2", "tol", "learning_rate"):
      value = getattr(self, name)
      if not isinstance(value, numbers.Real) or not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

  def _train(self, x, targets, weight, num_outputs, steps, start=None):
    """Fits `[d] -> [num_outputs]` on centred `x`; returns `(coef [k, d], intercept [k], n_iter)` (float64)."""
    import jax
    import jax.numpy as jnp

    from flaxzoo.trainers import DivergedError, Trainer
    from flaxzoo.zoo import create_model

    x = np.asarray(x, np.float64)
    shift = np.average(x, axis=0, weights=weight)  # weighted: a weight of 2 is a row twice
    centred = (x - shift).astype(np.float32)
    d = x.shape[1]
    model = create_model(self._model_name(num_outputs), seed=int(self.seed), **self._model_args(d, num_outputs))
    # From zero, as scikit-learn's solvers start: with more features than rows (many optima) the
    # iterates stay in the data's row space and end at the smallest one, whatever the weighting.
    coef, intercept = start if start is not None else (np.zeros((num_outputs, d)), np.zeros(num_outputs))
    model.linear.kernel.set_value(jnp.asarray(coef.T, jnp.float32))  # in the centred features
    model.linear.bias.set_value(jnp.asarray(intercept + coef @ shift, jnp.float32))
    # Per example: the stopping rule compares consecutive losses to `tol`, and the loss that the sufficient
    # statistics give (a difference of second moments) is rounded more coarsely than that (a weighted fit
    # then stopped early, 3e-4 away from the same rows repeated).
    trainer = Trainer(model, self._make_optimizer(), self._loss(num_outputs), seed=int(self.seed),
                      parallel="none", l2=float(self.l2), statistics="off")
    data = {"x": centred, "y": targets, "weight": np.asarray(weight, np.float32)}
    losses = []

    def record(t, history):
      losses.append(history.losses[-1])

    def converged() -> bool:
      if len(losses) < 2:
        return False
      return abs(losses[-2] - losses[-1]) <= self.tol * max(1.0, abs(losses[-1]))

    every = min(int(self.check_every), steps)
    try:
      trainer.fit(data, steps=steps, batch_size=self.batch_size, log_every=every, hooks=[(every, record)],
                  should_stop=converged, final_metrics=False)
    except DivergedError as e:
      raise FloatingPointError(f"{type(self).__name__}: {e}") from None
    params = jax.tree.map(np.asarray, trainer.params)
    kernel = np.asarray(params["linear"]["kernel"][...], np.float64).T  # [k, d]
    bias = np.asarray(params["linear"]["bias"][...], np.float64)
    return kernel, bias - kernel @ shift, int(trainer.step)

  def _weights(self, X, sample_weight):
    weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
    if np.any(weight < 0):
      raise ValueError("sample_weight must not be negative")
    if not np.any(weight > 0):
      raise ValueError("sample_weight must have a positive entry")
    return weight

  def _raw(self, X):
    check_is_fitted(self)
    X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
    checkpoint = getattr(self, "checkpoint_", None)
    if checkpoint is None:
      return X @ self.coef_.T + self.intercept_
    # A checkpoint's model (`from_pretrained`) predicts with its own float32 parameters, by the same
    # code as `flaxzoo predict` (`apply_in_chunks`), then in the label's unit: the same numbers to the last bit.
    from flaxzoo.checkpoints.prediction import apply_in_chunks

    if self.__dict__.get("_model") is None:
      import jax.numpy as jnp

      from flaxzoo.zoo.models import create_model

      model = create_model(checkpoint["model"]["name"], **checkpoint["model"]["args"])
      model.linear.kernel.set_value(jnp.asarray(checkpoint["kernel"]))
      model.linear.bias.set_value(jnp.asarray(checkpoint["bias"]))
      self.__dict__["_model"] = model
    outputs = apply_in_chunks(self.__dict__["_model"], np.asarray(X, np.float32)) * checkpoint["scale"]
    return outputs[:, 0] if np.ndim(self.coef_) == 1 else outputs

  def __getstate__(self):
    state = super().__getstate__()
    state.pop("_model", None)  # rebuilt from `checkpoint_` when needed
    return state

  def __sklearn_tags__(self):
    tags = super().__sklearn_tags__()
    tags.input_tags.sparse = False
    return tags


class LinearRegression(RegressorMixin, _LinearModel):
  """Least-squares linear regression (one or several targets), trained by flaxzoo.

  Attributes (after `fit`): `coef_` `[d]` (or `[targets, d]`), `intercept_` (float or `[targets]`),
  `n_features_in_`, `feature_names_in_` (a DataFrame's columns), `n_iter_` (optimizer steps).
  """

  def __sklearn_tags__(self):
    tags = super().__sklearn_tags__()
    tags.target_tags.multi_output = True  # y [n, targets]: one linear map to all of them
    return tags

  def _loss(self, num_outputs):
    return "mse"

  def _model_name(self, num_outputs):
    return "linear_regression"

  def _model_args(self, d, k):
    return {"in_features": d, "out_features": k}

  def fit(self, X, y, sample_weight=None):
    self._check_params()
    X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=[np.float64, np.float32])
    weight = self._weights(X, sample_weight)
    y = np.asarray(y, np.float64)
    targets = y.reshape(len(y), -1)
    start = self._start(targets.shape[1]) if self.warm_start else None
    # The targets centred too (the intercept absorbs it): float32 then holds their detail.
    offset = np.average(targets, axis=0, weights=weight)
    coef, intercept, self.n_iter_ = self._train(X, (targets - offset).astype(np.float32), weight,
                                                targets.shape[1], int(self.steps),
                                                None if start is None else (start[0], start[1] - offset))
    intercept = intercept + offset
    self.coef_, self.intercept_ = (coef[0], float(intercept[0])) if y.ndim == 1 else (coef, intercept)
    return self

  def _start(self, k):
    if not hasattr(self, "coef_") or np.reshape(self.coef_, (k, -1)).shape[1] != self.n_features_in_:
      return None
    return np.reshape(self.coef_, (k, -1)), np.reshape(self.intercept_, (k,))

  def partial_fit(self, X, y, sample_weight=None):
    """One pass of the optimizer over this batch (full batch: one step), from the current coefficients."""
    first = not hasattr(self, "coef_")
    self._check_params()
    X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=[np.float64, np.float32],
                         reset=first)
    weight = self._weights(X, sample_weight)
    y = np.asarray(y, np.float64)
    targets = y.reshape(len(y), -1)
    start = None if first else self._start(targets.shape[1])
    steps = 1 if self.batch_size is None else -(-len(X) // int(self.batch_size))
    coef, intercept, n = self._train(X, targets.astype(np.float32), weight, targets.shape[1], steps, start)
    self.n_iter_ = getattr(self, "n_iter_", 0) + n if not first else n
    self.coef_, self.intercept_ = (coef[0], float(intercept[0])) if y.ndim == 1 else (coef, intercept)
    return self

  def predict(self, X):
    """Predictions `[n]` (or `[n, targets]`)."""
    return self._raw(X)


class LinearClassifier(ClassifierMixin, _LinearModel):
  """Logistic regression (two classes, one logit) or softmax regression (more), trained by flaxzoo.

  Any labels (`classes_`, sorted as scikit-learn sorts them). Attributes as `LinearRegression`, with
  `coef_` `[1, d]` (two classes) or `[classes, d]`.
  """

  def _loss(self, num_outputs):
    return "logistic" if num_outputs == 1 else "softmax"

  def _model_name(self, num_outputs):
    return "logistic_regression" if num_outputs == 1 else "softmax_regression"

  def _model_args(self, d, k):
    return {"in_features": d, "num_classes": 2 if k == 1 else k}

  def _encode(self, y, first: bool, classes=None):
    check_classification_targets(y)
    if first:
      encoder = LabelEncoder().fit(y if classes is None else classes)
      self.classes_ = encoder.classes_
      if len(self.classes_) < 2:
        raise ValueError(f"the data has one class only ({self.classes_[0]!r}); a classifier needs at least 2")
    unknown = np.setdiff1d(np.unique(y), self.classes_)
    if len(unknown):
      raise ValueError(f"labels {unknown[:5].tolist()} are not among classes_ {self.classes_.tolist()}")
    return np.searchsorted(self.classes_, y)

  def fit(self, X, y, sample_weight=None):
    self._check_params()
    X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
    weight = self._weights(X, sample_weight)
    labels = self._encode(y, first=True)
    k = 1 if len(self.classes_) == 2 else len(self.classes_)
    start = (self.coef_, self.intercept_) if self.warm_start and getattr(self, "coef_", np.empty((0, 0))).shape == (
        k, X.shape[1]) else None
    self.coef_, self.intercept_, self.n_iter_ = self._train(X, labels.astype(np.int32), weight, k,
                                                            int(self.steps), start)
    return self

  def partial_fit(self, X, y, classes=None, sample_weight=None):
    """One pass of the optimizer over this batch; the first call needs `classes` (all the labels)."""
    first = not hasattr(self, "coef_")
    if first and classes is None:
      raise ValueError("classes must be given at the first call to partial_fit")
    self._check_params()
    X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], reset=first)
    weight = self._weights(X, sample_weight)
    labels = self._encode(y, first=first, classes=classes)
    k = 1 if len(self.classes_) == 2 else len(self.classes_)
    start = None if first else (self.coef_, self.intercept_)
    steps = 1 if self.batch_size is None else -(-len(X) // int(self.batch_size))
    self.coef_, self.intercept_, n = self._train(X, labels.astype(np.int32), weight, k, steps, start)
    self.n_iter_ = n if first else self.n_iter_ + n
    return self

  def decision_function(self, X):
    """Logits: `[n]` for two classes (of `classes_[1]`), else `[n, classes]`."""
    scores = self._raw(X)
    return scores[:, 0] if scores.shape[1] == 1 else scores

  def predict_proba(self, X):
    from scipy.special import expit, softmax

    scores = self._raw(X)
    if scores.shape[1] == 1:
      p1 = expit(scores[:, 0])
      return np.stack([1 - p1, p1], axis=1)
    return softmax(scores, axis=1)

  def predict_log_proba(self, X):
    scores = self._raw(X)
    if scores.shape[1] == 1:
      z = scores[:, 0]
      return np.stack([-np.logaddexp(0, z), -np.logaddexp(0, -z)], axis=1)
    return scores - np.logaddexp.reduce(scores, axis=1, keepdims=True)

  def predict(self, X):
    scores = self._raw(X)
    index = (scores[:, 0] > 0).astype(int) if scores.shape[1] == 1 else np.argmax(scores, axis=1)
    return self.classes_[index]
