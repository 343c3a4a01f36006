"""The compiled passes over the rows: each model's loss, gradient and Hessian in the standardised features.

The logistic, softmax and log-link GLM losses (`_loss_parts`), a chunk's weighted sums (`_value_grad`), and
the programs the solvers call a chunk at a time (`_value_grad_pass`, `_hessian_pass`, `_newton_pass`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from flaxzoo.trainers import losses as losses_lib
from flaxzoo.trainers.solvers._grams import _weighted_grams
from flaxzoo.trainers.solvers._sizes import _low_precision, block_rows


def _loss_parts(logits, labels, k: int, family=None):
  """Per row: the loss `[C]`, its derivative in the logits `[C, k]`, and for one logit the loss's curvature
  there `[C, 1]` (for more, the probabilities `[C, k]`). `family`: a GLM's `(name, power)` (the deviance and
  Fisher's curvature, `losses.log_link_parts`), else the
  logistic (one logit) or softmax loss."""
  if family:
    loss, dz, curvature = losses_lib.log_link_parts(logits[:, 0], labels.astype(logits.dtype), family[1])
    return loss, dz[:, None], curvature[:, None]
  # One exponential a logit (a fair share of a pass on the CPU), and no overflow for any logit.
  if k == 1:
    z = logits[:, 0]
    y = labels.astype(z.dtype)
    loss, dz, curvature = losses_lib.logistic_parts(z, y)
    return loss, dz[:, None], curvature[:, None]
  top = jnp.max(logits, axis=1, keepdims=True)
  e = jnp.exp(logits - top)
  total = jnp.sum(e, axis=1, keepdims=True)
  p = e / total
  onehot = jax.nn.one_hot(labels, k, dtype=logits.dtype)
  loss = (top + jnp.log(total))[:, 0] - jnp.sum(logits * onehot, axis=1)
  return loss, p - onehot, p


def _value_grad(x, theta, labels, weight, shift, scale, by_row: bool = False, family=None):
  """`(loss [K], grad [K, d + 1, k], curvature [K, C, k])`: weighted sums over this chunk's rows, the
  gradient in the standardised features of `theta [K, d + 1, k]`; `weight [K, C]` (`[C, K]` if `by_row`);
  the curvature of one logit's loss (more: the probabilities), for `_hessian`. `family`: `_loss_parts`'.

  The standardisation is folded into the parameters (`x W' + b'`) and the gradient (`(xᵀr - shift Σr) /
  scale`): no standardised copy of the rows (a 65536 x 32 chunk: 3.0 ms -> 1.0 ms). Float64 rows lose only
  `eps |shift| / scale` there; float32 rows come standardised (`shift` 0, `scale` 1).
  """
  theta = theta.astype(x.dtype)
  count, width, k = theta.shape
  rows = x.shape[0]
  kernel = theta[:, :-1, :] / scale[None, :, None]  # [K, d, k] on the raw rows
  bias = theta[:, -1, :] - jnp.einsum("d,kdc->kc", shift, kernel)  # [K, k]
  if by_row:
    # Many binary models: `[rows, models]` arrays, weights `[C, K]` as staged (`Weights.by_row`): no per-model
    # layout and no transpose. The loss is `-log q`, q the probability of the row's own label, reduced
    # from a materialised q (XLA's CPU fuses `Σ log(q) w` well, not the softplus form): 60 models on a
    # 65536-row chunk, 70 -> 20 ms. q is floored at the smallest normal number, so a row's loss is at most
    # ~708 (`|logit|` is exact below that) and a row of weight 0 adds 0, never 0 * inf.
    z = jax.lax.optimization_barrier(x @ kernel[:, :, 0].T + bias[:, 0][None, :])  # [C, K]
    positive = (labels > 0)[:, None]
    e = jnp.exp(-jnp.abs(z))
    q = jax.lax.optimization_barrier(
        jnp.maximum(jnp.where(positive == (z >= 0), 1, e) / (1 + e), np.finfo(z.dtype).tiny))
    loss = -jnp.sum(jnp.log(q) * weight, axis=0)
    residual = jax.lax.optimization_barrier(jnp.where(positive, q - 1, 1 - q) * weight)  # (p - y) w, [C, K]
    probabilities = (q * (1 - q)).T[:, :, None]  # the curvature p (1 - p)
  else:
    flat = jnp.transpose(kernel, (1, 0, 2)).reshape(width - 1, count * k)
    logits = jnp.transpose((x @ flat).reshape(rows, count, k) + bias[None], (1, 0, 2))  # [K, C, k]
    loss, dz, probabilities = jax.vmap(lambda z: _loss_parts(z, labels, k, family))(logits)
    loss = jnp.sum(weight * loss, axis=1)
    residual = jax.lax.optimization_barrier(
        jnp.transpose(weight[:, :, None] * dz, (1, 0, 2)).reshape(rows, count * k))  # [C, K k]
  grad_x = jax.lax.dot_general(residual, x, (((0,), (0,)), ((), ()))).reshape(count, k, width - 1)
  total = jnp.sum(residual, axis=0).reshape(count, k)
  grad_w = (jnp.transpose(grad_x, (0, 2, 1)) - shift[None, :, None] * total[:, None, :]) / scale[None, :, None]
  return loss, jnp.concatenate([grad_w, total[:, None, :]], axis=1), probabilities


def _standardised_hessian(hessian, shift, scale, k: int):
  """A Hessian `[K, p, p]` over `[x, 1]` as one over the standardised features: `(M ⊗ I)ᵀ H (M ⊗ I)`, with
  `[(x - shift) / scale, 1] = [x, 1] M`. Float64 rows lose `eps (|shift| / scale)²` there; the Hessian only
  steers Newton's steps (the gradient decides convergence), and float32 rows come standardised."""
  d = shift.shape[0]
  m = jnp.zeros((d + 1, d + 1), hessian.dtype)
  m = m.at[jnp.arange(d), jnp.arange(d)].set(1 / scale).at[d, :d].set(-shift / scale).at[d, d].set(1)
  count = hessian.shape[0]
  h = hessian.reshape(count, d + 1, k, d + 1, k)
  return jnp.einsum("ja,Kjclm,lb->Kacbm", m, h, m).reshape(count, (d + 1) * k, (d + 1) * k)


def _with_ones(x):
  return jax.lax.optimization_barrier(jnp.concatenate([x, jnp.ones((x.shape[0], 1), x.dtype)], axis=1))


@functools.partial(jax.jit, static_argnames=("by_row", "family"))
def _value_grad_pass(totals, theta, x, labels, weight, shift, scale, by_row: bool = False, family=None):
  """`totals = (loss [K], grad [K, d + 1, k]) +=` this chunk's weighted sums."""
  rows, count = x.shape[0], theta.shape[0]
  size = block_rows(rows, count) if by_row else rows
  if size == rows:
    loss, grad, _ = _value_grad(x, theta, labels, weight, shift, scale, by_row, family)
    return totals[0] + loss, totals[1] + grad

  def block(totals, part):
    loss, grad, _ = _value_grad(part[0], theta, part[1], part[2], shift, scale, by_row, family)
    return (totals[0] + loss, totals[1] + grad), None

  blocks = rows // size
  parts = (x.reshape(blocks, size, -1), labels.reshape(blocks, size), weight.reshape(blocks, size, count))
  return jax.lax.scan(block, totals, parts)[0]


@functools.partial(jax.jit, static_argnames="family")
def _hessian_pass(total, theta, x, labels, weight, shift, scale, family=None):
  """`total [K, p, p] +=` this chunk's weighted Hessians, `p = (d + 1) k`, ordered as `theta[:, j, c]`
  flattened (j major): `Σ_i w_i (diag(p_i) - p_i p_iᵀ) ⊗ f_i f_iᵀ`."""
  _, _, p = _value_grad(x, theta, labels, weight, shift, scale, family=family)
  return total + _loss_hessian(x, p, weight, shift, scale)


@functools.partial(jax.jit, static_argnames=("by_row", "family"))
def _newton_pass(totals, theta, x, labels, weight, shift, scale, by_row: bool = False, family=None):
  """`_value_grad_pass` and `_hessian_pass` on the same rows in one program (data that fits the sample)."""
  loss, grad, p = _value_grad(x, theta, labels, weight, shift, scale, by_row, family)
  hessian = _loss_hessian(x, p, weight.T if by_row else weight, shift, scale)
  return totals[0] + loss, totals[1] + grad, totals[2] + hessian


def _loss_hessian(x, p, weight, shift, scale):
  """`[K, p, p]`: the loss's Hessians in the standardised features from rows `x [C, d]`, probabilities
  `p [K, C, k]` and weights `[K, C]`.

  Many models' (one GEMM of the weights with the rows' outer products, `_weighted_grams`) are summed in
  float32 from rows standardised in the pass dtype first: the Hessian only steers Newton's steps, and its
  row sample's error (~5%) dwarfs float32's rounding (~3e-7), while the GEMM takes 0.6 of the time (50
  models on 32768 rows: 36 -> 23 ms). `_newton_direction` damps them above that rounding. Else in the pass
  dtype from the raw rows, standardised after (`_standardised_hessian`)."""
  if _low_precision(weight.shape[0], x.shape[0]):
    return _hessian(_with_ones((x - shift[None, :]) / scale[None, :]), p, weight, jnp.float32).astype(x.dtype)
  return _standardised_hessian(_hessian(_with_ones(x), p, weight), shift, scale, p.shape[-1])


def _hessian(f, p, weight, dtype=None):
  """`[K, p, p]` from the features `f [C, D]`, probabilities `p [K, C, k]` and weights `[K, C]`; `dtype`:
  the many-model GEMMs' (default f's)."""
  count, _, k = p.shape
  width = f.shape[1]
  if k == 1:  # p: the curvature
    return _weighted_grams(f, weight * p[:, :, 0], dtype)
  # diag(p) part: a Gram matrix a (model, class), block-diagonal over classes.
  blocks = _weighted_grams(f, jnp.transpose(weight[:, :, None] * p, (0, 2, 1)).reshape(count * k, -1), dtype)
  blocks = blocks.reshape(count, k, width, width)
  eye = jnp.eye(k, dtype=f.dtype)
  diagonal = jnp.einsum("kcjl,cm->kjclm", blocks, eye).reshape(count, width * k, width * k)

  def outer(pk, wk):  # Σ_i w_i (f_i ⊗ p_i)(f_i ⊗ p_i)ᵀ
    u = jax.lax.optimization_barrier((f[:, :, None] * pk[:, None, :]).reshape(f.shape[0], width * k)
                                     * jnp.sqrt(wk)[:, None])
    return u.T @ u

  return diagonal - jax.lax.map(lambda args: outer(*args), (p, weight))


@functools.partial(jax.jit, static_argnums=1)
def _prefix(arrays, size: int):
  return jax.tree.map(lambda v: v[:size], arrays)
