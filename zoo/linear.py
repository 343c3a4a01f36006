"""Linear regression as a Flax NNX module."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from flaxzoo.zoo.dense import check_input, dense


class LinearRegression(nnx.Module):
  """`y = x @ kernel + bias`.

  Args:
    in_features: number of input features `d`.
    out_features: number of regression targets.
    rngs: random streams; `params` initialises the kernel (LeCun normal) and
      the bias is zero, as `nnx.Linear`.

  >>> model = LinearRegression(3, rngs=nnx.Rngs(0))
  >>> model.linear.kernel.shape, model.linear.bias.shape
  ((3, 1), (1,))
  """

  def __init__(self, in_features: int, out_features: int = 1, *, rngs: nnx.Rngs):
    if in_features < 1 or out_features < 1:
      raise ValueError(
          f"in_features and out_features must be >= 1, got {in_features}, {out_features}"
      )
    self.in_features = in_features
    self.out_features = out_features
    self.linear = nnx.Linear(in_features, out_features, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """x: `[batch, in_features]` → `[batch, out_features]` (one example `[in_features]` → `[out_features]`)."""
    check_input(x, self.in_features, "LinearRegression")
    return dense(x, self.linear.kernel[...], self.linear.bias[...])

  def affine_map(self) -> tuple[jax.Array, jax.Array]:
    """`(kernel [d, k], bias [k])`: the outputs are `x @ kernel + bias` (full-batch MSE then trains from
    the data's sufficient statistics, `flaxzoo.trainers.statistics`)."""
    return self.linear.kernel[...], self.linear.bias[...]

  def set_affine_map(self, kernel, bias) -> None:
    """Sets `(kernel [d, k], bias [k])` (the exact solvers' answer, `flaxzoo.trainers.solvers`)."""
    # NumPy casts: an eager JAX cast would compile a program for every new shape.
    self.linear.kernel.set_value(np.asarray(kernel, self.linear.kernel.dtype))
    self.linear.bias.set_value(np.asarray(bias, self.linear.bias.dtype))
