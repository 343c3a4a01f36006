"""A run's coefficient table in the features' and label's own names and units (results.json, `flaxzoo eval
--coef-table`, an export's card).

The model is fitted on standardised features `(x - mean) / std` and, for brain age, on the label over
`label_scale`: its parameters and their covariance (`trainers.covariance`, on the training split) are mapped back
to the raw columns exactly (a linear map: `coef_j = c w_j / std_j`, `intercept = c (b - Σ w_j mean_j / std_j)`,
`c` the label's scale for least squares), then tabled (`trainers.coefficients`). A run whose fit was not exact
(optax), whose loss has no covariance here (Huber, quantile, softmax) or that has an L1 part gets none.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flaxzoo.trainers.coefficients import COLUMNS, coefficient_rows
from flaxzoo.trainers.covariance import Covariance, covariance
from flaxzoo.trainers.loss_names import split_loss
from flaxzoo.trainers.offsets import absorbed, power_of_loss

TABLED_LOSSES = ("mse", "logistic", "poisson", "gamma", "tweedie")


def feature_names(preprocessing, count: int) -> list[str]:
  """The model's inputs by name: the table's columns where each is one input, else `x0`…"""
  names = list(getattr(preprocessing, "input_columns", ()) or ())
  return names if len(names) == count else [f"x{j}" for j in range(count)]


def run_coefficients(trainer, data, batch_size: int | None = None, cov_type: str = "nonrobust",
                     groups_column: str | None = None, confidence: float = 0.95) -> dict[str, Any] | None:
  """`{"cov_type", "confidence", "rows": [{"name", "coef", ...}]}` of a trained run, or None where it has none."""
  x, y = data.splits["train"]
  loss = trainer._loss_spec
  if (split_loss(loss)[0] not in TABLED_LOSSES or trainer.l1 or not getattr(trainer, "_affine", False)
      or trainer.chosen_solver(len(x), batch_size) == "optax"):
    return None
  kernel, bias = (np.asarray(v, np.float64) for v in trainer.model.affine_map())
  if kernel.shape[1] != 1:
    return None
  groups = None if groups_column is None else training_column(data, groups_column)
  x, y, weights, l2 = np.asarray(x, np.float64), np.asarray(y), None, trainer.l2
  if "train" in data.offsets:  # the fit's own targets and weights (`trainers.offsets`), its penalty kept relative
    weights = np.ones(len(x))
    y, weights = absorbed(y, weights, data.offsets["train"], power_of_loss(loss))
    l2 = l2 * len(x) / weights.sum()
  cov = covariance(x, y, loss, kernel[:, 0], float(bias[0]), weights, cov_type, groups, l2)
  params, matrix = _in_raw_units(data.preprocessing, loss, np.append(bias[0], kernel[:, 0]), cov.matrix)
  rows = coefficient_rows(params, Covariance(matrix, cov.cov_type, cov.use_t, cov.df_resid, cov.scale, cov.nobs,
                                             cov.groups, cov.penalised), confidence)
  names = ["intercept"] + feature_names(data.preprocessing, kernel.shape[0])
  return {"cov_type": cov_type, "confidence": confidence, "penalised": cov.penalised,
          "rows": [{"name": name, **{c: float(rows[c][j]) for c in COLUMNS}} for j, name in enumerate(names)]}


def training_column(data, column: str) -> np.ndarray:
  """A column of the training rows `[n]`: from the split's raw columns, else (a column the model does not read,
  such as the groups) from the CSV file, its rows those of the training split (`rows_of`)."""
  raw = data.raw["train"]
  if column in raw:
    return np.asarray(raw[column])
  try:
    return data.file_column(column, "train")
  except ValueError as e:
    raise ValueError(f"--groups {column}: {e}; the training split's columns: {', '.join(raw)}") from None


def _in_raw_units(preprocessing, loss: str, params: np.ndarray, matrix: np.ndarray):
  """`(params, covariance)` of `[intercept, coef]` on the raw columns (and the label's own unit)."""
  p = len(params)
  jac = np.eye(p)
  mean, std = getattr(preprocessing, "mean", None), getattr(preprocessing, "std", None)
  if mean is not None:
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    jac[0, 1:] = -mean / std
    jac[1:, 1:] = np.diag(1.0 / std)
  factors = getattr(preprocessing, "scale", None) or {}  # columns multiplied on reading (e.g. 1/255)
  columns = getattr(preprocessing, "input_columns", ())
  if factors and len(columns) == p - 1:
    jac[:, 1:] *= np.asarray([factors.get(c, 1.0) for c in columns])[None, :]
  label_scale = getattr(preprocessing, "label_scale", None)
  if loss == "mse" and label_scale:
    jac = jac * float(label_scale)
  return jac @ params, jac @ matrix @ jac.T


def format_table(table: dict[str, Any]) -> str:
  """The table as text, a row a coefficient (statsmodels' summary's columns)."""
  width = max(12, *(len(r["name"]) for r in table["rows"]))
  head = f"{'':<{width}} {'coef':>12} {'std_err':>12} {'statistic':>10} {'p_value':>10} {'ci_low':>12} {'ci_high':>12}"
  lines = [f"coefficients ({table['cov_type']}, {table['confidence']:.0%} intervals)", head]
  for r in table["rows"]:
    lines.append(f"{r['name']:<{width}} {r['coef']:>12.6g} {r['std_err']:>12.6g} {r['statistic']:>10.4g}"
                 f" {r['p_value']:>10.3g} {r['ci_low']:>12.6g} {r['ci_high']:>12.6g}")
  return "\n".join(lines)
