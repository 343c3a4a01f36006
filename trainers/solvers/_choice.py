"""Which solver runs a fit: `choose` is the one rule (the estimators, `Trainer`, `Sweep` and the CLI ask it)."""

from __future__ import annotations

from typing import Any

import numpy as np

from flaxzoo.trainers.loss_names import GLM_FAMILIES, split_loss
from flaxzoo.trainers.solvers._sizes import FLOAT32_MIN_ROWS, FLOAT32_TOL, GEMM_MODELS, NEWTON_MAX_PARAMS

SOLVERS = ("auto", "optax", "normal_equation", "newton", "lbfgs", "interior_point")
EXACT_LOSSES = ("mse", "logistic", "softmax")
# Robust losses with an exact solver: Huber's (at its fixed scale) by Newton without an L1 part, the pinball
# loss as a linear program (an interior point finished on its vertex) without an L2 part.
ROBUST_LOSSES = ("huber", "quantile")


def check_solver(solver: str) -> str:
  if solver not in SOLVERS:
    raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
  return solver


def pass_dtype(x, loss: str, k: int, count: int, solver: str, tol: float):
  """None (the passes in x's dtype) or float32: for `count` Newton fits of `loss` (`k` outputs) on `x [n, d]`
  to `tol`."""
  many = count > GEMM_MODELS and len(x) >= FLOAT32_MIN_ROWS and loss in ("logistic", "softmax")
  newton = choose(solver, loss, num_params=(np.shape(x)[1] + 1) * k) == "newton"
  return np.float32 if many and newton and tol >= FLOAT32_TOL else None


def choose(solver: str, loss: Any, affine: bool = True, full_batch: bool = True, num_params: int = 0,
           l1: bool = False, l2: bool = False) -> str:
  """The solver that runs, the one rule every caller asks: `optax` unless an exact one applies (a named loss of
  `EXACT_LOSSES`, `GLM_FAMILIES` or `ROBUST_LOSSES`, an affine model, full batch). `auto` picks `normal_equation`
  for MSE, `newton` or `lbfgs` (by `num_params`; `newton` with an `l1` part: proximal Newton) for the
  classifiers and GLMs, `newton` for Huber and `interior_point` for the pinball loss. `l1`, `l2`: whether
  those penalties are there. ValueError where a named exact solver does not apply."""
  check_solver(solver)
  name = split_loss(loss)[0] if isinstance(loss, str) else None  # `tweedie:1.5`: the family's name
  if solver == "optax":
    return solver
  fits = _exact_solvers(name, l1, l2) if affine and full_batch else ()
  if not fits:
    if solver == "auto":
      return "optax"
    raise ValueError(f"solver {solver!r} needs the loss mse, logistic, softmax, a GLM family, huber (no L1) or"
                     f" quantile (no L2), an affine model (the zoo's linear models) and a full batch; use"
                     f" solver='optax'")
  if solver == "auto":
    return "lbfgs" if fits == ("newton", "lbfgs") and num_params > NEWTON_MAX_PARAMS else fits[0]
  if solver == "lbfgs" and l1 and "newton" in fits:
    raise ValueError("an L1 penalty is fitted by (proximal) Newton, not lbfgs: use solver='newton' or 'auto'")
  if solver not in fits:
    raise ValueError(f"solver {solver!r} does not apply to the loss {name!r}: normal_equation is for mse,"
                     f" newton and lbfgs for logistic, softmax and the GLM families, newton for huber,"
                     f" interior_point for quantile")
  return solver


def _exact_solvers(name: str | None, l1: bool, l2: bool) -> tuple[str, ...]:
  """The exact solvers of a loss (auto's first), none where it has none."""
  if name == "mse":
    return ("normal_equation",)
  if name in ("logistic", "softmax") + GLM_FAMILIES:
    return ("newton",) if l1 else ("newton", "lbfgs")
  if (name == "huber" and not l1) or (name == "quantile" and not l2):
    return ("newton",) if name == "huber" else ("interior_point",)
  return ()
