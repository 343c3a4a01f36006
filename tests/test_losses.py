"""Losses against hand-computed values, with weights, through jit, with gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from flaxzoo.trainers.losses import get_loss, logistic_loss, mse_loss, softmax_loss


def test_mse_scalar_and_batched():
  assert float(jax.jit(mse_loss)(jnp.float32([[3.0]]), jnp.float32([1.0]))) == 4.0
  # errors 1, -2, 0.5 -> (1 + 4 + 0.25) / 3
  outputs = jnp.float32([[2.0], [-1.0], [0.5]])
  labels = jnp.float32([1.0, 1.0, 0.0])
  np.testing.assert_allclose(jax.jit(mse_loss)(outputs, labels), 5.25 / 3, rtol=1e-7)


def test_mse_averages_over_several_outputs():
  outputs = jnp.float32([[1.0, 3.0]])
  labels = jnp.float32([[0.0, 0.0]])
  assert float(mse_loss(outputs, labels)) == 5.0


def test_weights_equal_slicing_and_padding_changes_nothing():
  outputs = jnp.float32([[2.0], [-1.0], [0.5], [100.0]])
  labels = jnp.float32([1.0, 1.0, 0.0, 0.0])
  weights = jnp.float32([1, 1, 1, 0])
  np.testing.assert_allclose(mse_loss(outputs, labels, weights), mse_loss(outputs[:3], labels[:3]), rtol=1e-7)
  np.testing.assert_allclose(
      logistic_loss(outputs, labels, weights), logistic_loss(outputs[:3], labels[:3]), rtol=1e-7
  )


def test_logistic_loss_by_hand():
  # -log(sigmoid(0)) = log 2; label 0 with logit log(3): -log(1 - 3/4) = log 4.
  logits = jnp.float32([[0.0], [np.log(3.0)]])
  labels = jnp.float32([1.0, 0.0])
  np.testing.assert_allclose(jax.jit(logistic_loss)(logits, labels), (np.log(2) + np.log(4)) / 2, rtol=1e-6)


def test_softmax_loss_by_hand():
  # logits (0, log 2, log 5): p = (1/8, 2/8, 5/8).
  logits = jnp.float32([[0.0, np.log(2.0), np.log(5.0)]] * 2)
  labels = jnp.int32([2, 0])
  np.testing.assert_allclose(jax.jit(softmax_loss)(logits, labels), (np.log(8 / 5) + np.log(8)) / 2, rtol=1e-6)


@pytest.mark.parametrize("loss", [mse_loss, logistic_loss])
def test_shape_mismatch_is_an_error(loss):
  with pytest.raises(ValueError, match="differ in batch size"):
    loss(jnp.zeros((3, 1)), jnp.zeros((4,)))
  with pytest.raises(ValueError, match=r"must be \[batch, k\]"):
    loss(jnp.zeros((3,)), jnp.zeros((3,)))


def test_logistic_needs_one_logit():
  with pytest.raises(ValueError, match="needs one logit"):
    logistic_loss(jnp.zeros((3, 2)), jnp.zeros((3,)))


def test_gradients_match_finite_differences():
  x = jnp.float32([[0.3], [0.5], [0.7]])
  y = jnp.float32([0.2, 0.6, 0.4])
  labels = jnp.float32([0, 1, 1])
  for fn in (lambda o: mse_loss(o, y), lambda o: logistic_loss(o, labels)):
    check_grads(fn, (x,), order=2, modes=["rev"], eps=1e-2, atol=1e-2, rtol=1e-2)
  # The MSE gradient by hand: 2 (o - y) / n.
  np.testing.assert_allclose(jax.grad(lambda o: mse_loss(o, y))(x)[:, 0], 2 * (x[:, 0] - y) / 3, rtol=1e-6)


def test_per_example_losses_by_name_average_to_the_batch_losses():
  outputs = jnp.float32([[2.0], [-1.0], [0.5]])
  labels = jnp.float32([1.0, 1.0, 0.0])
  for name, batch_loss in (("mse", mse_loss), ("logistic", logistic_loss)):
    per_example = get_loss(name)(outputs, labels)
    assert per_example.shape == (3,)
    np.testing.assert_allclose(jnp.mean(per_example), batch_loss(outputs, labels), rtol=1e-7)
  logits = jnp.float32([[0.0, 1.0, 2.0], [1.0, 0.0, 0.0]])
  np.testing.assert_allclose(jnp.mean(get_loss("softmax")(logits, jnp.int32([2, 0]))),
                             softmax_loss(logits, jnp.int32([2, 0])), rtol=1e-7)
  assert get_loss(softmax_loss) is softmax_loss
  with pytest.raises(ValueError, match="unknown loss .hinge.; known: gamma, huber, logistic, mse, poisson, quantile, softmax"):
    get_loss("hinge")


@pytest.mark.parametrize(("name", "power"), [("poisson", 1.0), ("gamma", 2.0), ("tweedie:1.5", 1.5),
                                             ("tweedie:3", 3.0), ("tweedie:1", 1.0)])
def test_glm_deviances_are_half_of_scikit_learns_on_the_log_mean(name, power):
  from sklearn.metrics import mean_tweedie_deviance

  rng = np.random.default_rng(0)
  log_means = rng.normal(size=(50, 1))
  labels = rng.gamma(2.0, size=50) * (rng.random(50) > (0.3 if power < 2 else 0.0))  # zeros where allowed
  with jax.enable_x64(True):
    ours = get_loss(name)(jnp.asarray(log_means), jnp.asarray(labels))
    expected = [mean_tweedie_deviance([y], [m], power=power) / 2 for y, m in zip(labels, np.exp(log_means[:, 0]))]
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-12)
    at_mean = get_loss(name)(jnp.log(jnp.asarray(labels[labels > 0]))[:, None], jnp.asarray(labels[labels > 0]))
    np.testing.assert_allclose(at_mean, 0.0, atol=1e-12)  # 0 where the mean is the label


def test_huber_and_pinball_by_hand_and_as_scikit_learns():
  from sklearn.metrics import mean_pinball_loss

  outputs, labels = jnp.float32([[0.0], [0.0], [0.0]]), jnp.float32([0.5, -2.0, 3.0])
  # Huber, epsilon 1: r² / 2 inside, |r| - 1/2 beyond
  np.testing.assert_allclose(get_loss("huber:1")(outputs, labels), [0.125, 1.5, 2.5], rtol=1e-7)
  np.testing.assert_allclose(get_loss("huber")(outputs, labels), get_loss("huber:1.35")(outputs, labels))
  for q in (0.1, 0.5, 0.9):
    ours = float(jnp.mean(get_loss(f"quantile:{q}")(outputs, labels)))
    assert ours == pytest.approx(mean_pinball_loss(np.asarray(labels), np.zeros(3), alpha=q), rel=1e-6)


@pytest.mark.parametrize("name", ["tweedie:inf", "tweedie:1_5", "tweedie:0.5", "huber:-1", "quantile:1",
                                  "quantile:nan", "mse:2", "tweedie"])
def test_a_loss_parameter_outside_its_range_is_refused_in_one_line(name):
  with pytest.raises(ValueError, match=name.partition(":")[0]):
    get_loss(name)
