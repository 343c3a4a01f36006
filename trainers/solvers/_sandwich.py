"""The sums a covariance is made of, from one pass over the staged rows at a fitted model (float64).

Per row, from the loss's own parts (`_passes._loss_parts`; least squares: the residual): the score `w_i dz_i f_i`
(`f_i = [standardised x_i, 1]`, `dz` the loss's derivative in the linear predictor), Fisher's curvature `c_i`
and the observed one (a log link's `c_i + (1 - p) dz_i`: the non-canonical families differ there). Summed:
`Σ w c f fᵀ` (the bread of the model-based covariance), `Σ w c_obs f fᵀ` (the robust sandwich's bread, as
statsmodels' GLM takes the observed Hessian there), `Σ (w dz)² f fᵀ` (White's meat), each cluster's score sum
`[G, p]`, and Pearson's `Σ w dz² / c` (least squares: the weighted residual sum of squares). `leverage_meat`:
the meat with each row's leverage `h_i = w_i c_i f_iᵀ A f_i` (HC2 divides by `1 - h`, HC3 by `(1 - h)²`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from flaxzoo.trainers.host_blas import one_thread
from flaxzoo.trainers.solvers._grams import HOST_BLOCK_ROWS, centred_sums
from flaxzoo.trainers.solvers._passes import _loss_parts
from flaxzoo.trainers.solvers._staging import Staged


def _row_parts(x, theta, labels, shift, scale, loss: str, family):
  """`(dz, fisher, observed)` `[C]` each at `theta [p]` (standardised features, intercept last): the
  standardisation folded into the parameters (`_passes._value_grad`'s way: no standardised copy of the rows)."""
  kernel = theta[:-1] / scale
  eta = x @ kernel + (theta[-1] - shift @ kernel)
  if loss == "mse":
    ones = jnp.ones_like(eta)
    return eta - labels[:, 0], ones, ones
  _, dz, curvature = _loss_parts(eta[:, None], labels, 1, family)
  dz, curvature = dz[:, 0], curvature[:, 0]
  observed = curvature if not family or family[1] == 1 else curvature + (1 - family[1]) * dz
  return dz, curvature, observed


@functools.partial(jax.jit, static_argnames=("loss", "family"))
def _row_terms(x, theta, labels, shift, scale, loss: str, family):
  """`(dz, fisher, observed)` `[C]` each: the loss's parts per row (`_row_parts`)."""
  return _row_parts(x, theta, labels, shift, scale, loss, family)


def _features(x, shift, scale) -> np.ndarray:
  """`[C, p]`: the chunk's standardised features and a column of ones, float64 on the host."""
  return np.concatenate([(np.asarray(x) - shift) / scale, np.ones((len(x), 1))], axis=1)


def _gram(x, weight, shift, scale) -> np.ndarray:
  """`[p, p]`: `Σ weight f fᵀ` of `f = [(x - shift) / scale, 1]` from the raw rows `x [C, d]` (float64), as
  `_grams._host_grams` sums them: `xᵀ diag(weight) x` in one BLAS call (a symmetric rank-k update where every
  weight is >= 0; no standardised copy of the rows: XLA's float64 GEMM of the 33 columns took 4 times as long),
  centred after (`_grams.centred_sums`); from the standardised rows where that would lose precision."""
  d = x.shape[1]
  if np.all(weight == 1):  # (no weighted copy of the rows)
    raw = x.T @ x
  elif np.all(weight >= 0):
    u = x * np.sqrt(weight)[:, None]
    raw = u.T @ u
  else:
    raw = x.T @ (x * weight[:, None])
  sums, total = x.T @ weight, weight.sum()
  centred = centred_sums(raw, sums, total, shift)
  if centred is None:
    f = _features(x, shift, scale)
    return f.T @ (f * weight[:, None])
  gram = np.empty((d + 1, d + 1))
  gram[:d, :d] = centred / np.outer(scale, scale)
  gram[:d, d] = gram[d, :d] = (sums - total * shift) / scale
  gram[d, d] = total
  return gram


# Rows a block of the host sums: every sum of a block reads its rows from the cache, not memory (the Grams of 1M
# x 32 float64 rows are memory-bound here: HC1's sums in blocks of 65536 rows 0.34 s, of 4096 0.22 s).
BLOCK_ROWS = HOST_BLOCK_ROWS


def _cluster_sums(x, score, codes, num_groups: int, shift, scale) -> np.ndarray:
  """`[G, p]`: each cluster's `Σ score_i f_i`, `f = [(x - shift) / scale, 1]`: one sparse product of the rows
  (a column a row, its cluster's entry the row's score: 1M x 32 rows into 1,000 clusters, 37 ms; a bincount a
  column took 200), standardised after (linear in the rows)."""
  import scipy.sparse

  count = len(score)
  onehot = scipy.sparse.csc_matrix((score, codes, np.arange(count + 1)), shape=(num_groups, count))
  raw, total = onehot @ x, np.bincount(codes, score, num_groups)
  return np.concatenate([(raw - total[:, None] * shift) / scale, total[:, None]], axis=1)


def _chunks(data: Staged, theta: np.ndarray):
  """`(start, x [C, d], dz, fisher, observed)` of each block of `BLOCK_ROWS` rows, on the host: least squares'
  rows where they are (`data.host`: the residual from a GEMV, no copy to the device), else a chunk's compiled
  `_row_terms`, cut in blocks."""
  if data.host is not None:
    x, y = data.host
    kernel = theta[:-1] / data.pass_scale
    bias = theta[-1] - data.pass_shift @ kernel
    for start in range(0, data.n, BLOCK_ROWS):
      rows = x[start:start + BLOCK_ROWS]
      dz = rows @ kernel + bias - y[start:start + len(rows), 0]
      ones = np.ones_like(dz)
      yield start, rows, dz, ones, ones
    return
  args = data.args()
  for (start, real, _), x, y in zip(data.bounds, *data.rows()):
    rows, terms = np.asarray(x)[:real], [np.asarray(v)[:real] for v in _row_terms(x, theta, y, *args,
                                                                                  loss=data.loss, family=data.family)]
    for at in range(0, real, BLOCK_ROWS):
      yield (start + at, rows[at:at + BLOCK_ROWS], *(v[at:at + BLOCK_ROWS] for v in terms))


def sandwich_sums(data: Staged, theta: np.ndarray, weight: np.ndarray, groups: np.ndarray | None = None,
                  num_groups: int = 0, robust: bool = False, observed: bool = True) -> dict:
  """One pass at `theta [d + 1]` (standardised, intercept last) with example weights `weight [n]` (as given,
  not normalised) and cluster codes `groups [n]` (0..G-1): the sums named in the module's docstring, float64
  on the host (`observed=False`: no observed Hessian, which the model-based covariance does not read; `robust`:
  White's meat). `data`: staged in float64, one output (least squares, logistic, or a log-link family). Each
  chunk's per-row terms come from the compiled pass, its sums from NumPy's BLAS (on one thread, `host_blas`)."""
  p = data.d + 1
  non_canonical = bool(data.family) and data.family[1] != 1 and observed
  # Pearson's sum: read by least squares and the estimated dispersions only (a saturated logistic or Poisson
  # row has curvature 0: no division by it)
  dispersion = data.loss != "logistic" and (data.family is None or data.family[1] != 1)
  fisher, observed, meat = np.zeros((p, p)), np.zeros((p, p)), np.zeros((p, p))
  clusters, pearson = np.zeros((num_groups, p)), 0.0
  shift, scale = data.pass_shift, data.pass_scale
  with jax.enable_x64(True), one_thread(scipy=False):  # (NumPy's BLAS only: no SciPy import for it)
    for start, rows, dz, curvature, obs in _chunks(data, theta):
      w = weight[start:start + len(rows)]
      fisher += _gram(rows, w * curvature, shift, scale)
      observed += _gram(rows, w * obs, shift, scale) if non_canonical else 0.0
      if robust:
        meat += _gram(rows, (w * dz) ** 2, shift, scale)
      if num_groups:
        clusters += _cluster_sums(rows, w * dz, groups[start:start + len(rows)], num_groups, shift, scale)
      if dispersion:
        pearson += float(np.sum(w * dz * dz / curvature))
  if not non_canonical:
    observed = fisher  # the canonical links and least squares: the same curvature (or none asked for)
  return {"fisher": fisher, "observed": observed, "meat": meat, "clusters": clusters, "pearson": pearson}


def leverage_meat(data: Staged, theta: np.ndarray, weight: np.ndarray, inverse: np.ndarray, power: int) -> np.ndarray:
  """`[p, p]`: HC2's (`power` 1) or HC3's (2) meat, `h_i = w_i c_i f_iᵀ inverse f_i` (`inverse`: the Fisher
  bread's inverse)."""
  p = data.d + 1
  meat = np.zeros((p, p))
  with jax.enable_x64(True), one_thread(scipy=False):  # (NumPy's BLAS only: no SciPy import for it)
    for start, rows, dz, curvature, _ in _chunks(data, theta):
      f = _features(rows, data.pass_shift, data.pass_scale)
      w = weight[start:start + len(rows)]
      leverage = w * curvature * np.einsum("ij,ij->i", f @ inverse, f)
      score = f * (w * dz / (1 - leverage) ** (power / 2))[:, None]
      meat += score.T @ score
  return meat
