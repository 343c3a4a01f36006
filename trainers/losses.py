"""Losses: optax's per-example losses, and their (weighted) batch means.

Regression beyond squared error: the half deviances of the log-link GLMs (`poisson`, `gamma`,
`tweedie:P`; the model's outputs are the log of the mean, as a classifier's are logits), `huber:EPSILON`
(robust) and `quantile:Q` (the pinball loss). A name's parameter follows a colon (`get_loss`).

The trainer uses the per-example forms (`PER_EXAMPLE`, `[batch]` each) and
reduces them itself as `sum(weight * loss) / count`, with the count summed
over every device, so that padding and sharding never change the result. The
`*_loss` functions are the same losses as batch means, for direct use:
optional per-example weights `[batch]` (0 marks padding) give
`sum(weight * per_example) / sum(weight)`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from flaxzoo.trainers import loss_names
from flaxzoo.trainers.loss_names import split_loss
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


def log_link_parts(z: jax.Array, y: jax.Array, power: float, xp=jnp):
  """The Tweedie half deviance of `power` p (1: Poisson, 2: gamma) per row, at `z = log μ`, `[C]` each:
  `(deviance, its derivative in z, Fisher's curvature μ^(2-p))`. The curvature is the IRLS weight: always
  > 0, where the deviance's own second derivative is not for p > 2 (`flaxzoo.trainers.solvers`' Newton).
  `xp`: jax.numpy (the compiled passes) or NumPy (the solvers' and the covariance's passes on host rows)."""
  dz, curvature = log_link_terms(z, y, power, xp)  # (XLA computes each exponential once: CSE)
  if power == 1:
    return curvature - y * z + _xlogy(y, y, xp) - y, dz, curvature
  if power == 2:
    return y * xp.exp(-z) + z - xp.log(y) - 1, dz, curvature
  a, b = xp.exp((1 - power) * z), xp.exp((2 - power) * z)  # μ^(1-p), μ^(2-p)
  constant = xp.where(y > 0, y ** (2 - power), 0) / ((1 - power) * (2 - power))
  return constant - y * a / (1 - power) + b / (2 - power), dz, curvature


def log_link_terms(z, y, power: float, xp=jnp):
  """`log_link_parts`' derivative in z and curvature `[C]` each, without the deviance (the covariance's sums)."""
  if power == 1:
    mu = xp.exp(z)
    return mu - y, mu
  if power == 2:
    return 1 - y * xp.exp(-z), xp.ones_like(z)  # 1 - y / μ
  a, b = xp.exp((1 - power) * z), xp.exp((2 - power) * z)  # μ^(1-p), μ^(2-p)
  return b - y * a, b


def _xlogy(a, b, xp):
  """`a log b`, 0 where `a` is 0 (NumPy: as SciPy's `xlogy`, in 0.6 of its time on 4096-row blocks)."""
  if xp is jnp:
    return jax.scipy.special.xlogy(a, b)
  return a * xp.log(xp.where(a == 0, 1, b))


def logistic_parts(z, y, xp=jnp):
  """The logistic loss at logits `z [C]` (labels `y` 0/1): `(loss, its derivative p - y, curvature p (1 - p))`,
  `p = sigmoid(z)`, with one exponential and no overflow for any logit; `xp` as `log_link_parts`'."""
  e = xp.exp(-xp.abs(z))
  p = xp.where(z >= 0, 1, e) / (1 + e)  # sigmoid(z)
  return xp.maximum(z, 0) + xp.log1p(e) - y * z, p - y, p * (1 - p)


def _one_output(outputs, labels, name):
  _check_batch(outputs, labels)
  if outputs.shape[-1] != 1:
    raise ValueError(f"the {name} loss needs one output (the log of the mean), got shape {outputs.shape}")
  return outputs[:, 0], labels.reshape(outputs.shape[0]).astype(outputs.dtype)


def tweedie_deviances(log_means: jax.Array, labels: jax.Array, power: float) -> jax.Array:
  """Per-example Tweedie half deviance `[batch]` of `power` p (1 <= p, not in (0, 1); 1: Poisson, 2: gamma),
  scikit-learn's `half_tweedie_loss`: log_means `[batch, 1]` (the model's log link), labels `[batch]` >= 0
  (> 0 for p >= 2). 0 where the mean equals the label."""
  z, y = _one_output(log_means, labels, "tweedie")
  return log_link_parts(z, y, float(power))[0]


def poisson_deviances(log_means: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-example Poisson half deviance `[batch]`: `μ - y log μ + y log y - y`, μ = exp(log_means)."""
  return tweedie_deviances(log_means, labels, 1.0)


def gamma_deviances(log_means: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-example gamma half deviance `[batch]`: `y / μ + log μ - log y - 1`, labels > 0."""
  return tweedie_deviances(log_means, labels, 2.0)


def huber_losses(outputs: jax.Array, labels: jax.Array, epsilon: float = 1.35) -> jax.Array:
  """Per-example Huber loss `[batch]` (mean over outputs): `r² / 2` for `|r| <= epsilon`, else `epsilon (|r| -
  epsilon / 2)` (optax's `huber_loss` with `delta = epsilon`; scikit-learn's HuberRegressor also fits a scale)."""
  _check_batch(outputs, labels)
  return jnp.mean(optax.huber_loss(outputs, labels.reshape(outputs.shape), delta=epsilon), axis=-1)


def pinball_losses(outputs: jax.Array, labels: jax.Array, quantile: float = 0.5) -> jax.Array:
  """Per-example pinball loss `[batch]` of the `quantile` q in (0, 1) (mean over outputs): `q r` for residuals
  `r = y - output >= 0`, `(q - 1) r` below: its minimiser is the q-quantile (scikit-learn's QuantileRegressor)."""
  _check_batch(outputs, labels)
  residual = labels.reshape(outputs.shape) - outputs
  return jnp.mean(jnp.maximum(quantile * residual, (quantile - 1) * residual), axis=-1)


PerExampleLossFn = Callable[[jax.Array, jax.Array], jax.Array]

# What the trainer minimises, by name: `(outputs, labels) -> [batch]`.
PER_EXAMPLE: Registry[PerExampleLossFn] = Registry("loss")
PER_EXAMPLE.register("mse", squared_errors)
PER_EXAMPLE.register("logistic", sigmoid_cross_entropies)
PER_EXAMPLE.register("softmax", softmax_cross_entropies)
PER_EXAMPLE.register("poisson", poisson_deviances)
PER_EXAMPLE.register("gamma", gamma_deviances)
PER_EXAMPLE.register("huber", huber_losses)
PER_EXAMPLE.register("quantile", pinball_losses)
# The same losses as weighted batch means, for direct use.
LOSSES: dict[str, LossFn] = {"mse": mse_loss, "logistic": logistic_loss, "softmax": softmax_loss}

# Losses with one parameter, `name:value` (`tweedie:1.5`; parsed by `loss_names.split_loss`): their functions.
PARAMETERS = {"tweedie": tweedie_deviances, "huber": huber_losses, "quantile": pinball_losses}
# Losses whose model outputs are the log of the mean (`mean_of`).
LOG_LINK = loss_names.GLM_FAMILIES


def get_loss(name_or_fn: str | PerExampleLossFn) -> PerExampleLossFn:
  """A per-example loss by name (`mse`, `logistic`, `softmax`, `poisson`, `gamma`, `huber`, `quantile`, and
  with a parameter `tweedie:P`, `huber:EPSILON`, `quantile:Q`), or a callable as is."""
  if callable(name_or_fn):
    return name_or_fn
  base, value = split_loss(name_or_fn)
  if value is None:
    if base == "tweedie":
      raise ValueError("loss 'tweedie' needs its power: 'tweedie:P' (P = 1, 1 < P < 2 or P >= 2)")
    return PER_EXAMPLE.get(base)
  return functools.partial(PARAMETERS[base], **{loss_names.PARAMETERS[base][0]: value})


def label_error(loss, labels) -> str | None:
  """Why `labels` are outside a log-link loss's domain (Tweedie power p: >= 0, > 0 for p >= 2), or None (also
  for every other loss)."""
  import numpy as np

  if not isinstance(loss, str):
    return None
  base, power = split_loss(loss)
  if base not in LOG_LINK:
    return None
  power = loss_names.power_of(base, power)
  labels = np.asarray(labels, np.float64)
  if not np.all(np.isfinite(labels)):
    return f"the {loss} loss needs finite labels"
  positive = power is not None and power >= 2
  if labels.size and (labels.min() <= 0 if positive else labels.min() < 0):
    return f"the {loss} loss needs labels {'> 0' if positive else '>= 0'}, got a minimum of {labels.min():g}"
  return None


def mean_of(loss) -> Callable[[jax.Array], jax.Array]:
  """The model outputs -> the predicted mean: `exp` for the log-link losses (`LOG_LINK`), else the identity."""
  if isinstance(loss, str) and split_loss(loss)[0] in LOG_LINK:
    return jnp.exp
  return lambda outputs: outputs
