"""The covariance of a fitted affine model's `[intercept, coef]`, statsmodels' conventions, from one pass.

>>> cov = covariance(x, y, "poisson", coef [d], intercept, weights=w, cov_type="cluster", groups=g)
>>> cov.matrix        # [(d + 1), (d + 1)], float64, in the order [intercept, coef_0 … coef_{d-1}]

`loss`: the exact solvers' (`mse`, `logistic`, `poisson`, `gamma`, `tweedie:p`), the model a fit of
`trainers.exact.fit_affine` is; `weights` are statsmodels' WLS weights (least squares) or GLM `var_weights`
(every row counts in `n`); `l2` the fit's penalty in the core's units (`mean_w loss + l2 / 2 |coef|²`).

| `cov_type` | bread | meat | small-sample factor | statistic |
|---|---|---|---|---|
| nonrobust | `(H + P)⁻¹` | `scale · H` | — | least squares t(n − p), GLMs normal |
| HC0 / HC1 | `(H_obs + P)⁻¹` | `Σ s sᵀ` | HC1: `n / (n − p)` | normal |
| HC2 / HC3 | `(H_obs + P)⁻¹` | `Σ s sᵀ / (1 − h)^(1 or 2)` | — | normal |
| cluster | `(H_obs + P)⁻¹` | `Σ_g S_g S_gᵀ` | CR1: `G / (G − 1) · (n − 1) / (n − p)` | normal |

`H`: Fisher's information (`Σ w c f fᵀ`), `H_obs` the observed one (they differ for gamma and Tweedie, whose log
link is not canonical: statsmodels' GLM takes the observed there), `P` the penalty's Hessian (0 unpenalised:
then the bread is the inverse and the nonrobust covariance `scale · H⁻¹`), `s_i = w_i dz_i f_i` the rows'
scores, `h_i = w_i c_i f_iᵀ (H + P)⁻¹ f_i` the leverage (IRLS's hat matrix for a GLM). `scale`: least squares
`Σ w r² / (n − p)`; logistic and Poisson 1; gamma and Tweedie Pearson's `χ² / (n − p)`. statsmodels' GLM
reports HC0's numbers under every HC name; here HC1 carries its factor as glum's and Stata's do, and HC2/HC3
their leverage. The sums run in the standardised features (`solvers.sandwich_sums`), mapped back after.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from flaxzoo.trainers import solvers
from flaxzoo.trainers.loss_names import split_loss

COV_TYPES = ("nonrobust", "HC0", "HC1", "HC2", "HC3", "cluster")
_SCALED = ("gamma", "tweedie")  # families whose dispersion is estimated (Pearson); least squares' is the RSS


@dataclasses.dataclass
class Covariance:
  """`matrix [(d + 1), (d + 1)]` ([intercept, coef]); `use_t`: Student's t with `df_resid` degrees of freedom
  (else normal); `scale` the dispersion; `nobs` rows; `groups` the clusters (0 if none); `penalised`."""

  matrix: np.ndarray
  cov_type: str
  use_t: bool
  df_resid: float
  scale: float
  nobs: int
  groups: int = 0
  penalised: bool = False


def check_cov_type(cov_type, groups) -> None:
  """One line for a cov_type this core does not compute, or a cluster covariance without groups."""
  if cov_type not in COV_TYPES:
    raise ValueError(f"cov_type must be one of {', '.join(COV_TYPES)}, got {cov_type!r}")
  if (cov_type == "cluster") != (groups is not None):
    raise ValueError("cov_type='cluster' needs groups (one label a row), and groups need cov_type='cluster'")


def group_codes(groups, n: int) -> tuple[np.ndarray, int]:
  """`(codes [n] int32 in 0..G-1, G)` of any labels a row; at least 2 clusters."""
  groups = np.asarray(groups)
  if groups.shape != (n,):
    raise ValueError(f"groups must have one label a row ({n}), got shape {groups.shape}")
  if groups.dtype.kind in "iub" and n and int(groups.max()) - int(groups.min()) <= 4 * n:
    # integer labels in a range of a few times n: np.unique's codes (the labels' sorted order) from a table of
    # the labels present, without its sort (1M rows into 1,000 clusters: 100 -> 10 ms)
    offset = groups.astype(np.int64) - int(groups.min())
    present = np.zeros(int(offset.max()) + 1, bool)
    present[offset] = True
    code_of = np.cumsum(present, dtype=np.int64) - 1
    codes, count = code_of[offset], int(code_of[-1]) + 1
  else:
    labels, codes = np.unique(groups, return_inverse=True)
    count = len(labels)
  if count < 2:
    raise ValueError(f"a cluster covariance needs at least 2 groups, got {count}")
  return codes.astype(np.int32).reshape(n), count


def covariance(x, y, loss: str, coef, intercept, weights=None, cov_type: str = "nonrobust", groups=None,
               l2: float = 0.0, data: solvers.Staged | None = None, fitted: dict | None = None,
               keep: dict | None = None) -> Covariance:
  """The covariance of `[intercept, coef [d]]` fitted on `x [n, d]`, `y [n]` (a log-link family's targets,
  least squares' values or 0/1 labels) by `loss`; `weights [n]` (>= 0; default 1). `data`: the rows already
  staged in float64 for this loss (`solvers.stage`), else staged here. `fitted`: the fit's Fisher sum, taken
  where the rows, weights and coefficients are the fit's (`solvers.sandwich_sums`); `keep`: a dict that a log
  link's or logistic's pass on the host fills with its own (`{"fisher", "sketch", "theta"}`), for later ones."""
  check_cov_type(cov_type, groups)
  if data is None:
    data = stage_for_covariance(x, y, loss)
  n, d = data.n, data.d
  p = d + 1
  weight = np.ones(n) if weights is None else np.asarray(weights, np.float64).reshape(n)
  if not (np.all(np.isfinite(weight)) and weight.min() >= 0 and weight.max() > 0):
    raise ValueError("weights must be finite, >= 0, with a positive entry")
  if n <= p:
    raise ValueError(f"a covariance needs more rows than parameters: {n} rows, {p} parameters")
  codes, count = group_codes(groups, n) if groups is not None else (None, 0)
  coef = np.asarray(coef, np.float64).reshape(d)
  theta = np.append(coef * data.scale, float(intercept) + data.shift @ coef)
  if data.loss == "mse":
    theta[-1] -= data.y_shift[0]
  robust = cov_type in ("HC0", "HC1", "HC2", "HC3")
  keeps = keep is not None and data.loss != "mse" and data.host_rows is not None
  sums = solvers.sandwich_sums(data, theta, weight, codes, count, robust, cov_type != "nonrobust", fitted, keeps)
  # (every entry of x is in a diagonal entry of each Gram: a NaN or an infinity there makes it non-finite, so
  # x needs no check of its own, one read of the rows fewer)
  if not all(np.all(np.isfinite(sums[name])) for name in ("fisher", "observed", "meat", "clusters")):
    raise NonFiniteSums("x or y holds NaN or infinity, or values whose squares overflow float64: no covariance")
  if keeps:
    keep.update(fisher=sums["fisher"], sketch=sums["sketch"], theta=theta)
  family = data.family[0] if data.family else data.loss
  rank = _rank(sums["fisher"])
  if rank < p:
    warnings.warn(f"the design is rank deficient (rank {rank} of {p} parameters, the intercept's included): the"
                  " standard errors of collinear coefficients are not identified (drop the collinear columns);"
                  " predictions' intervals are", CollinearityWarning, stacklevel=2)
  scale = 1.0 if family in ("logistic", "poisson") else sums["pearson"] / (n - rank)
  penalty = _penalty_hessian(data, l2, weight.sum())
  if cov_type == "nonrobust":
    bread = _inverse(sums["fisher"] + penalty)
    matrix = scale * bread @ sums["fisher"] @ bread
  else:
    bread = _inverse(sums["observed"] + penalty)
    if cov_type == "cluster":
      meat = sums["clusters"].T @ sums["clusters"] * (count / (count - 1) * (n - 1) / (n - p))
    elif cov_type in ("HC2", "HC3"):
      meat = solvers.leverage_meat(data, theta, weight, _inverse(sums["fisher"] + penalty), int(cov_type[-1]) - 1)
    else:
      # HC1: statsmodels' OLS divides by its residual degrees of freedom (n - rank), its GLM by n - p
      meat = sums["meat"] * (n / (n - (rank if data.loss == "mse" else p)) if cov_type == "HC1" else 1.0)
    matrix = bread @ meat @ bread
  raw = _to_raw(data.shift, data.scale, matrix)
  return Covariance(raw, cov_type, cov_type == "nonrobust" and data.loss == "mse", float(n - rank), float(scale),
                    n, count, bool(np.any(penalty)))


def from_moments(moments: dict, coef, intercept, total_weight: float, n: int, l2: float = 0.0) -> Covariance | None:
  """The nonrobust covariance of one least-squares model from its normal equation's Gram matrix
  (`Solution.moments`, one model's `[D, D]`), no pass over the rows; None where the residual sum of squares
  would lose more than half its digits there (a near-exact fit: then `covariance`'s pass)."""
  gram, shift, scale = (np.asarray(moments[k], np.float64) for k in ("gram", "shift", "scale"))
  d = len(shift)
  p = d + 1
  if gram.shape != (d + 2, d + 2) or n <= p:
    return None
  coef = np.asarray(coef, np.float64).reshape(d)
  theta = np.append(coef * scale, float(intercept) + shift @ coef - float(np.asarray(moments["y_shift"])[0]))
  keep = np.r_[np.arange(d), d + 1]  # [x, 1] of [x, y, 1]
  information = total_weight * gram[np.ix_(keep, keep)]
  residual = np.concatenate([theta[:-1], [-1.0], theta[-1:]])  # z · [w', -1, b'] = the residual
  rss = total_weight * float(residual @ gram @ residual)
  if not rss > 1e-8 * total_weight * gram[d, d]:  # cancellation: yᵀy and the fit agree to 8 digits
    return None
  rank = _rank(information)
  scale_estimate = rss / (n - rank)
  penalty = _penalty_of(scale, 0.5 * float(l2) * total_weight)
  bread = _inverse(information + penalty)
  matrix = scale_estimate * bread @ information @ bread
  return Covariance(_to_raw(shift, scale, matrix), "nonrobust", True, float(n - rank), scale_estimate, n, 0,
                    bool(np.any(penalty)))


def stage_for_covariance(x, y, loss: str) -> solvers.Staged:
  """The rows staged as the covariance pass reads them: float64, one output."""
  name, _ = split_loss(loss)
  if name not in ("mse", "logistic") + solvers.GLM_FAMILIES:
    raise ValueError(f"a covariance is computed for least squares, logistic and log-link GLMs, not {loss!r}")
  y = np.asarray(y)
  if name == "mse" and y.ndim > 1 and y.shape[1] != 1:
    raise ValueError(f"a covariance is computed for one target, got {y.shape[1]}")
  with np.errstate(invalid="ignore", over="ignore"):  # (non-finite rows: reported from the sums, `covariance`)
    return solvers.stage(np.asarray(x, np.float64), y, loss, 2 if name == "logistic" else None, sample=False)


def _penalty_hessian(data: solvers.Staged, l2: float, total_weight: float) -> np.ndarray:
  """`[p, p]`: the penalty's Hessian in the standardised features, on the scale of `Σ w loss` (least squares'
  loss there is `r² / 2`, the core's `mean_w r²`: half of it)."""
  return _penalty_of(data.scale, (0.5 if data.loss == "mse" else 1.0) * float(l2) * total_weight)


def _penalty_of(scale: np.ndarray, strength: float) -> np.ndarray:
  """`[p, p]`: `strength |coef|²`'s Hessian over the standardised `[w', b']` (`coef = w' / scale`)."""
  p = len(scale) + 1
  penalty = np.zeros((p, p))
  if strength:
    penalty[np.arange(p - 1), np.arange(p - 1)] = strength / scale**2
  return penalty


class NonFiniteSums(ValueError):
  """The covariance's sums are not finite: the rows hold NaN or infinity (or overflow float64)."""


class CollinearityWarning(UserWarning):
  """The design matrix is rank deficient: some coefficients' standard errors are not identified."""


def _rank(information: np.ndarray) -> int:
  """The rank of an information matrix over the standardised `[w', b']` (its columns on one scale: the rank
  test of `np.linalg.matrix_rank` is then the design's)."""
  diagonal = np.sqrt(np.maximum(np.diagonal(information), np.finfo(np.float64).tiny))
  return int(np.linalg.matrix_rank(information / np.outer(diagonal, diagonal), hermitian=True))


def _inverse(matrix: np.ndarray) -> np.ndarray:
  """The inverse of a symmetric matrix (the pseudo-inverse of a singular one, as statsmodels' `pinv`)."""
  return np.linalg.pinv(matrix, hermitian=True)


def _to_raw(shift: np.ndarray, scale: np.ndarray, matrix: np.ndarray) -> np.ndarray:
  """A covariance of the standardised `[w', b']` (`w' = coef · scale`, `b' = intercept + shift · coef`) as one of
  the raw `[intercept, coef]`."""
  p = len(shift) + 1
  jac = np.zeros((p, p))  # [intercept, coef] = jac @ [w', b']
  jac[0, :-1], jac[0, -1] = -shift / scale, 1.0
  jac[1:, :-1] = np.diag(1.0 / scale)
  with np.errstate(over="ignore", invalid="ignore"):  # features ~1e-300: variances ~1e600 are inf in float64
    raw = jac @ matrix @ jac.T
    return (raw + raw.T) / 2
