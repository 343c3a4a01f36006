"""Evaluation metrics as sums over examples, finalised on the host.

Sums (not means) so that results over batches or devices combine exactly:
add the sums, then finalise once. Finalising runs in float64.
"""

from __future__ import annotations

import math
from typing import Any

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
  """Sums for accuracy, log loss and the confusion matrix.

  Args:
    logits: `[batch, 1]` (binary: the logit of class 1) or `[batch, classes]`.
    labels: `[batch]` integer classes.
    weights: `[batch]`, 0 for padding.

  Returns:
    `count`, `correct`, `sum_log_loss` (scalars) and `confusion`
    `[classes, classes]`: weight of examples of true class i predicted j.
  """
  del label_shift  # Regression only; the same signature for both tasks.
  weights = jnp.ones(labels.shape, logits.dtype) if weights is None else weights
  labels = labels.astype(jnp.int32)
  if logits.shape[-1] == 1:
    num_classes = 2
    predicted = (logits[:, 0] > 0).astype(jnp.int32)
    log_p = jax.nn.log_sigmoid(jnp.where(labels > 0, logits[:, 0], -logits[:, 0]))
  else:
    num_classes = logits.shape[-1]
    predicted = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    log_p = jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=-1)[:, 0]
  true_onehot = jax.nn.one_hot(labels, num_classes, dtype=weights.dtype) * weights[:, None]
  predicted_onehot = jax.nn.one_hot(predicted, num_classes, dtype=weights.dtype)
  return {
      "count": jnp.sum(weights),
      "correct": jnp.sum(weights * (predicted == labels).astype(weights.dtype)),
      "sum_log_loss": -jnp.sum(weights * log_p),
      "confusion": true_onehot.T @ predicted_onehot,
  }


def roc_auc(scores, labels) -> float:
  """Area under the ROC curve of binary `labels [n]` ranked by `scores [n]`, exact.

  The Mann-Whitney statistic, ties counted one half (as scikit-learn's
  `roc_auc_score`). NaN when only one class is present.
  """
  from scipy.stats import rankdata

  labels = np.asarray(labels).astype(bool)
  positives, negatives = int(labels.sum()), int((~labels).sum())
  if positives == 0 or negatives == 0:
    return float("nan")
  ranks = rankdata(np.asarray(scores, np.float64))
  return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


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


def finalize_classification(sums) -> dict[str, Any]:
  """accuracy, balanced accuracy (mean recall over the classes present), log
  loss (mean negative log-likelihood) and the confusion matrix (rows: true
  class, columns: predicted)."""
  confusion = np.asarray(sums["confusion"], np.float64)
  s = {k: float(np.asarray(v, np.float64)) for k, v in sums.items() if k != "confusion"}
  support = confusion.sum(axis=1)
  present = support > 0
  return {
      "accuracy": s["correct"] / s["count"],
      "balanced_accuracy": float(np.mean(np.diag(confusion)[present] / support[present])),
      "log_loss": s["sum_log_loss"] / s["count"],
      "count": int(round(s["count"])),
      "confusion": np.rint(confusion).astype(int).tolist(),
  }


# Which sums and finaliser each loss's task uses.
TASK_OF_LOSS = {"mse": "regression", "logistic": "classification", "softmax": "classification"}
SUMS = {"regression": regression_sums, "classification": classification_sums}


def sums_of(task: str, mean=None):
  """`SUMS[task]`; for regression, of the predicted means `mean(outputs)` (`losses.mean_of`: a log link's
  `exp`) where `mean` is given."""
  sums = SUMS[task]
  if task != "regression" or mean is None:
    return sums
  return lambda outputs, labels, weights=None, label_shift=0.0: sums(mean(outputs), labels, weights, label_shift)
