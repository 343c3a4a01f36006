"""When a fit is done: the optimality conditions every solver stops on, and which models are still running."""

from __future__ import annotations

import numpy as np


def violation(grad, u=None, lasso=None, xp=np):
  """Per entry, how far `grad` (the smooth part's gradient at `u`) is from the optimality conditions: `|grad|`;
  with an L1 part `lasso` (>= 0, broadcast to `u`) the minimum-norm subgradient `|grad + lasso sign(u)|` where
  `u != 0`, else `max(|grad| - lasso, 0)`. `xp`: numpy, or jax.numpy in a program."""
  if lasso is None:
    return xp.abs(grad)
  return xp.where(u != 0, xp.abs(grad + lasso * xp.sign(u)), xp.maximum(xp.abs(grad) - lasso, 0.0))


def largest_violation(grad, u=None, lasso=None, xp=np):
  """`[K]`: each model's largest `violation` (`grad [K, p]`): below `tol`, the model has converged."""
  return xp.max(violation(grad, u, lasso, xp), axis=1)


def running(converged, stuck, n_iter, max_iter: int):
  """`[K]`: the models an iteration still moves (not converged, not stuck, under `max_iter` iterations)."""
  return ~converged & ~stuck & (n_iter < max_iter)
