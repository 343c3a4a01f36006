"""An offset in the linear predictor (`η = X coef + intercept + offset`; `exposure` e: offset log e), absorbed into
the targets and weights, exactly: the Tweedie unit deviance of power p is homogeneous, `d(c y, c μ) = c^(2-p)
d(y, μ)`, so with `μ = e^o m` a row's `w d(y, μ)` is `w e^((2-p) o) d(y e^-o, m)`; its score, Fisher and observed
curvature and Pearson term scale alike, so the fit, its covariance and its dispersion on `(y e^-o, w e^((2-p) o))`
are those of the offset model (least squares, p = 0 with the identity link: `y - o`, weights unchanged).

>>> y2, w2 = absorbed(y, w, offset, power)     # fit and covariance on (y2, w2); predict with + offset
"""

from __future__ import annotations

import numpy as np


def power_of_loss(loss: str) -> float:
  """The Tweedie power an offset is absorbed with: least squares 0, a log-link family its own; ValueError else."""
  from flaxzoo.trainers.loss_names import GLM_FAMILIES, family_of, power_of, split_loss

  name, value = split_loss(loss)
  if name == "mse":
    return 0.0
  if name not in GLM_FAMILIES:
    raise ValueError(f"an offset is fitted for least squares and the log-link GLMs, not {loss!r}")
  family, power = family_of(name, value)
  return float(power_of(family, power))


def checked_offset(offset, exposure, n: int) -> np.ndarray | None:
  """`[n]` float64 offset (`exposure`: its log; not both), or None; one line for a bad one."""
  if offset is not None and exposure is not None:
    raise ValueError("give offset or exposure (its exponential), not both")
  if exposure is not None:
    exposure = np.asarray(exposure, np.float64)
    if exposure.shape != (n,) or not (np.all(np.isfinite(exposure)) and exposure.min() > 0):
      raise ValueError(f"exposure must be [{n}] finite numbers > 0, got shape {exposure.shape}")
    return np.log(exposure)
  if offset is None:
    return None
  offset = np.asarray(offset, np.float64)
  if offset.shape != (n,) or not np.all(np.isfinite(offset)):
    raise ValueError(f"offset must be [{n}] finite numbers, got shape {offset.shape}")
  return offset


def absorbed(y, weights, offset, power: float) -> tuple[np.ndarray, np.ndarray]:
  """`(targets [n], weights [n])` whose fit without an offset is the fit of `y` with `offset` (`power` 0: least
  squares, identity link; else the log link)."""
  y, weights = np.asarray(y, np.float64), np.asarray(weights, np.float64)
  if offset is None:
    return y, weights
  if power == 0:
    return y - offset, weights
  with np.errstate(over="raise"):
    try:
      return y * np.exp(-offset), weights * np.exp((2 - power) * offset)
    except FloatingPointError:
      raise ValueError("offset: exp(offset) overflows float64 (|offset| > ~700)") from None
