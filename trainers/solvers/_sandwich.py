"""The sums a covariance is made of, from one pass over the staged rows at a fitted model (float64).

Per row, from the loss's own parts (`_passes._loss_parts`; least squares: the residual): the score `w_i dz_i f_i`
(`f_i = [standardised x_i, 1]`, `dz` the loss's derivative in the linear predictor), Fisher's curvature `c_i`
and the observed one (a log link's `c_i + (1 - p) dz_i`: the non-canonical families differ there). Summed:
`Σ w c f fᵀ` (the bread of the model-based covariance), `Σ w c_obs f fᵀ` (the robust sandwich's bread, as
statsmodels' GLM takes the observed Hessian there), `Σ (w dz)² f fᵀ` (White's meat), each cluster's score sum
`[G, p]`, and Pearson's `Σ w dz² / c` (least squares: the weighted residual sum of squares). `_leverage_pass`:
the meat with each row's leverage `h_i = w_i c_i f_iᵀ A f_i` (HC2 divides by `1 - h`, HC3 by `(1 - h)²`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from flaxzoo.trainers.solvers._passes import _loss_parts, _with_ones
from flaxzoo.trainers.solvers._staging import Staged


def _row_parts(x, theta, labels, shift, scale, loss: str, family):
  """`(f [C, p], dz [C], fisher [C], observed [C])` at `theta [p]` (standardised features, intercept last)."""
  f = _with_ones((x - shift[None, :]) / scale[None, :])
  eta = f @ theta
  if loss == "mse":
    ones = jnp.ones_like(eta)
    return f, eta - labels[:, 0], ones, ones
  _, dz, curvature = _loss_parts(eta[:, None], labels, 1, family)
  dz, curvature = dz[:, 0], curvature[:, 0]
  observed = curvature if not family or family[1] == 1 else curvature + (1 - family[1]) * dz
  return f, dz, curvature, observed


def _gram(f, weight):
  return f.T @ (f * weight[:, None])


@functools.partial(jax.jit, static_argnames=("loss", "family", "robust", "num_groups"))
def _sandwich_pass(totals, theta, x, labels, weight, groups, shift, scale, loss: str, family, robust: bool,
                   num_groups: int):
  """`totals = (fisher [p, p], observed [p, p], meat [p, p], clusters [G, p], pearson) +=` this chunk's."""
  f, dz, fisher, observed = _row_parts(x, theta, labels, shift, scale, loss, family)
  fisher_gram = _gram(f, weight * fisher)
  observed_gram = fisher_gram if observed is fisher else _gram(f, weight * observed)
  score = f * (weight * dz)[:, None]
  meat = totals[2] + score.T @ score if robust else totals[2]
  clusters = totals[3] + jax.ops.segment_sum(score, groups, num_segments=num_groups) if num_groups else totals[3]
  pearson = totals[4] + jnp.sum(weight * dz * dz / fisher)
  return totals[0] + fisher_gram, totals[1] + observed_gram, meat, clusters, pearson


@functools.partial(jax.jit, static_argnames=("loss", "family", "power"))
def _leverage_pass(meat, theta, inverse, x, labels, weight, shift, scale, loss: str, family, power: int):
  """`meat += Σ (w dz)² / (1 - h)^power f fᵀ` over this chunk, `h_i = w_i c_i f_iᵀ inverse f_i`."""
  f, dz, fisher, _ = _row_parts(x, theta, labels, shift, scale, loss, family)
  leverage = weight * fisher * jnp.sum((f @ inverse) * f, axis=1)
  score = f * (weight * dz / (1 - leverage) ** (power / 2))[:, None]
  return meat + score.T @ score


def _chunked(data: Staged, values: np.ndarray, dtype) -> list[np.ndarray]:
  """`values [n]` cut as the staged rows are, the last chunk padded with zeros."""
  out = []
  for start, real, rows in data.bounds:
    part = np.zeros(rows, dtype)
    part[:real] = values[start:start + real]
    out.append(part)
  return out


def sandwich_sums(data: Staged, theta: np.ndarray, weight: np.ndarray, groups: np.ndarray | None = None,
                  num_groups: int = 0, robust: bool = False) -> dict:
  """One pass at `theta [d + 1]` (standardised, intercept last) with example weights `weight [n]` (as given,
  not normalised) and cluster codes `groups [n]` (0..G-1): the sums named in the module's docstring, float64
  on the host. `data`: staged in float64, one output (least squares, logistic, or a log-link family)."""
  p = data.d + 1
  with jax.enable_x64(True):
    totals = (np.zeros((p, p)), np.zeros((p, p)), np.zeros((p, p)), np.zeros((max(num_groups, 1), p)), 0.0)
    codes = _chunked(data, np.zeros(data.n, np.int32) if groups is None else groups, np.int32)
    for x, y, w, g in zip(*data.rows(), _chunked(data, weight, np.float64), codes):
      totals = _sandwich_pass(totals, theta, x, y, w, g, *data.args(), loss=data.loss, family=data.family,
                              robust=robust, num_groups=num_groups)
    fisher, observed, meat, clusters, pearson = (np.asarray(v, np.float64) for v in totals)
  return {"fisher": fisher, "observed": observed, "meat": meat, "clusters": clusters[:num_groups],
          "pearson": float(pearson)}


def leverage_meat(data: Staged, theta: np.ndarray, weight: np.ndarray, inverse: np.ndarray, power: int) -> np.ndarray:
  """`[p, p]`: HC2's (`power` 1) or HC3's (2) meat, leverage from `inverse` (the Fisher bread's inverse)."""
  p = data.d + 1
  with jax.enable_x64(True):
    meat = np.zeros((p, p))
    for x, y, w in zip(*data.rows(), _chunked(data, weight, np.float64)):
      meat = _leverage_pass(meat, theta, inverse, x, y, w, *data.args(), loss=data.loss, family=data.family,
                            power=power)
    return np.asarray(meat, np.float64)
