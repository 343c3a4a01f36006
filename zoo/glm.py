"""A generalized linear model with a log link as a Flax NNX module."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from flaxzoo.zoo.linear import LinearRegression


class GeneralizedLinear(LinearRegression):
  """The linear predictor of a log-link GLM, `η = x @ kernel + bias = log μ`: Poisson, gamma and Tweedie
  regression (`flaxzoo.trainers.losses`' `poisson`, `gamma`, `tweedie:P` take η, as the logistic loss takes
  logits). `mean(x)` is the predicted mean `exp(η)`. The exact solvers fit it by Newton (IRLS).

  Args:
    in_features: number of input features `d`.
    out_features: number of targets (each its own GLM).
    rngs: random streams; `params` initialises the kernel (LeCun normal); the bias is zero.

  >>> model = GeneralizedLinear(3, rngs=nnx.Rngs(0))
  >>> model(jnp.zeros((2, 3))).shape, float(model.mean(jnp.zeros((1, 3)))[0, 0])
  ((2, 1), 1.0)
  """

  link = "log"

  def __init__(self, in_features: int, out_features: int = 1, *, rngs: nnx.Rngs):
    super().__init__(in_features, out_features, rngs=rngs)

  def mean(self, x: jax.Array) -> jax.Array:
    """The predicted means `exp(η)`: `[batch, in_features]` → `[batch, out_features]`."""
    return jnp.exp(self(x))
