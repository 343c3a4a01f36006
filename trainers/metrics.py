"""Evaluation metrics as sums over examples, finalised on the host.

Sums (not means) so that results over batches or devices combine exactly:
add the sums, then finalise once. Finalising runs in float64.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def regression_sums(outputs, labels, weights=None, label_shift=0.0) -> dict[str, jax.Array]:
  """Sufficient sums for MSE, MAE and R2. outputs `[batch, 1]`, labels `[batch]`.

  `label_shift` (best: the labels' mean, from the host) is subtracted before
  summing labels and their squares: R2's total sum of squares is then not a
  small difference of two large float32 sums.
  """
  outputs = outputs.reshape(labels.shape)
  weights = jnp.ones_like(labels) if weights is None else weights
  errors = outputs - labels
  centred = labels - jnp.asarray(label_shift, labels.dtype)
  return {
      "count": jnp.sum(weights),
      "sum_squared_error": jnp.sum(weights * errors**2),
      "sum_absolute_error": jnp.sum(weights * jnp.abs(errors)),
      "sum_label": jnp.sum(weights * centred),
      "sum_label_squared": jnp.sum(weights * centred**2),
  }


def classification_sums(logits, labels, weights=None, label_shift=None) -> dict[str, jax.Array]:
  """Sums for accuracy and log loss. logits `[batch, 1 | classes]`, labels `[batch]`."""
  del label_shift  # Regression only; the same signature for both tasks.
  weights = jnp.ones(labels.shape, logits.dtype) if weights is None else weights
  if logits.shape[-1] == 1:
    predicted = (logits[:, 0] > 0).astype(jnp.int32)
    log_p = jax.nn.log_sigmoid(jnp.where(labels > 0, logits[:, 0], -logits[:, 0]))
  else:
    predicted = jnp.argmax(logits, axis=-1)
    log_p = jnp.take_along_axis(
        jax.nn.log_softmax(logits), labels.astype(jnp.int32)[:, None], axis=-1
    )[:, 0]
  return {
      "count": jnp.sum(weights),
      "correct": jnp.sum(weights * (predicted == labels.astype(jnp.int32)).astype(weights.dtype)),
      "sum_log_loss": -jnp.sum(weights * log_p),
  }


def finalize_regression(sums, label_scale: float | None = None, label_unit: str | None = None) -> dict[str, float]:
  """mse, rmse, mae, r2 (label units), plus mae/rmse in `label_unit` when given."""
  s = {k: float(np.asarray(v, np.float64)) for k, v in sums.items()}
  n = s["count"]
  mse = s["sum_squared_error"] / n
  mae = s["sum_absolute_error"] / n
  total = s["sum_label_squared"] - s["sum_label"] ** 2 / n
  metrics = {
      "mse": mse,
      "rmse": math.sqrt(mse),
      "mae": mae,
      "r2": 1.0 - s["sum_squared_error"] / total if total > 0 else float("nan"),
      "count": int(round(n)),
  }
  if label_scale is not None and label_unit:
    metrics[f"mae_{label_unit}"] = mae * label_scale
    metrics[f"rmse_{label_unit}"] = math.sqrt(mse) * label_scale
  return metrics


def finalize_classification(sums) -> dict[str, float]:
  """accuracy and log loss (mean negative log-likelihood)."""
  s = {k: float(np.asarray(v, np.float64)) for k, v in sums.items()}
  return {
      "accuracy": s["correct"] / s["count"],
      "log_loss": s["sum_log_loss"] / s["count"],
      "count": int(round(s["count"])),
  }


# Which sums and finaliser each loss's task uses.
TASK_OF_LOSS = {"mse": "regression", "logistic": "classification", "softmax": "classification"}
SUMS = {"regression": regression_sums, "classification": classification_sums}
