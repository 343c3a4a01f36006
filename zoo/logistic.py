"""Linear classification (binary logistic or softmax) as a Flax NNX module."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from flaxzoo.zoo.dense import check_input


class LinearClassifier(nnx.Module):
  """Logits of a linear classifier: `x @ kernel + bias`.

  Binary logistic regression has one logit (`num_classes == 2`; the logit of
  class 1); softmax regression has `num_classes` logits. The loss stays out of
  the model (`flaxzoo.trainers.losses`).

  Args:
    in_features: number of input features `d`.
    num_classes: number of classes, >= 2.
    rngs: random streams for the kernel (LeCun normal); the bias is zero.

  >>> LinearClassifier(4, 2, rngs=nnx.Rngs(0)).num_logits
  1
  """

  def __init__(self, in_features: int, num_classes: int, *, rngs: nnx.Rngs):
    if in_features < 1:
      raise ValueError(f"in_features must be >= 1, got {in_features}")
    if num_classes < 2:
      raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    self.in_features = in_features
    self.num_classes = num_classes
    self.num_logits = 1 if num_classes == 2 else num_classes
    self.linear = nnx.Linear(in_features, self.num_logits, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """x: `[batch, in_features]` → logits `[batch, 1]` (binary) or `[batch, num_classes]`."""
    check_input(x, self.in_features, "LinearClassifier")
    return self.linear(x)

  def affine_map(self) -> tuple[jax.Array, jax.Array]:
    """`(kernel [d, k], bias [k])`: the outputs are `x @ kernel + bias` (full-batch MSE then trains from
    the data's sufficient statistics, `flaxzoo.trainers.statistics`)."""
    return self.linear.kernel[...], self.linear.bias[...]

  def set_affine_map(self, kernel, bias) -> None:
    """Sets `(kernel [d, k], bias [k])` (the exact solvers' answer, `flaxzoo.trainers.solvers`)."""
    # NumPy casts: an eager JAX cast would compile a program for every new shape.
    self.linear.kernel.set_value(np.asarray(kernel, self.linear.kernel.dtype))
    self.linear.bias.set_value(np.asarray(bias, self.linear.bias.dtype))
