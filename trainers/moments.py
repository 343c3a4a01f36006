"""Least squares from second moments: the covariances of a normalised Gram matrix and the loss they give.

Shared by the optax fit on sufficient statistics (`statistics`) and the exact solvers' normal equation and
elastic net (`solvers`): one formula, the same numbers.
"""

from __future__ import annotations

import jax.numpy as jnp


def covariances(gram, d: int):
  """`(mean [d + k], sxx [d, d], sxy [d, k], syy [k])` from the Gram matrix `[d + k + 1, d + k + 1]` of `[x, y,
  1]` under weights that sum to 1 (its last column: the means)."""
  mean = gram[:-1, -1]
  cov = gram[:-1, :-1] - mean[:, None] * mean[None, :]
  return mean, cov[:d, :d], cov[:d, d:], jnp.diagonal(cov[d:, d:])


def centred_loss(w, sxx, sxy, syy):
  """`[k]`: the weighted mean squared error about the means of `x w` against each target, `w [d, k]`."""
  return jnp.sum(w * (sxx @ w), axis=0) - 2 * jnp.sum(w * sxy, axis=0) + syy
