"""Losses: optax's per-example losses, and their (weighted) batch means.

The trainer uses the per-example forms (`PER_EXAMPLE`, `[batch]` each) and
reduces them itself as `sum(weight * loss) / count`, with the count summed
over every device, so that padding and sharding never change the result. The
`*_loss` functions are the same losses as batch means, for direct use:
optional per-example weights `[batch]` (0 marks padding) give
`sum(weight * per_example) / sum(weight)`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from flaxzoo.zoo.registry import Registry

LossFn = Callable[[jax.Array, jax.Array, jax.Array | None], jax.Array]


def weighted_mean(values: jax.Array, weights: jax.Array | None) -> jax.Array:
  """Mean of `values [batch]`, weighted by `weights [batch]` when given."""
  if weights is None:
    return jnp.mean(values)
  return jnp.sum(values * weights) / jnp.sum(weights)


def _check_batch(outputs, labels):
  if outputs.ndim != 2:
    raise ValueError(f"outputs must be [batch, k], got shape {outputs.shape}")
  if labels.shape[0] != outputs.shape[0]:
    raise ValueError(
        f"outputs and labels differ in batch size: {outputs.shape} vs {labels.shape}"
    )


def squared_errors(outputs: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-example squared error `[batch]`, averaged over outputs.

  Args:
    outputs: predictions `[batch, k]`.
    labels: targets `[batch]` (k = 1) or `[batch, k]`.
  """
  _check_batch(outputs, labels)
  labels = labels.reshape(outputs.shape)
  # optax.squared_error has no 0.5 factor: this is the plain MSE whose
  # gradient the reference run used (learning rate 0.05 depends on it).
  return jnp.mean(optax.squared_error(outputs, labels), axis=-1)


@jax.custom_jvp
def _binary_cross_entropy(z, y):
  """`softplus(z) - y z` = optax.sigmoid_binary_cross_entropy(z, y), from one `exp`."""
  return _binary_cross_entropy_and_probability(z, y)[0]


def _binary_cross_entropy_and_probability(z, y):
  # exp(-|z|), in (0, 1]: no overflow for any z. Every kink takes the z >= 0
  # side (not abs or maximum, whose derivatives at z = 0 are 0 and 1/2), so
  # higher derivatives, which differentiate this code, are right at z = 0.
  positive = z >= 0
  e = jnp.exp(jnp.where(positive, -z, z))
  inverse = 1 / (1 + e)
  probability = jnp.where(positive, inverse, e * inverse)  # sigmoid(z)
  return jnp.where(positive, z, 0) - y * z + jnp.log1p(e), probability


@_binary_cross_entropy.defjvp
def _binary_cross_entropy_jvp(primals, tangents):
  # The gradient sigmoid(z) - y reuses the forward pass's exp. Autodiff of
  # optax's form (two log-sigmoids) computes four transcendentals an example:
  # a logistic epoch took 1.45x as long (benchmarks/logistic_epoch.py).
  (z, y), (dz, dy) = primals, tangents
  loss, probability = _binary_cross_entropy_and_probability(z, y)
  return loss, (probability - y) * dz - z * dy


def sigmoid_cross_entropies(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-example sigmoid binary cross-entropy `[batch]`. logits `[batch, 1]`, labels `[batch]` in [0, 1].

  The same values as `optax.sigmoid_binary_cross_entropy`, with a cheaper gradient.
  """
  _check_batch(logits, labels)
  if logits.shape[-1] != 1:
    raise ValueError(f"logistic loss needs one logit, got shape {logits.shape}")
  return _binary_cross_entropy(logits[:, 0], labels.astype(logits.dtype))


def softmax_cross_entropies(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-example softmax cross-entropy `[batch]`. logits `[batch, classes]`, labels `[batch]` integers."""
  _check_batch(logits, labels)
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels.astype(jnp.int32))


def mse_loss(outputs, labels, weights=None) -> jax.Array:
  """Mean squared error. outputs `[batch, k]`, labels `[batch]` or `[batch, k]`."""
  return weighted_mean(squared_errors(outputs, labels), weights)


def logistic_loss(logits, labels, weights=None) -> jax.Array:
  """Mean sigmoid binary cross-entropy. logits `[batch, 1]`, labels `[batch]` in {0, 1}."""
  return weighted_mean(sigmoid_cross_entropies(logits, labels), weights)


def softmax_loss(logits, labels, weights=None) -> jax.Array:
  """Mean softmax cross-entropy. logits `[batch, classes]`, labels `[batch]` integer classes."""
  return weighted_mean(softmax_cross_entropies(logits, labels), weights)


def l2_penalty(params) -> jax.Array:
  """`0.5 * sum(kernel ** 2)` over every `kernel` leaf of `params`; biases are not penalised.

  The trainer minimises `mean loss + l2 * l2_penalty(params)`, the objective of
  scikit-learn's `LogisticRegression(C=1 / (n * l2))` divided by `C * n`.
  """
  leaves = [leaf for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
            if "kernel" in jax.tree_util.keystr(path)]
  if not leaves:
    return jnp.zeros((), jnp.float32)
  return 0.5 * sum(jnp.sum(jnp.square(leaf)) for leaf in leaves)


PerExampleLossFn = Callable[[jax.Array, jax.Array], jax.Array]

# What the trainer minimises, by name: `(outputs, labels) -> [batch]`.
PER_EXAMPLE: Registry[PerExampleLossFn] = Registry("loss")
PER_EXAMPLE.register("mse", squared_errors)
PER_EXAMPLE.register("logistic", sigmoid_cross_entropies)
PER_EXAMPLE.register("softmax", softmax_cross_entropies)
# The same losses as weighted batch means, for direct use.
LOSSES: dict[str, LossFn] = {"mse": mse_loss, "logistic": logistic_loss, "softmax": softmax_loss}


def get_loss(name_or_fn: str | PerExampleLossFn) -> PerExampleLossFn:
  """A per-example loss by name (`mse`, `logistic`, `softmax`), or a callable as is."""
  if callable(name_or_fn):
    return name_or_fn
  return PER_EXAMPLE.get(name_or_fn)
