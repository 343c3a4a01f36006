"""The affine map `x @ kernel + bias` of the linear models: input checks, and a CPU fast path.

`nnx.Linear` contracts the last axis of any `[..., d]` input. The models here
check what `dot_general` would reject (or, for a few features unrolled by
hand, silently accept) and say it in the model's terms.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax.nnx.nn import dtypes

# Up to this many features the CPU fast path writes the product out (see `dense`).
SMALL = 8


def check_input(x, in_features: int, model: str) -> None:
  """Raises TypeError unless `x` is a real array `[..., in_features]` (bool, int or float)."""
  shape, dtype = np.shape(x), getattr(x, "dtype", None)
  kind = np.dtype(dtype).kind if dtype is not None else np.asarray(x).dtype.kind
  if kind not in "biuf" and not jnp.issubdtype(dtype, jnp.floating):
    raise TypeError(f"{model}: x must be a real array (bool, int or float), got dtype {dtype or kind!r}")
  if len(shape) == 0:
    raise TypeError(f"{model}: x must be [..., {in_features}] (one example [{in_features}]), got a scalar")
  if shape[-1] != in_features:
    raise TypeError(
        f"{model}: x must be [..., {in_features}] ({in_features} features), got shape {tuple(shape)}"
    )


def dense_plain(x, kernel, bias):
  """`x [..., d] @ kernel [d, k] + bias [k]` as one dot (what `nnx.Linear` computes)."""
  x, kernel, bias = dtypes.promote_dtype((x, kernel, bias), dtype=None)
  y = jnp.matmul(x, kernel)
  return y + _lead(bias, y.ndim)


def dense_unrolled(x, kernel, bias):
  """The same map as `d` multiply-adds, for a few features.

  XLA's CPU dot for a `[n, 3] @ [3, 1]` product (and its gradient) costs ~2x a
  whole brain-age step; `d` fused multiply-adds cost a fraction of that.
  """
  x, kernel, bias = dtypes.promote_dtype((x, kernel, bias), dtype=None)
  out = x[..., 0:1] * _lead(kernel[0], x.ndim)
  for k in range(1, kernel.shape[0]):
    out = out + x[..., k:k + 1] * _lead(kernel[k], x.ndim)
  return out + _lead(bias, x.ndim)


def _lead(row, ndim: int):
  """`row [k]` as `[1, ..., 1, k]` of rank `ndim` (no implicit rank promotion)."""
  return jnp.reshape(row, (1,) * (ndim - 1) + row.shape)


def dense(x, kernel, bias):
  """`x @ kernel + bias`: unrolled for at most `SMALL` features on the CPU, else one dot."""
  if kernel.shape[0] <= SMALL and jax.default_backend() == "cpu":
    return dense_unrolled(x, kernel, bias)
  return dense_plain(x, kernel, bias)
