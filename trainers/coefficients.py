"""A coefficient table from the parameters and their covariance: statsmodels' `summary()` numbers.

>>> rows = coefficient_rows(params [p], cov, confidence=0.95)   # {"coef", "std_err", "statistic", ...} [p] each

The statistic is `coef / std_err`; its p-value two-sided and the interval `coef ± q std_err`, with Student's
t (`cov.use_t`: least squares' nonrobust covariance, `df_resid` degrees of freedom) or the normal distribution
(every other, statsmodels' default). A bootstrap's rows come from its resamples (`bootstrap_rows`).
"""

from __future__ import annotations

import numpy as np

COLUMNS = ("coef", "std_err", "statistic", "p_value", "ci_low", "ci_high")


def check_confidence(confidence) -> float:
  """`confidence` as a float strictly between 0 and 1, else one line."""
  if isinstance(confidence, bool) or not isinstance(confidence, (int, float, np.floating)) or not (
      0 < confidence < 1):
    raise ValueError(f"confidence must be a number strictly between 0 and 1, got {confidence!r}")
  return float(confidence)


def quantile(confidence: float, use_t: bool, df: float) -> float:
  """The two-sided interval's multiplier: `t(df)` or the normal's quantile at `1 - (1 - confidence) / 2`
  (`scipy.special`'s functions, those `scipy.stats.t.ppf` and `norm.ppf` call: importing `scipy.stats` takes
  1.1 s here, `scipy.special` 0.3 s)."""
  from scipy import special

  upper = 1 - (1 - check_confidence(confidence)) / 2
  return float(special.stdtrit(df, upper) if use_t else special.ndtri(upper))


def _two_sided(statistic: np.ndarray, use_t: bool, df: float) -> np.ndarray:
  """`2 P(|T| > |statistic|)`, T Student's t(df) or normal (`stats.t.sf`'s and `norm.sf`'s functions)."""
  from scipy import special

  tail = special.stdtr(df, -np.abs(statistic)) if use_t else special.ndtr(-np.abs(statistic))
  return 2 * tail


def coefficient_rows(params, cov, confidence: float = 0.95) -> dict[str, np.ndarray]:
  """`{column: [p]}` for `params [p]` and a `covariance.Covariance` (its matrix `[p, p]`)."""
  params = np.asarray(params, np.float64)
  std_err = np.sqrt(np.maximum(np.diagonal(cov.matrix), 0))
  with np.errstate(divide="ignore", invalid="ignore"):
    statistic = params / std_err
  q = quantile(confidence, cov.use_t, cov.df_resid)
  return {"coef": params, "std_err": std_err, "statistic": statistic,
          "p_value": _two_sided(statistic, cov.use_t, cov.df_resid),
          "ci_low": params - q * std_err, "ci_high": params + q * std_err}


def bootstrap_rows(params, resamples, confidence: float = 0.95) -> dict[str, np.ndarray]:
  """`{column: [p]}` of `params [p]` from `resamples [B, p]`: std_err their spread (ddof 1), the interval
  their percentiles, the statistic `coef / std_err` with a normal p-value."""
  params = np.asarray(params, np.float64)
  resamples = np.asarray(resamples, np.float64)
  std_err = resamples.std(axis=0, ddof=1)
  alpha = 1 - check_confidence(confidence)
  low, high = np.quantile(resamples, [alpha / 2, 1 - alpha / 2], axis=0)
  with np.errstate(divide="ignore", invalid="ignore"):
    statistic = params / std_err
  return {"coef": params, "std_err": std_err, "statistic": statistic,
          "p_value": _two_sided(statistic, False, np.inf), "ci_low": low, "ci_high": high}
