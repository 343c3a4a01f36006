"""flaxzoo's linear models as scikit-learn estimators, fitted by flaxzoo's exact solvers.

  from flaxzoo.sklearn import LinearClassifier, LinearRegression

Parameters carry scikit-learn's names, scales and defaults:

| flaxzoo | scikit-learn |
|---|---|
| `LinearRegression()` | `sklearn.linear_model.LinearRegression()` |
| `LinearRegression(alpha=a)` | `Ridge(alpha=a)` |
| `LinearClassifier()` | `LogisticRegression()` (`C=1.0`) |
| `LinearClassifier(C=C)` | `LogisticRegression(C=C)`; `C=np.inf`: no penalty |
| `LinearClassifier(C=C, l1_ratio=r)` | `LogisticRegression(C=C, l1_ratio=r)` (r = 1: L1, between: elastic net) |

`penalty.l2_of_alpha` and `penalty.penalties_of_C` write each once as the training core's `l2` (the
objective there is the weighted mean loss plus `l2 / 2 * |coef|^2`, the intercept not penalised).
`solver="auto"`: the exact solver `solvers.choose` picks, fitted by `trainers.exact.fit_affine` (float64 on
float64 input); `solver="optax"`: optax steps by name (`optimizer`, `learning_rate`), as `partial_fit` takes.
`max_iter` and `tol` are scikit-learn's: iterations, and the largest entry of the gradient of the
mean objective (optax: the relative change of the loss between checks). Stopping at `max_iter`
warns with `ConvergenceWarning`.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from flaxzoo.sklearn.checks import check_finite, validated
from flaxzoo.sklearn.inference import _Inference
from flaxzoo.sklearn.penalty import l2_of_alpha

SOLVERS = ("auto", "normal_equation", "newton", "lbfgs", "optax")


class _DenseInput(BaseEstimator):
  """Every flaxzoo estimator reads dense arrays only."""

  def __sklearn_tags__(self):
    tags = super().__sklearn_tags__()
    tags.input_tags.sparse = False
    return tags


class _LinearModel(_DenseInput):
  """What both estimators share: the parameters, the solvers, the optax path."""

  def __init__(self, *, solver="auto", tol=1e-4, max_iter=100, optimizer="lbfgs", learning_rate=0.1, batch_size=None,
               check_every=10, seed=0, warm_start=False):
    self.solver = solver
    self.tol = tol
    self.max_iter = max_iter
    self.optimizer = optimizer
    self.learning_rate = learning_rate
    self.batch_size = batch_size
    self.check_every = check_every
    self.seed = seed
    self.warm_start = warm_start

  # Subclasses: `_loss(num_outputs)`, `_model_name(num_outputs)`, `_model_args(d, k)`, `_l2(weight, k)`.

  def _make_optimizer(self):
    from flaxzoo.trainers.optimizers import OPTIMIZERS

    return OPTIMIZERS.get(self.optimizer)(self.learning_rate)

  def _check_params(self):
    if self.solver not in SOLVERS:
      raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {self.solver!r}")
    from flaxzoo.trainers.optimizers import OPTIMIZERS

    # A name, never an optax object: the estimator then clones and pickles (GridSearchCV, joblib).
    if not isinstance(self.optimizer, str) or self.optimizer not in OPTIMIZERS:
      raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS.names())} (a name), got {self.optimizer!r}")
    for name in ("max_iter", "check_every"):
      value = getattr(self, name)
      if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if self.batch_size is not None and (not isinstance(self.batch_size, numbers.Integral) or self.batch_size < 1):
      raise ValueError(f"batch_size must be None or an integer >= 1, got {self.batch_size!r}")
    if self.batch_size is not None and self.solver not in ("auto", "optax"):
      raise ValueError(f"batch_size needs solver='optax' (the exact solvers are full batch), got {self.solver!r}")
    for name in ("tol", "learning_rate"):
      value = getattr(self, name)
      if not isinstance(value, numbers.Real) or not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

  def _uses_optax(self) -> bool:
    return self.solver == "optax" or self.batch_size is not None

  def _l1(self, weight):
    return 0.0

  def _fit(self, x, targets, weight, num_outputs, start=None):
    """`(coef [k, d], intercept [k], n_iter, moments)` (float64) of the penalised fit on `x`, by the chosen solver;
    `moments`: the normal equation's (`Solution.moments`), else None."""
    l2, l1 = self._l2(weight, num_outputs), self._l1(weight)
    if l1 > 0 and self._uses_optax():
      raise ValueError(f"{type(self).__name__}: an L1 penalty (l1_ratio > 0) is fitted by the exact solvers"
                       " (proximal Newton), not solver='optax' or batch_size")
    if self._uses_optax():
      coef, intercept, n_iter = self._train(x, targets, weight, num_outputs, int(self.max_iter), l2, start)
      converged, moments = n_iter < int(self.max_iter), None
    else:
      from flaxzoo.trainers.exact import fit_affine

      loss = self._loss(num_outputs)
      if start is not None:
        start = (start[0].T[None], start[1][None])
      fit = fit_affine(x, targets, loss, weight[None], [l2], [l1] if l1 > 0 else None, self.solver, float(self.tol),
                       int(self.max_iter), start, None if loss == "mse" else self._num_classes)
      coef, intercept, n_iter, converged = fit.coef[0].T, fit.intercept[0], int(fit.n_iter[0]), bool(fit.converged[0])
      moments = fit.moments
    if not converged:
      warnings.warn(f"{type(self).__name__} did not converge in max_iter={self.max_iter} iterations (tol={self.tol});"
                    " increase max_iter, or scale the data", ConvergenceWarning, stacklevel=3)
    return coef, intercept, n_iter, moments

  def _train(self, x, targets, weight, num_outputs, steps, l2, start=None):
    """The optax path (`trainers.optax_fit`): `(coef [k, d], intercept [k], n_iter)` (float64)."""
    from flaxzoo.trainers.optax_fit import fit_affine_steps

    model = (self._model_name(num_outputs), self._model_args(x.shape[1], num_outputs))
    try:
      return fit_affine_steps(x, targets, weight, self._loss(num_outputs), model, num_outputs, self._make_optimizer(),
                              l2, steps, self.tol, int(self.check_every), self.batch_size, int(self.seed), start)
    except FloatingPointError as e:
      raise FloatingPointError(f"{type(self).__name__}: {e}") from None

  def _weights(self, X, sample_weight):
    weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
    if np.any(weight < 0):
      raise ValueError("sample_weight must not be negative")
    if not np.any(weight > 0):
      raise ValueError("sample_weight must have a positive entry")
    return weight

  def _raw(self, X):
    check_is_fitted(self)
    X = validated(self, X, reset=False, dtype=[np.float64, np.float32])
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


class LinearRegression(RegressorMixin, _Inference, _LinearModel):
  """Least squares, or ridge regression with `alpha > 0` (one or several targets), fitted by flaxzoo.

  Args:
    alpha: the L2 penalty on `Ridge`'s scale: `|y - X coef - b|² + alpha |coef|²` (weighted rows).
    solver: `"auto"` / `"normal_equation"` (exact, one pass), or `"optax"` (gradient steps).
    The rest as `LinearClassifier`.

  Attributes (after `fit`): `coef_` `[d]` (or `[targets, d]`), `intercept_` (float or `[targets]`),
  `n_features_in_`, `feature_names_in_` (a DataFrame's columns), `n_iter_` (passes or optimizer steps).
  """

  def __init__(self, alpha=0.0, *, solver="auto", tol=1e-4, max_iter=100, optimizer="lbfgs", learning_rate=0.1,
               batch_size=None, check_every=10, seed=0, warm_start=False):
    super().__init__(solver=solver, tol=tol, max_iter=max_iter, optimizer=optimizer, learning_rate=learning_rate,
                     batch_size=batch_size, check_every=check_every, seed=seed, warm_start=warm_start)
    self.alpha = alpha

  def __sklearn_tags__(self):
    tags = super().__sklearn_tags__()
    tags.target_tags.multi_output = True  # y [n, targets]: one linear map to all of them
    return tags

  def _check_params(self):
    super()._check_params()
    if self.solver in ("newton", "lbfgs"):
      raise ValueError(f"solver {self.solver!r} is for LinearClassifier; least squares takes auto, normal_equation"
                       " or optax")
    if not isinstance(self.alpha, numbers.Real) or not 0 <= self.alpha < np.inf:
      raise ValueError(f"alpha must be a finite number >= 0, got {self.alpha!r}")

  def _l2(self, weight, k):
    return l2_of_alpha(self.alpha, weight.sum(), k)

  def _loss(self, num_outputs):
    return "mse"

  def _model_name(self, num_outputs):
    return "linear_regression"

  def _model_args(self, d, k):
    return {"in_features": d, "out_features": k}

  def fit(self, X, y, sample_weight=None):
    self._check_params()
    # X's finiteness, where the fit is the normal equation: from its Gram matrix (a NaN or an infinity in X makes
    # its diagonal non-finite; scikit-learn's own check then, its refusal and message): one read of the rows
    # fewer (a 1M x 32 fit: 105 -> 90 ms)
    exact = not self._uses_optax()
    X, y = validated(self, X, y, finite=not exact, multi_output=True, y_numeric=True, dtype=[np.float64, np.float32])
    weight = self._weights(X, sample_weight)
    y = np.asarray(y, np.float64)
    targets = y.reshape(len(y), -1)
    start = self._start(targets.shape[1]) if self.warm_start else None
    with np.errstate(invalid="ignore", over="ignore"):  # (non-finite rows: refused below, as scikit-learn refuses)
      coef, intercept, n_iter, moments = self._fit(X, targets, weight, targets.shape[1], start)
    if exact and not (moments is not None and np.all(np.isfinite(moments["gram"]))):
      check_finite(X, type(self).__name__)
    self.n_iter_ = n_iter
    self.coef_, self.intercept_ = (coef[0], float(intercept[0])) if y.ndim == 1 else (coef, intercept)
    self._covariance_ = None
    if y.ndim == 1 and exact:  # what predict_interval reads (`_keep_covariance`)
      self._keep_covariance(X, y, weight, "mse", self._l2(weight, 1), moments)
    return self

  def _inference_problem(self, X, y, weight, offset):
    if offset is not None:
      raise ValueError("LinearRegression takes no offset (subtract it from y); the GLM regressors take one")
    if np.ndim(y) != 1:
      raise ValueError(f"standard errors are computed for one target, y has shape {np.shape(y)}")
    return X, np.asarray(y, np.float64), weight, "mse", lambda total: self._l2(np.asarray([total]), 1), 0.0

  def predict_interval(self, X, *, confidence=0.95, kind="observation"):
    """`[n, 2]` (low, high): the `confidence` interval of a new observation (`kind="observation"`: the
    coefficients' uncertainty and the residuals' scale) or of the mean (`"mean"`), with Student's t, as
    statsmodels' `get_prediction().summary_frame()`: from the covariance `fit` kept (no training rows)."""
    eta, variance, cov, q = self._interval(X, confidence, kind)
    spread = q * np.sqrt(variance + (cov.scale if kind == "observation" else 0.0))
    return np.stack([eta - spread, eta + spread], axis=1)

  def _start(self, k):
    """`(coef [k, d], intercept [k])` to continue from, where `coef_` and `intercept_` have this fit's shapes
    (`[d]` and a number for one target); else None (a swapped `[d, k]` was reshaped into a scrambled start)."""
    coef, intercept = getattr(self, "coef_", None), getattr(self, "intercept_", None)
    d = self.n_features_in_
    shapes = {(k, d), (d,)} if k == 1 else {(k, d)}
    if coef is None or np.shape(coef) not in shapes or np.size(intercept) != k:
      return None
    return np.reshape(coef, (k, d)), np.reshape(intercept, (k,))

  def partial_fit(self, X, y, sample_weight=None):
    """One pass of the optimizer over this batch (full batch: one step), from the current coefficients."""
    first = not hasattr(self, "coef_")
    self._check_params()
    X, y = validated(self, X, y, multi_output=True, y_numeric=True, dtype=[np.float64, np.float32],
                         reset=first)
    weight = self._weights(X, sample_weight)
    y = np.asarray(y, np.float64)
    targets = y.reshape(len(y), -1)
    start = None if first else self._start(targets.shape[1])
    if not first and start is None:
      raise ValueError(f"partial_fit continues from coef_ {np.shape(self.coef_)} and intercept_"
                       f" {np.shape(self.intercept_)}; this batch needs [{targets.shape[1]}, {X.shape[1]}] and"
                       f" [{targets.shape[1]}] (fit starts afresh)")
    steps = 1 if self.batch_size is None else -(-len(X) // int(self.batch_size))
    coef, intercept, n = self._train(X, targets, weight, targets.shape[1], steps,
                                     self._l2(weight, targets.shape[1]), start)
    self.n_iter_ = getattr(self, "n_iter_", 0) + n if not first else n
    self._covariance_ = None  # (optax steps moved the coefficients: the last fit's covariance is not theirs)
    self.coef_, self.intercept_ = (coef[0], float(intercept[0])) if y.ndim == 1 else (coef, intercept)
    return self

  def predict(self, X):
    """Predictions `[n]` (or `[n, targets]`)."""
    return self._raw(X)
