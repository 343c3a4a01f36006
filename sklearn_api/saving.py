"""A fitted flaxzoo estimator saved as a flaxzoo export and loaded back as that estimator.

  from flaxzoo.sklearn import load, save
  folder = save(PoissonRegressor().fit(X, y), "exports", "visits")
  load(folder).predict(X)        # the same class, parameters and fitted attributes: the same numbers

The affine map (`coef_`, `intercept_`) is the export's Orbax parameters, in the fit's precision (float64
stays float64), under the zoo model that predicts as the estimator does (`glm` for a log link, so that
`flaxzoo predict` shows means). Everything else the estimator holds — its class (one of flaxzoo's), its
parameters, `classes_`, `feature_names_in_`, `n_iter_`, a CV's paths — is typed JSON in the card's
`"sklearn"` entry, every float written exactly. Nothing is pickled and loading runs no code: the class is
looked up among flaxzoo's estimators by name and given its recorded values. What JSON cannot hold exactly
(a splitter object as `cv`, a callable `scoring`) is refused at `save`, in one line.
"""

from __future__ import annotations

import numbers

import numpy as np

# The version of the card's "sklearn" entry.
FORMAT = 1
# The kept covariance `[(d+1), (d+1)]` is saved up to this many entries (512 parameters: ~5 MB of the card's
# JSON, whose reads stop at 64 MB); a wider model loads without it.
COVARIANCE_MAX_ENTRIES = 512 * 512


def _estimators() -> dict[str, type]:
  from flaxzoo.sklearn.classifier import LinearClassifier
  from flaxzoo.sklearn.cv import LinearClassifierCV, LinearRegressionCV
  from flaxzoo.sklearn.elastic_net import ElasticNet, ElasticNetCV, Lasso
  from flaxzoo.sklearn.estimators import LinearRegression
  from flaxzoo.sklearn.glm import GammaRegressor, PoissonRegressor, TweedieRegressor
  from flaxzoo.sklearn.robust import HuberRegressor, QuantileRegressor

  classes = (LinearRegression, LinearClassifier, LinearRegressionCV, LinearClassifierCV, PoissonRegressor,
             GammaRegressor, TweedieRegressor, ElasticNet, Lasso, ElasticNetCV, HuberRegressor, QuantileRegressor)
  return {cls.__name__: cls for cls in classes}


def encode(value, where: str):
  """`value` as JSON that `decode` turns back into an equal value (floats exactly: by their repr); a
  ValueError naming `where` for anything else (an object, a callable)."""
  if value is None or isinstance(value, (bool, str)):
    return value
  if isinstance(value, np.bool_):
    return bool(value)
  if isinstance(value, numbers.Integral):
    return int(value)
  if isinstance(value, numbers.Real):
    return {"float": repr(float(value))}
  if isinstance(value, np.ndarray):
    kind = value.dtype.kind
    if kind in "biu":
      return {"array": value.ravel().tolist(), "dtype": value.dtype.str, "shape": list(value.shape)}
    if kind == "f":
      return {"array": [repr(float(v)) for v in value.ravel()], "dtype": value.dtype.str, "shape": list(value.shape)}
    if kind == "U" or (kind == "O" and all(isinstance(v, str) for v in value.ravel())):
      return {"array": [str(v) for v in value.ravel()], "dtype": "str" if kind == "U" else "object",
              "shape": list(value.shape)}
    raise ValueError(f"{where}: an array of {value.dtype} cannot be saved")
  if isinstance(value, (list, tuple)):
    items = [encode(v, f"{where}[{k}]") for k, v in enumerate(value)]
    return items if isinstance(value, list) else {"tuple": items}
  if isinstance(value, dict):
    return {"dict": [[encode(k, f"{where} key"), encode(v, f"{where}[{k!r}]")] for k, v in value.items()]}
  raise ValueError(f"{where}: a {type(value).__name__} cannot be saved (only numbers, strings, arrays,"
                   " lists and dicts are)")


def decode(value):
  """The value `encode` wrote."""
  if value is None or isinstance(value, (bool, str, int)):
    return value
  if isinstance(value, list):
    return [decode(v) for v in value]
  if not isinstance(value, dict) or len(value) not in (1, 3):
    raise ValueError(f"not an encoded value: {str(value)[:80]}")
  if "float" in value:
    return float(value["float"])
  if "tuple" in value:
    return tuple(decode(v) for v in value["tuple"])
  if "dict" in value:
    return {decode(k): decode(v) for k, v in value["dict"]}
  shape, dtype = tuple(int(n) for n in value["shape"]), value["dtype"]
  if dtype in ("str", "object"):
    return np.asarray(value["array"], str if dtype == "str" else object).reshape(shape)
  if np.dtype(dtype).kind not in "biuf":
    raise ValueError(f"an array of {dtype} is not what save writes")
  return np.asarray(value["array"], np.float64 if np.dtype(dtype).kind == "f" else None).astype(dtype).reshape(shape)


def _spec(estimator) -> dict:
  """The card's `"sklearn"` entry: class, parameters and fitted attributes (but the affine map)."""
  name = type(estimator).__name__
  params = {k: encode(v, f"{name}.{k}") for k, v in estimator.get_params(deep=False).items()}
  skip = {"coef_", "intercept_", "checkpoint_", "_model", "_fit_gram_"}  # (`_fit_gram_`: a cache of the fit's rows)
  kept = getattr(estimator, "_covariance_", None)
  if kept is not None and np.size(kept["matrix"]) > COVARIANCE_MAX_ENTRIES:
    skip.add("_covariance_")  # (its JSON would outgrow what a card may hold: predict_interval then says so)
  attributes = {k: encode(v, f"{name}.{k}") for k, v in vars(estimator).items()
                if k not in skip and k not in params and (k.endswith("_") or k.startswith("_"))}
  return {"format": FORMAT, "class": name, "params": params, "attributes": attributes,
          "coef_shape": list(np.shape(estimator.coef_)), "intercept_is_scalar": np.ndim(estimator.intercept_) == 0}


def save(estimator, directory, name: str, *, force: bool = False):
  """Writes a fitted flaxzoo estimator as the export `directory/name/` (Orbax parameters in the fit's
  precision, `card.json`, no pickle); `load` brings back that estimator. Returns the folder. A ValueError in
  one line for what it cannot save: an estimator that is not flaxzoo's, unfitted, or holding a value JSON
  cannot (a splitter object as `cv`)."""
  from sklearn.utils.validation import check_is_fitted

  from flaxzoo.checkpoints.card import FORMAT as CARD_FORMAT
  from flaxzoo.checkpoints.card import library_versions
  from flaxzoo.checkpoints.exporting import export
  from flaxzoo.zoo.models import create_model

  known = _estimators()
  if type(estimator) not in known.values():
    raise ValueError(f"save: a {type(estimator).__module__}.{type(estimator).__name__} is not one of flaxzoo's"
                     f" estimators ({', '.join(known)})")
  check_is_fitted(estimator)
  spec = _spec(estimator)
  coef = np.asarray(estimator.coef_)
  dtype = np.float64 if coef.dtype == np.float64 else np.float32
  coef = coef.reshape(-1, coef.shape[-1]).astype(dtype)  # [k, d]
  intercept = np.atleast_1d(np.asarray(estimator.intercept_)).astype(dtype)
  k, d = coef.shape
  names = [str(n) for n in getattr(estimator, "feature_names_in_", [f"x{i}" for i in range(d)])]
  classes = getattr(estimator, "classes_", None)
  task = "regression" if classes is None else "classification"
  log_link = hasattr(estimator, "_power") and estimator._power() != 0
  if task == "classification":
    model = {"name": "logistic_regression" if len(classes) == 2 else "softmax_regression",
             "args": {"in_features": d, "num_classes": len(classes)}}
  else:
    model = {"name": "glm" if log_link else "linear_regression", "args": {"in_features": d, "out_features": k}}
  zoo_model = create_model(model["name"], **model["args"])
  zoo_model.linear.kernel.set_value(coef.T.copy())  # NumPy arrays: saved as they are, float64 included
  zoo_model.linear.bias.set_value(intercept.copy())
  class_names = None if classes is None else [str(c) for c in classes]
  card = {
      "name": name, "format": CARD_FORMAT, "task": task, "model": model,
      "preprocessing": {"name": "columns", "params": {"features": names, "label": "y", "task": task,
                                                      "classes": class_names}},
      "dataset": {"name": "given to fit (scikit-learn)"},
      "recipe": {"estimator": spec["class"], "step": int(np.sum(getattr(estimator, "n_iter_", 0))), "command": None},
      "sklearn": spec, "metrics": {}, "parameters": int(coef.size + intercept.size), "versions": library_versions(),
  }
  if task == "classification":
    card["classes"] = class_names
  if log_link:
    card["link"] = "log"
  if task == "regression" and k > 1:
    card["targets"] = [f"y{j}" for j in range(k)]
  return export(zoo_model, card, directory, force=force)


def estimator_of(model, card):
  """The estimator a card's `"sklearn"` entry describes, its affine map from the model's parameters."""
  from flaxzoo.checkpoints.errors import CheckpointError

  file = card.path / "card.json"
  spec = card.data["sklearn"]
  try:
    cls = _estimators().get(spec["class"])
    if cls is None:
      raise ValueError(f"sklearn.class {spec['class']!r} is not one of flaxzoo's estimators")
    estimator = cls(**{key: decode(value) for key, value in spec["params"].items()})
    for key, value in ((key, decode(value)) for key, value in spec["attributes"].items()):
      if not isinstance(key, str) or not (key.endswith("_") or key.startswith("_")) or key.startswith("__"):
        raise ValueError(f"sklearn.attributes: {key!r} is not a fitted attribute")
      setattr(estimator, key, value)
    kernel = np.asarray(model.linear.kernel[...])
    bias = np.asarray(model.linear.bias[...])
    estimator.coef_ = kernel.T.reshape(tuple(int(n) for n in spec["coef_shape"]))
    estimator.intercept_ = float(bias[0]) if spec["intercept_is_scalar"] else bias
  except (ValueError, TypeError, KeyError, AttributeError) as e:
    raise CheckpointError(f"{file}: its 'sklearn' entry cannot be read back ({e})") from None
  return estimator
