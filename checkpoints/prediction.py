"""Predictions of a model for the rows of a raw table, with its card's preprocessing."""

from __future__ import annotations

import numpy as np
from flax import nnx

from flaxzoo.checkpoints.card import Card


def predict(model: nnx.Module, card: Card, table) -> dict[str, np.ndarray]:
  """Predictions for each row of a raw table (the card's preprocessing is applied).

  Returns:
    `"outside_training_range"`: `"yes"` for a row with a model input outside
    the range the training split spans (the card's `input_range`; cards
    without one get no such column). Classification: `"predicted_class"` (class names) and `"probability_<class>"`
    for each class. Regression: the preprocessing's columns in the label's own
    unit; brain age: `{"predicted_age": [n]}` in years, and with ages in the
    table also `"age"`, `"brain_age_gap"` (predicted − age) and
    `"corrected_gap"`; other data: `"predicted"`.
  """
  preprocessing = card.preprocessing
  x = np.asarray(preprocessing.features_of(table))
  outputs = np.asarray(model(x), np.float64)
  result = _predicted(outputs, card, preprocessing, table)
  if "input_range" in card.data:
    low, high = (np.asarray(card.data["input_range"][k], x.dtype) for k in ("min", "max"))
    outside = np.any((x < low) | (x > high), axis=1)
    result["outside_training_range"] = np.where(outside, "yes", "no")
  return result


def _predicted(outputs, card: Card, preprocessing, table) -> dict[str, np.ndarray]:
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
  return preprocessing.predict_columns(card.postprocess(outputs), table, card.data)
