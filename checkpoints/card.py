"""Model cards: what belongs to a set of weights, as plain JSON (`card.json`).

A card records the model's constructor (`model: {name, args}`), the
preprocessing its inputs need, the dataset (name, checksum, split sizes), the
recipe (the run's config and the `flaxzoo train` command that reproduces it),
metrics computed from the model and the data (never typed in), and library
versions. Reading one loads JSON only.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flaxzoo.checkpoints.errors import CheckpointError

if TYPE_CHECKING:  # reading a card imports neither numpy nor JAX (flaxzoo list)
  import numpy as np

  from flaxzoo.datasets.preprocessing import Preprocessing

CARD = "card.json"
FORMAT = "flaxzoo-card/1"
_REQUIRED = ("name", "model", "preprocessing", "metrics")


def library_versions() -> dict[str, str]:
  """Python's and the libraries' versions, for results, checkpoints and cards."""
  from importlib import metadata

  names = ["flaxzoo", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "tensorflow-datasets", "numpy"]
  versions = {"python": sys.version.split()[0]}
  for name in names:
    try:
      versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      versions[name] = "not installed"
  return versions


@dataclasses.dataclass(frozen=True)
class Card:
  """A card read from `card.json`: `data` is the JSON, `path` the folder.

  `card.preprocess(table)` turns a raw table into model inputs `[n, d]`,
  `card.postprocess(outputs)` model outputs into the label's own unit.
  """

  data: dict[str, Any]
  path: pathlib.Path

  @property
  def name(self) -> str:
    return self.data["name"]

  @property
  def task(self) -> str:
    return self.data.get("task", "regression")

  @property
  def preprocessing(self) -> Preprocessing:
    from flaxzoo.datasets.preprocessing import preprocessing_from_dict

    try:
      return preprocessing_from_dict(self.data["preprocessing"])
    except (ValueError, TypeError, AttributeError, KeyError) as e:
      raise CheckpointError(f"{self.path / CARD}: its preprocessing cannot be rebuilt ({e})") from None

  def preprocess(self, table) -> np.ndarray:
    return self.preprocessing.features_of(table)

  def postprocess(self, outputs) -> np.ndarray:
    from flaxzoo.zoo.links import inverse_link

    means = inverse_link(self.data.get("link", "identity"), outputs)  # a GLM's outputs are log means
    values = self.preprocessing.postprocess(means).reshape(len(means), -1)
    return values[:, 0] if values.shape[1] == 1 else values  # `[n]`, or `[n, targets]` (card's `targets`)

  @property
  def metrics(self) -> dict[str, dict[str, float]]:
    return self.data["metrics"]


def read_card(path) -> Card:
  """The card in folder `path`; a CheckpointError naming the file if it is missing or malformed."""
  path = pathlib.Path(path)
  file = path / CARD
  from flaxzoo.checkpoints.files import read_bounded

  try:
    data = json.loads(read_bounded(file).decode())
  except FileNotFoundError:
    raise CheckpointError(f"{path} is not a pretrained checkpoint (no {CARD})") from None
  except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
    raise CheckpointError(f"{file}: not a valid card ({e})") from None
  if not isinstance(data, dict):
    raise CheckpointError(f"{file}: not a valid card (not a JSON object)")
  for key in _REQUIRED:
    if key not in data:
      raise CheckpointError(f"{file}: the card has no {key!r}")
  model, metrics = data["model"], data["metrics"]
  if not (isinstance(model, dict) and isinstance(model.get("name"), str) and isinstance(model.get("args"), dict)):
    raise CheckpointError(f"{file}: 'model' must be {{\"name\": str, \"args\": {{...}}}}")
  if not isinstance(data["preprocessing"], dict) or not isinstance(data["name"], str):
    raise CheckpointError(f"{file}: 'name' must be a string and 'preprocessing' an object")
  if not (isinstance(metrics, dict) and all(isinstance(m, dict) for m in metrics.values())):
    raise CheckpointError(f"{file}: 'metrics' must map each split to an object")
  _check_optional(data, file)
  return Card(data, path)


def _numbers(value) -> bool:
  return isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


def _check_optional(data: Mapping[str, Any], file) -> None:
  """The optional entries a card may carry have the types predict reads."""
  checks = {
      "input_range": lambda v: isinstance(v, dict) and _numbers(v.get("min")) and _numbers(v.get("max"))
      and len(v["min"]) == len(v["max"]),
      "classes": lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v) and len(v) >= 2,
      "bias_correction": lambda v: isinstance(v, dict) and _numbers([v.get("slope"), v.get("intercept")]),
      "task": lambda v: v in ("regression", "classification"),
      "link": lambda v: v in ("identity", "log"),
      "targets": lambda v: isinstance(v, list) and all(isinstance(t, str) for t in v) and len(v) >= 2,
      "recipe": lambda v: isinstance(v, dict) and (v.get("step") is None or (
          isinstance(v["step"], int) and not isinstance(v["step"], bool) and 0 <= v["step"] < 2**31)),
      "sklearn": lambda v: isinstance(v, dict) and isinstance(v.get("params"), dict)
      and isinstance(v.get("attributes"), dict),
      "offset": lambda v: isinstance(v, dict) and isinstance(v.get("column"), str) and v["column"],
      "prediction_interval": lambda v: isinstance(v, dict) and isinstance(v.get("covariance"), list)
      and all(_numbers(row) and len(row) == len(v["covariance"]) for row in v["covariance"])
      and _numbers([v.get("scale"), v.get("quantile")]) and v["scale"] >= 0 and v["quantile"] >= 0,
  }
  for key, valid in checks.items():
    if key in data and not valid(data[key]):
      raise CheckpointError(f"{file}: {key!r} is not what a card holds there")
  if data.get("task") == "classification" and "classes" not in data:
    raise CheckpointError(f"{file}: a classification card needs 'classes'")
  labels = data.get("recipe", {}).get("labels")  # the labels as fitted (`save` of an older flaxzoo)
  if labels is not None and not (isinstance(labels, list) and len(labels) == len(data.get("classes", []))
                                 and all(isinstance(c, (str, int, float)) for c in labels)):
    raise CheckpointError(f"{file}: 'recipe.labels' must list one label for each of 'classes'")


def check_fits(card: Card, in_features: int | None, outputs: int) -> None:
  """What a card says against its model (`in_features`, `outputs`) and against itself, before any use: the
  preprocessing rebuilds, its numbers are finite (std > 0) and one per model input, the classes are as many
  as the model tells apart, the input range and bias correction are finite numbers of the right length.
  A CheckpointError naming the file and field otherwise."""
  import math

  file = card.path / CARD
  card.preprocessing  # noqa: B018 - rebuilds, or a CheckpointError naming the card
  params = card.data["preprocessing"].get("params", {})

  def numbers(field: str, value, length: int | None, positive: bool = False) -> None:
    if not (_numbers(value) and all(math.isfinite(v) and (v > 0 or not positive) for v in value)):
      raise CheckpointError(f"{file}: {field} must be a list of finite numbers{' > 0' if positive else ''}")
    if length is not None and len(value) != length:
      raise CheckpointError(f"{file}: {field} has {len(value)} numbers; the model has {length} inputs")

  if params.get("mean") is not None or params.get("std") is not None:
    numbers("preprocessing.params.mean", params.get("mean"), in_features)
    numbers("preprocessing.params.std", params.get("std"), in_features, positive=True)
  scale = params.get("scale")
  if scale is not None and not (isinstance(scale, dict) and _numbers(list(scale.values()))
                                and all(math.isfinite(v) and v != 0 for v in scale.values())):
    raise CheckpointError(f"{file}: preprocessing.params.scale must map columns to finite numbers other than 0")
  features = params.get("features")
  if isinstance(features, list) and len(set(map(str, features))) != len(features):
    raise CheckpointError(f"{file}: preprocessing.params.features names a column twice")
  label_scale = params.get("label_scale", 1.0)
  if not (isinstance(label_scale, (int, float)) and not isinstance(label_scale, bool) and math.isfinite(label_scale)
          and label_scale != 0):
    raise CheckpointError(f"{file}: preprocessing.params.label_scale must be a finite number other than 0")
  if card.task == "classification":
    expected = 2 if outputs == 1 else outputs
    if len(card.data["classes"]) != expected:
      raise CheckpointError(f"{file}: 'classes' names {len(card.data['classes'])} classes; the model tells"
                            f" {expected} apart")
  elif outputs != len(card.data.get("targets") or [None]):
    raise CheckpointError(f"{file}: a regression card of {len(card.data.get('targets') or [None])} target(s) over a"
                          f" model of {outputs} outputs")
  if "input_range" in card.data:
    for key in ("min", "max"):
      numbers(f"input_range.{key}", card.data["input_range"][key], in_features)
  if "bias_correction" in card.data:
    numbers("bias_correction", [card.data["bias_correction"][k] for k in ("slope", "intercept")], None)
  if "prediction_interval" in card.data:
    entry = card.data["prediction_interval"]
    if outputs != 1 or (in_features is not None and len(entry["covariance"]) != in_features + 1):
      raise CheckpointError(f"{card.path / CARD}: 'prediction_interval.covariance' must be [inputs + 1, inputs + 1]"
                            " of a one-output model")
    numbers("prediction_interval.covariance", [v for row in entry["covariance"] for v in row], None)


def summary(card_data: Mapping[str, Any]) -> str:
  """One line of a card's test metrics."""
  test = card_data["metrics"].get("test")
  if not test:
    return "no test metrics recorded"
  if "accuracy" in test:
    auc = f", ROC AUC {test['roc_auc']:.3f}" if "roc_auc" in test else ""
    return f"test accuracy {test['accuracy']:.3f}, balanced {test['balanced_accuracy']:.3f}{auc}"
  unit = next((k[4:] for k in test if k.startswith("mae_")), None)  # errors in the label's own unit
  if unit:
    r = f", r {test['pearson_r']:.3f}" if "pearson_r" in test else ""
    return f"test MAE {test[f'mae_{unit}']:.2f} {unit}, R2 {test['r2']:.3f}{r}"
  return f"test MSE {test['mse']:.4g}, R2 {test['r2']:.3f}"


# Resamples of the test rows behind a card's bootstrap interval.
BOOTSTRAP_RESAMPLES = 2000


def bootstrap_interval(values, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict[str, Any]:
  """The mean of `values [n]` (one number per test row) and its 95% percentile-bootstrap interval:
  the mean over `resamples` seeded resamplings of the n rows with replacement."""
  import numpy as np

  values = np.asarray(values, np.float64)
  rows = np.random.default_rng(seed).integers(0, len(values), (resamples, len(values)))
  low, high = np.percentile(values[rows].mean(axis=1), [2.5, 97.5])
  return {"value": float(values.mean()), "ci95": [float(low), float(high)], "resamples": resamples, "seed": seed,
          "method": "percentile bootstrap over the test rows"}


def test_bootstrap(trainer, data) -> dict[str, Any]:
  """The bootstrap interval of the headline test metric: MAE (in the label's unit where it has one), or
  accuracy for classification."""
  import numpy as np

  from flaxzoo.zoo.links import decide

  x, y = data.splits["test"]
  offset = data.offsets.get("test") if hasattr(data, "offsets") else None
  outputs = np.asarray(trainer.predict(x) if data.task == "classification" else trainer.predict_means(x, offset))
  if data.task == "classification":
    predicted = decide(outputs)
    return {"metric": "accuracy", **bootstrap_interval(predicted == np.asarray(y))}
  preprocessing = data.preprocessing
  scale, unit = preprocessing.label_scale, preprocessing.label_unit
  errors = np.abs(outputs[:, 0].astype(np.float64) - np.asarray(y, np.float64).reshape(len(y), -1)[:, 0])
  if scale is not None and unit:
    return {"metric": f"mae_{unit}", **bootstrap_interval(errors * scale)}
  return {"metric": "mae", **bootstrap_interval(errors)}


def build_card(name: str, trainer, data, *, model: Mapping[str, Any], recipe: Mapping[str, Any],
               evaluate=None, cross_validation: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """The card of a trained model: computed from the model and the data, never typed in.

  Args:
    name: the card's name.
    trainer: a `flaxzoo.trainers.Trainer` holding the trained parameters.
    data: the run's `flaxzoo.datasets.LoadedData` (splits, raw columns, fitted preprocessing).
    model: `{"name", "args"}` of `flaxzoo.zoo.create_model`.
    recipe: `{"experiment", "step", "config", "command"}` of the run.
    evaluate: `evaluate(split_name, split)` → metrics; default `trainer.evaluate`.
    cross_validation: the recipe's cross-validated metrics (`flaxzoo.experiments.sweep.cross_validate`),
      recorded as they are.
  """
  import jax
  import numpy as np

  evaluate = evaluate or (lambda _, split: trainer.evaluate(split))
  preprocessing = data.preprocessing
  card = {
      "name": name,
      "format": FORMAT,
      "task": data.task,
      "model": dict(model),
      "preprocessing": preprocessing.to_dict(),
      "dataset": {**data.record, "splits": {s: len(y) for s, (_, y) in data.splits.items()}},
      "recipe": dict(recipe),
      "parameters": int(sum(np.size(leaf) for leaf in jax.tree.leaves(trainer.params))),
      "versions": library_versions(),
  }
  if data.task == "classification":
    card["classes"] = list(data.class_names)
  x_train = np.asarray(data.splits["train"][0], np.float64)
  # The model inputs the training split spans: predictions outside it are flagged (`predict`).
  card["input_range"] = {"min": x_train.min(axis=0).tolist(), "max": x_train.max(axis=0).tolist(),
                         "note": "per model input (after preprocessing), over the training split"}
  card["metrics"] = {split: evaluate(split, xy) for split, xy in data.splits.items()}
  card["test_bootstrap"] = test_bootstrap(trainer, data)
  if cross_validation is not None:
    card["cross_validation"] = dict(cross_validation)
  if data.task == "classification":
    return card
  # The label's own unit (years for brain age): what the data's preprocessing reports beyond the trainer's.
  if trainer.link != "identity":  # the outputs are log means: predictions are exp(outputs)
    card["link"] = trainer.link
  offsets = getattr(data, "offsets", {})
  predicted = {split: preprocessing.postprocess(trainer.predict_means(x, offsets.get(split)))[:, 0]
               for split, (x, _) in data.splits.items()}
  card.update(preprocessing.fit_report(predicted["train"], data.raw["train"]))
  for split in card["metrics"]:
    card["metrics"][split].update(preprocessing.report_metrics(predicted[split], data.raw[split], card))
  if model.get("name") == "linear_regression":
    # How far the weights are from the exact optimum of their own (unpenalised) objective.
    x_train, y_train = data.splits["train"]
    design = np.c_[x_train.astype(np.float64), np.ones(len(x_train))]
    coef = np.linalg.lstsq(design, y_train.astype(np.float64), rcond=None)[0]
    optimum_mse = float(np.mean((design @ coef - y_train) ** 2))
    card["least_squares"] = {
        "train_mse_optimum": optimum_mse,
        "train_mse_excess": card["metrics"]["train"]["mse"] / optimum_mse - 1 if optimum_mse > 0 else 0.0,
        "note": "the closed-form least-squares optimum (np.linalg.lstsq) of the training split",
    }
  from flaxzoo.checkpoints.intervals import interval_entry

  entry = interval_entry(trainer, data, model.get("name"))
  if entry:
    card["prediction_interval"] = entry
  notes = preprocessing.card_notes(data.raw["train"], card)
  if notes:
    card["model_card"] = notes
  return card


def readme(card: Mapping[str, Any]) -> str:
  """The README.md of an export, generated from its card (the preprocessing may write its own)."""
  from flaxzoo.datasets.preprocessing import preprocessing_from_dict, uncertainty_lines

  own = preprocessing_from_dict(card["preprocessing"]).card_readme(card)
  if own is not None:
    return own
  metrics = card["metrics"]
  columns = [c for c in ("accuracy", "balanced_accuracy", "log_loss", "roc_auc", "mse", "mae", "r2")
             if c in metrics.get("test", {})]
  rows = "\n".join(f"| {split} | {m['count']} | " + " | ".join(f"{m[c]:.4f}" for c in columns) + " |"
                   for split, m in metrics.items())
  pre = card["preprocessing"]
  what = (f"classes {', '.join(card['classes'])}" if card["task"] == "classification" else "a number")
  standardised = "standardised with the training split's mean and std" if pre["params"].get("mean") else "as they are"
  confusion = ""
  if card["task"] == "classification" and "confusion" in metrics.get("test", {}):
    confusion = (f"\nTest confusion matrix (rows: true class, columns: predicted; {', '.join(card['classes'])}):"
                 f" `{metrics['test']['confusion']}`.\n")
  uncertainty = uncertainty_lines(card)
  return f"""# {card['name']}

A `{card['model']['name']}` ({card['parameters']} parameters) trained on `{card['dataset']['name']}`
({card['task']}: predicts {what}; features {standardised}).

| split | examples | {' | '.join(columns)} |
|---|---|{'---|' * len(columns)}
{rows}
{confusion}
{uncertainty}Recipe: `{card['recipe']['command']}` (step {card['recipe']['step']}; the full config is in card.json).
Generated from card.json by `flaxzoo export`.

```python
from flaxzoo.checkpoints import load_pretrained, predict
model, card = load_pretrained("./{card['name']}")   # this folder (a path), from the one that holds it
result = predict(model, card, table)
```
"""
