"""A least-squares card's prediction interval per row: what the card keeps (O(d²)), and its use by `predict`.

At export (`interval_entry`): the model-based covariance of `[intercept, coef]` on the training split at the
exported parameters (`trainers.covariance`, nonrobust: `s² (XᵀX)⁻¹`, `s²` the residual variance over n − p),
Student's t quantile, and the interval's empirical coverage on each split. At prediction (`interval_columns`):
`output ± t sqrt(fᵀ C f + s²)` in the model's units, then in the label's own (`card.postprocess`), as
statsmodels' `get_prediction().summary_frame()["obs_ci_lower"/"obs_ci_upper"]`. It assumes the linear model
and constant residual variance; a row outside the training range (`outside_training_range`) gets the same
formula, whose linear trend there is an extrapolation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CONFIDENCE = 0.95


def interval_entry(trainer, data, model_name: str, confidence: float = CONFIDENCE) -> dict | None:
  """The card's `"prediction_interval"` of a one-output least-squares linear model, else None."""
  from flaxzoo.trainers.coefficients import quantile
  from flaxzoo.trainers.covariance import covariance

  if model_name != "linear_regression" or trainer._loss_spec != "mse":
    return None
  kernel, bias = (np.asarray(v, np.float64) for v in trainer.model.affine_map())
  x, y = data.splits["train"]
  if kernel.shape[1] != 1 or len(x) <= kernel.shape[0] + 1:
    return None
  cov = covariance(np.asarray(x, np.float64), np.asarray(y, np.float64), "mse", kernel[:, 0], float(bias[0]))
  entry = {"confidence": confidence, "kind": "observation", "covariance": cov.matrix.tolist(),
           "scale": cov.scale, "df_resid": cov.df_resid, "quantile": quantile(confidence, True, cov.df_resid),
           "method": "least squares: output ± t(n - p) sqrt(fᵀ C f + s²), C = s² (XᵀX)⁻¹ on the training split at"
                     " these parameters (statsmodels' observation interval)"}
  coverage = {}
  for split, (xs, ys) in data.splits.items():
    outputs = np.asarray(xs, np.float64) @ kernel[:, 0] + bias[0]
    low, high = bounds(entry, np.asarray(xs, np.float64), outputs)
    truth = np.asarray(ys, np.float64)
    coverage[split] = float(np.mean((low <= truth) & (truth <= high)))
  entry["coverage"] = coverage
  return entry


def bounds(entry: dict[str, Any], x: np.ndarray, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """`(low, high)` `[n]` in the model's units for model inputs `x [n, d]` and outputs `[n]`."""
  f = np.concatenate([np.ones((len(x), 1)), np.asarray(x, np.float64)], axis=1)
  variance = np.einsum("ij,jk,ik->i", f, np.asarray(entry["covariance"], np.float64), f) + float(entry["scale"])
  half = float(entry["quantile"]) * np.sqrt(variance)
  return outputs - half, outputs + half


def interval_columns(card, x: np.ndarray, outputs: np.ndarray, predicted_name: str) -> dict[str, np.ndarray]:
  """`{"<label>_low", "<label>_high"}` in the label's own unit (`predicted_age` → `age_low`, `age_high`)."""
  entry = card.data.get("prediction_interval")
  if not entry:
    return {}
  low, high = bounds(entry, x, np.asarray(outputs, np.float64).reshape(len(x)))
  stem = predicted_name.removeprefix("predicted_") if predicted_name != "predicted" else "predicted"
  return {f"{stem}_low": card.postprocess(low[:, None]).reshape(-1),
          f"{stem}_high": card.postprocess(high[:, None]).reshape(-1)}
