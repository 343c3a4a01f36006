"""flaxzoo checkpoints as fitted scikit-learn objects, and estimators saved as flaxzoo exports.

  from flaxzoo.sklearn import from_pretrained
  ages = from_pretrained("brain_age_tissue").predict(df)   # df: GM, WM, CSF, total volume (cm^3)

`from_pretrained` returns a fitted `Pipeline` of the card's preprocessing (`CardFeatures`) and the
estimator, its coefficients read from the checkpoint's parameters (a regression's in the label's own
unit: years for brain age). `save` (`flaxzoo.sklearn.saving`) writes a fitted estimator as a flaxzoo export
(Orbax parameters and `card.json`, no pickle); `load` reads one back as that estimator (`from_pretrained` of a
path does too, with the preprocessing in front).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline

from flaxzoo.sklearn.classifier import LinearClassifier
from flaxzoo.sklearn.estimators import LinearRegression


class CardFeatures(TransformerMixin, BaseEstimator):
  """A card's preprocessing as a transformer: a table (a DataFrame, or a mapping of columns) of raw
  values → the model's inputs `[n, d]`. For brain age the columns are matched as volume tables
  are (`GM Vol`, `gm`, `gray_matter`, …)."""

  def __init__(self, preprocessing: dict | None = None):
    self.preprocessing = preprocessing

  def fit(self, X=None, y=None):
    return self

  def transform(self, X):
    from flaxzoo.datasets.preprocessing import preprocessing_from_dict

    preprocessing = preprocessing_from_dict(self.preprocessing)
    return np.asarray(preprocessing.features_of(_columns_of(X, preprocessing)), np.float64)

  def __sklearn_is_fitted__(self) -> bool:
    return True


def _columns_of(X, preprocessing):
  """`{input name: values}` from a DataFrame or mapping, names matched as the preprocessing's tables are."""
  names = list(getattr(X, "columns", X.keys() if hasattr(X, "keys") else []))
  if not names:
    raise TypeError(f"{type(X).__name__}: expected a DataFrame or a mapping of named columns")
  from flaxzoo.datasets.brain_age.preprocessing import TissueFractions

  if isinstance(preprocessing, TissueFractions):
    from flaxzoo.datasets.brain_age.volumes import _find_columns

    found = _find_columns(tuple(str(n) for n in names), "the table", need_age=False, chosen={})
    return {field: np.asarray(X[name], np.float64) for field, name in found.items() if field != "id"}
  return {name: np.asarray(X[name]) for name in preprocessing.input_columns}


def from_pretrained(name_or_path) -> Pipeline:
  """A fitted `Pipeline([("features", CardFeatures), ("model", estimator)])` of a shipped model or an
  export folder (see `flaxzoo.checkpoints.load_pretrained`)."""
  from flaxzoo.checkpoints.pretrained import load_pretrained

  model, card = load_pretrained(name_or_path)
  estimator = _estimator_of(model, card)
  return Pipeline([("features", CardFeatures(card.data["preprocessing"])), ("model", estimator)])


def _estimator_of(model, card):
  if "sklearn" in card.data:  # written by `save`: that estimator, as it was
    from flaxzoo.sklearn.saving import estimator_of

    return estimator_of(model, card)
  if card.data.get("link", "identity") != "identity":
    raise ValueError(f"{card.name}: a log-link model (glm) has no scikit-learn estimator here yet; predict with"
                     " flaxzoo.checkpoints.predict or `flaxzoo predict`")
  kernel = np.asarray(model.linear.kernel[...], np.float64)  # [d, k]
  bias = np.asarray(model.linear.bias[...], np.float64)
  d = kernel.shape[0]
  if card.task == "classification":
    estimator = LinearClassifier()
    # The labels as they were (ints stay ints) when `save` wrote them; else the card's class names.
    estimator.classes_ = np.asarray(card.data.get("recipe", {}).get("labels") or card.data["classes"])
    estimator.coef_, estimator.intercept_ = kernel.T, bias
  else:
    # The label's own unit (years for brain age) is a linear map of the outputs: folded into the coefficients.
    unit = card.preprocessing.postprocess(np.eye(1))[0, 0]
    estimator = LinearRegression()
    coef, intercept = kernel.T * unit, bias * unit
    estimator.coef_, estimator.intercept_ = (coef[0], float(intercept[0])) if coef.shape[0] == 1 else (coef, intercept)
  step = int(card.data.get("recipe", {}).get("step", 0) or 0)
  estimator.n_features_in_ = d
  estimator.n_iter_ = np.asarray([step], np.int32) if card.task == "classification" else step
  estimator.checkpoint_ = {"model": card.data["model"], "kernel": np.asarray(model.linear.kernel[...], np.float32),
                           "bias": np.asarray(model.linear.bias[...], np.float32),
                           "scale": 1.0 if card.task == "classification" else float(unit)}
  return estimator


def load(path):
  """An export as a fitted estimator: the estimator `save` wrote; an export with a preprocessing of its own
  (standardisation, tissue fractions: any `flaxzoo export`) as `from_pretrained`'s Pipeline, which applies
  it, so that its predictions are `flaxzoo predict`'s."""
  pipeline = from_pretrained(path)
  spec = pipeline.named_steps["features"].preprocessing
  params = spec.get("params", {})
  if spec.get("name") == "columns" and not any(params.get(k) for k in ("mean", "std", "scale")):
    return pipeline.named_steps["model"]
  return pipeline
