"""Predictions of a model for the rows of a raw table, with its card's preprocessing."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import numpy as np
from flax import nnx

from flaxzoo.checkpoints.card import Card


def predict(model: nnx.Module, card: Card, table, first_row: int = 1) -> dict[str, np.ndarray]:
  """Predictions for each row of a raw table (the card's preprocessing is applied); `first_row` numbers
  the table's first row in errors (a block of a larger table).

  Returns:
    `"outside_training_range"`: `"yes"` for a row with a model input outside
    the range the training split spans (the card's `input_range`; cards
    without one get no such column). Classification: `"predicted_class"` (class names) and `"probability_<class>"`
    for each class. Regression: the preprocessing's columns in the label's own
    unit; brain age: `{"predicted_age": [n]}` in years, and with ages in the
    table also `"age"`, `"brain_age_gap"` (predicted − age) and
    `"corrected_gap"`; other data: `"predicted"`. A card with a `prediction_interval` (least squares) adds
    each row's interval: `"age_low"`, `"age_high"` (brain age), else `"predicted_low"`, `"predicted_high"`
    (`checkpoints.intervals`).
  """
  preprocessing = card.preprocessing
  if isinstance(table, (np.ndarray, list, tuple)):  # columns without names: which is which cannot be told
    raise TypeError(f"table: a mapping of the model's named input columns, or a DataFrame (as `flaxzoo predict`"
                    f" reads a table), not a {type(table).__name__}: an array's columns have no names")
  with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # refused just below, by row
    x = np.asarray(preprocessing.features_of(table, dtype=precision_of(model)))
  _all_finite(x, card, "model inputs", first_row)
  outputs = apply_in_chunks(model, x)
  if "offset" in card.data:  # the run's `--offset` column, added to the linear predictor
    outputs = outputs + _offset_column(table, card)[:, None]
  _all_finite(outputs, card, "model outputs", first_row)
  with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused just below, by row
    result = _predicted(outputs, card, preprocessing, table)
    if card.task == "regression" and outputs.shape[1] == 1:
      from flaxzoo.checkpoints.intervals import interval_columns

      result.update(interval_columns(card, x, outputs[:, 0], next(iter(result))))
  for name, column in result.items():  # the card's own numbers (a bias correction) applied to finite outputs;
    column = np.asarray(column)       # NaN is an unknown (a row without an age has no gap), never infinity
    if column.dtype.kind == "f":
      _all_finite(np.where(np.isnan(column), 0.0, column), card, f"predictions ({name})", first_row)
  if "input_range" in card.data:
    low, high = (np.asarray(card.data["input_range"][k], np.float64) for k in ("min", "max"))
    outside = np.any((x < low) | (x > high), axis=1)  # x float32 against float64 bounds: exact
    result["outside_training_range"] = np.where(outside, "yes", "no")
  return result


def _all_finite(values: np.ndarray, card: Card, what: str, first_row: int) -> None:
  """A DataError naming the first row whose `what` are not all finite numbers: never a blank or infinite
  prediction with exit 0."""
  from flaxzoo.datasets.tables import DataError

  finite = np.all(np.isfinite(values.reshape(len(values), -1)), axis=1)
  if not finite.all():
    row = int(np.argmin(finite)) + first_row
    raise DataError(f"row {row}: the {what} are not finite numbers after {card.path / 'card.json'}'s"
                    " preprocessing (check the row's values, and the card's mean, std and scale)")


# The model sees its inputs in chunks of this many rows (the last one padded): the same shapes for any
# table, so its operations are compiled once, not once per table length (a 1M-row table arrives in
# blocks of varying length). The model runs op by op, as it always has here: the numbers are those of
# `model(x)` on the whole table, to the last bit (a jitted model fuses multiply-adds and rounds
# differently in the last place, which moves the third decimal of about 1 prediction in 250).
CHUNK_ROWS = 1 << 15


def precision_of(model: nnx.Module) -> np.dtype:
  """float64 where the model's parameters are (an export of a float64 fit), else float32."""
  import jax

  leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
  return np.dtype(np.float64) if any(np.dtype(leaf.dtype) == np.float64 for leaf in leaves) else np.dtype(np.float32)


@contextlib.contextmanager
def in_precision(model: nnx.Module):
  """Runs the model in its parameters' precision: JAX's float64 mode for float64 parameters (outside it they
  would compute in float32). Yields the dtype its inputs take."""
  import jax

  dtype = precision_of(model)
  with jax.enable_x64(True) if dtype == np.float64 else contextlib.nullcontext():
    yield dtype


def apply_in_chunks(model: nnx.Module, x: np.ndarray) -> np.ndarray:
  """`model(x)` as float64 `[n, k]`, computed `CHUNK_ROWS` rows at a time in the parameters' precision."""
  n = len(x)
  outputs = []
  with in_precision(model) as dtype:
    x = np.asarray(x, dtype)
    for start in range(0, max(n, 1), CHUNK_ROWS):
      chunk = x[start:start + CHUNK_ROWS]
      padded = np.zeros((CHUNK_ROWS,) + x.shape[1:], x.dtype)
      padded[:len(chunk)] = chunk
      outputs.append(np.asarray(model(padded), np.float64)[:len(chunk)])
  return np.concatenate(outputs)[:n]


def _offset_column(table, card: Card) -> np.ndarray:
  """The table's offset column `[n]` (float64), or one line naming it."""
  column = card.data["offset"]["column"]
  values = table.get(column) if isinstance(table, Mapping) else getattr(table, column, None)
  if values is None:
    raise ValueError(f"{card.path}: this model adds the column {column!r} to its linear predictor (an offset);"
                     " the table has none")
  return np.asarray(values, np.float64).reshape(-1)


def _predicted(outputs, card: Card, preprocessing, table) -> dict[str, np.ndarray]:
  if card.task == "classification":
    from flaxzoo.zoo.links import decide, probabilities

    chances = probabilities(outputs)
    classes = card.data["classes"]
    result = {"predicted_class": np.asarray(classes)[decide(outputs)]}
    result.update({f"probability_{name}": chances[:, k] for k, name in enumerate(classes)})
    return result
  predicted = card.postprocess(outputs)
  if predicted.ndim == 2:  # several targets: a column each
    return {f"predicted_{name}": predicted[:, k] for k, name in enumerate(card.data["targets"])}
  return preprocessing.predict_columns(predicted, table, card.data)
