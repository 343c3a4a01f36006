"""Pretrained models: `load_pretrained(name_or_path) -> (model, card)`, offline.

A pretrained checkpoint is a folder `NAME/` with `card.json` (the model's
constructor arguments, preprocessing, dataset, recipe, metrics, versions) and
`params/`, an Orbax checkpoint of the parameters only. The package ships some
in `flaxzoo/checkpoints/`. Loading reads JSON and arrays only: nothing in a
checkpoint can run code, and no network is touched.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import os
import pathlib
from typing import Any, Mapping

import jax
import numpy as np
from flax import nnx

from flaxzoo.datasets.preprocessing import preprocessing_from_dict
from flaxzoo.zoo.registry import UnknownNameError, create_model

CARD = "card.json"


@dataclasses.dataclass(frozen=True)
class Card:
  """What belongs to a set of weights: read from `card.json`, plain data.

  `card.preprocess(table)` turns raw volumes into model inputs `[n, d]`,
  `card.postprocess(outputs)` model outputs into years, and
  `card.corrected_gap(gap, age)` applies the stored bias correction.
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
  def preprocessing(self):
    return preprocessing_from_dict(self.data["preprocessing"])

  def preprocess(self, table) -> np.ndarray:
    return self.preprocessing.features_of(table)

  def postprocess(self, outputs) -> np.ndarray:
    return self.preprocessing.postprocess(np.asarray(outputs)).reshape(len(outputs), -1)[:, 0]

  def corrected_gap(self, gap, age) -> np.ndarray:
    """Brain-age gap minus its linear trend in age, fitted on the training split."""
    fit = self.data["bias_correction"]
    return np.asarray(gap) - (fit["slope"] * np.asarray(age) + fit["intercept"])

  @property
  def metrics(self) -> dict[str, dict[str, float]]:
    return self.data["metrics"]


def _package_dir() -> pathlib.Path:
  return pathlib.Path(str(importlib.resources.files("flaxzoo.checkpoints")))


def list_pretrained() -> list[str]:
  """Names of the checkpoints shipped with the package."""
  root = _package_dir()
  return sorted(p.name for p in root.iterdir() if (p / CARD).is_file())


def _resolve(name_or_path) -> pathlib.Path:
  text = os.fspath(name_or_path)
  # A name with a path separator or ".." is a path, never looked up in the package.
  if os.sep in text or "/" in text or ".." in text or pathlib.Path(text).is_dir():
    path = pathlib.Path(text)
    if not path.is_dir():
      raise UnknownNameError(f"{text}: no such checkpoint directory")
    return path
  known = list_pretrained()
  if text not in known:
    raise UnknownNameError(f"unknown pretrained model {text!r}; available: {', '.join(known)}")
  return _package_dir() / text


def read_card(path) -> Card:
  path = pathlib.Path(path)
  file = path / CARD
  try:
    data = json.loads(file.read_text())
  except FileNotFoundError:
    raise UnknownNameError(f"{path} is not a pretrained checkpoint (no {CARD})") from None
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ValueError(f"{file}: not a valid card ({e})") from None
  for key in ("name", "model", "preprocessing", "metrics"):
    if key not in data:
      raise ValueError(f"{file}: the card has no {key!r}")
  return Card(data, path)


def summary(card_data: Mapping[str, Any]) -> str:
  """One line of a card's test metrics."""
  test = card_data["metrics"]["test"]
  if "accuracy" in test:
    auc = f", ROC AUC {test['roc_auc']:.3f}" if "roc_auc" in test else ""
    return f"test accuracy {test['accuracy']:.3f}, balanced {test['balanced_accuracy']:.3f}{auc}"
  if "mae_years" in test:
    return f"test MAE {test['mae_years']:.2f} years, R2 {test['r2']:.3f}, r {test['pearson_r']:.3f}"
  return f"test MSE {test['mse']:.4g}, R2 {test['r2']:.3f}"


def read_card_summary(name: str) -> str:
  """One line about a shipped checkpoint: its test metrics."""
  return summary(read_card(_package_dir() / name).data)


def load_pretrained(name_or_path, *, devices: int | None = None) -> tuple[nnx.Module, Card]:
  """A pretrained model and its card, from the package by name or from a folder.

  Args:
    name_or_path: a name from `list_pretrained()`, a folder written by
      `flaxzoo export`, or a training workdir (its latest checkpoint).
    devices: replicate the parameters over this many local devices (default:
      the first device only).

  Returns:
    `(model, card)`.
  """
  path = _resolve(name_or_path)
  if not (path / CARD).is_file() and (path / "checkpoints").is_dir():
    from flaxzoo.trainers.export import card_from_workdir  # trainers depends on zoo, not the reverse

    model, data = card_from_workdir(path)
    return _place(model, devices), Card(data, path)
  card = read_card(path)
  spec = card.data["model"]
  abstract = nnx.eval_shape(lambda: create_model(spec["name"], **spec["args"]))
  graphdef, abstract_params, rest = nnx.split(abstract, nnx.Param, ...)
  sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract_params)
  params_dir = (path / "params").absolute()
  if not params_dir.is_dir():
    raise ValueError(f"{path}: no params/ folder beside {CARD}")
  import orbax.checkpoint as ocp

  with ocp.StandardCheckpointer() as checkpointer:
    stored = checkpointer.metadata(params_dir)
    stored_shapes = {leaf.name: tuple(leaf.shape) for leaf in jax.tree.leaves(
        getattr(stored, "item_metadata", stored), is_leaf=lambda x: hasattr(x, "shape") and hasattr(x, "name"))}
    for key_path, leaf in jax.tree_util.tree_flatten_with_path(target)[0]:
      key = ".".join(str(getattr(k, "key", getattr(k, "name", k))) for k in key_path)
      if key in stored_shapes and stored_shapes[key] != tuple(leaf.shape):
        raise ValueError(
            f"{path}: the card's model has {key} of shape {tuple(leaf.shape)}, the arrays {stored_shapes[key]}"
        )
    params = checkpointer.restore(params_dir, target)
  model = nnx.merge(graphdef, params, rest)
  return _place(model, devices), card


def _place(model: nnx.Module, devices: int | None) -> nnx.Module:
  if not devices or devices == 1:
    return model
  if devices > len(jax.local_devices()):
    raise ValueError(f"devices={devices}: only {len(jax.local_devices())} available")
  mesh = jax.sharding.Mesh(np.asarray(jax.local_devices()[:devices]), ("data",))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  graphdef, state = nnx.split(model)
  return nnx.merge(graphdef, jax.device_put(state, replicated))


def predict(model: nnx.Module, card: Card, table) -> dict[str, np.ndarray]:
  """Predictions for each row of a raw table (the card's preprocessing is applied).

  Returns:
    Brain-age regression: `{"predicted_age": [n]}` in years, and with ages
    in the table also `"age"`, `"brain_age_gap"` (predicted − age) and
    `"corrected_gap"`. Classification: `"predicted_class"` (class names) and
    `"probability_<class>"` for each class. Other regression: `"predicted"`.
  """
  outputs = np.asarray(model(np.asarray(card.preprocess(table))), np.float64)
  if card.task == "classification":
    if outputs.shape[1] == 1:
      p1 = 1 / (1 + np.exp(-outputs[:, 0]))
      probabilities = np.stack([1 - p1, p1], axis=1)
    else:
      shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
      probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    classes = card.data["classes"]
    result = {"predicted_class": np.asarray(classes)[np.argmax(probabilities, axis=1)]}
    result.update({f"probability_{name}": probabilities[:, k] for k, name in enumerate(classes)})
    return result
  if "bias_correction" not in card.data:
    return {"predicted": card.postprocess(outputs)}
  result = {"predicted_age": card.postprocess(outputs)}
  age = table.get("age") if isinstance(table, Mapping) else getattr(table, "age", None)
  if age is not None:
    result["age"] = np.asarray(age, np.float64)
    result["brain_age_gap"] = result["predicted_age"] - result["age"]
    result["corrected_gap"] = card.corrected_gap(result["brain_age_gap"], result["age"])
  return result
