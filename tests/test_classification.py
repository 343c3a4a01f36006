"""Linear classification: losses and gradients by hand, metrics against
scikit-learn's, and trained models against scikit-learn's optimum."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression

from flaxzoo.datasets.sources import load_data
from flaxzoo.trainers import Trainer, logistic_loss, softmax_loss
from flaxzoo.trainers import metrics as metrics_lib
from flaxzoo.trainers.losses import sigmoid_cross_entropies
from flaxzoo.trainers.penalties import l2_penalty
from flaxzoo.zoo import create_model


@pytest.fixture(autouse=True)
def standard_promotion():
  # optax.lbfgs mixes weak and strong dtypes inside; the model code is checked
  # under strict promotion by the other test files.
  with jax.numpy_dtype_promotion("standard"):
    yield


def test_loss_values_by_hand():
  logits = jnp.array([[0.0], [2.0], [-1.0]])
  labels = jnp.array([1, 0, 0])
  want = (math.log(2) + math.log(1 + math.e**2) + math.log(1 + math.e**-1)) / 3
  assert float(logistic_loss(logits, labels)) == pytest.approx(want, rel=1e-6)
  logits3 = jnp.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
  want3 = (-math.log(math.e / (math.e + math.e**2 + math.e**3)) + math.log(3)) / 2
  assert float(softmax_loss(logits3, jnp.array([0, 2]))) == pytest.approx(want3, rel=1e-6)
  # Padding (weight 0) changes nothing.
  padded = jnp.concatenate([logits3, jnp.array([[50.0, -50.0, 0.0]])])
  got = softmax_loss(padded, jnp.array([0, 2, 1]), jnp.array([1.0, 1.0, 0.0]))
  assert float(got) == pytest.approx(want3, rel=1e-6)


def test_loss_gradients_numerically():
  logits = jnp.array([[0.3], [-1.2], [2.0], [0.0]])
  check_grads(lambda z: logistic_loss(z, jnp.array([1, 0, 1, 0])), (logits,), order=2, modes=("fwd", "rev"))
  logits3 = jnp.array([[0.3, -0.2, 1.0], [-1.2, 0.5, 0.1]])
  check_grads(lambda z: softmax_loss(z, jnp.array([2, 0])), (logits3,), order=2, modes=("fwd", "rev"))


def test_logistic_loss_equals_optax_values_and_gradients_at_extreme_logits():
  # The loss has its own gradient rule (one exp an example); it must agree
  # with optax's form everywhere, saturated logits included, and for soft labels.
  z = jnp.array([-100.0, -30.0, -5.0, -1e-3, 0.0, 1e-3, 5.0, 30.0, 100.0])
  for y in (jnp.zeros_like(z), jnp.ones_like(z), jnp.full_like(z, 0.3)):
    reference = lambda z, y: jnp.sum(optax.sigmoid_binary_cross_entropy(z, y))
    ours = lambda z, y: jnp.sum(sigmoid_cross_entropies(z[:, None], y))
    np.testing.assert_allclose(ours(z, y), reference(z, y), rtol=1e-6)
    for got, want in zip(jax.grad(ours, (0, 1))(z, y), jax.grad(reference, (0, 1))(z, y)):
      np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
  check_grads(lambda z, y: sigmoid_cross_entropies(z, y), (jnp.array([[0.3], [-2.0]]), jnp.array([0.2, 0.9])),
              order=2, modes=("fwd", "rev"))


def test_first_step_is_the_hand_gradient_with_l2():
  # One SGD step from a known point: w1 = w0 - lr * (X^T (p - y) / n + l2 * w0), bias unpenalised.
  rng = np.random.default_rng(0)
  x = rng.normal(size=(40, 3)).astype(np.float32)
  y = (rng.random(40) > 0.5).astype(np.int32)
  model = create_model("logistic_regression", in_features=3)
  w0 = np.asarray(model.linear.kernel[...], np.float64)[:, 0]
  b0 = float(np.asarray(model.linear.bias[...])[0])
  lr, l2 = 0.5, 0.1
  trainer = Trainer(model, optax.sgd(lr), "logistic", l2=l2)
  trainer.fit((x, y), steps=1)
  p = 1 / (1 + np.exp(-(x.astype(np.float64) @ w0 + b0)))
  grad_w = x.T.astype(np.float64) @ (p - y) / len(y) + l2 * w0
  grad_b = np.mean(p - y)
  np.testing.assert_allclose(trainer.params["linear"]["kernel"][...][:, 0], w0 - lr * grad_w, atol=1e-6)
  np.testing.assert_allclose(trainer.params["linear"]["bias"][...], [b0 - lr * grad_b], atol=1e-6)
  assert float(l2_penalty({"linear": {"kernel": jnp.array([[3.0], [4.0]]), "bias": jnp.array([9.0])}})) == 12.5


def test_metrics_match_sklearn_with_padding():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(50, 3)).astype(np.float32)
  labels = rng.integers(0, 3, 50).astype(np.int32)
  weights = np.ones(50, np.float32)
  weights[-7:] = 0  # padding rows with arbitrary contents
  sums = metrics_lib.classification_sums(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(weights))
  got = metrics_lib.finalize_classification(jax.device_get(sums))
  real = slice(0, 43)
  predicted = logits[real].argmax(1)
  probs = np.exp(logits[real]) / np.exp(logits[real]).sum(1, keepdims=True)
  assert got["count"] == 43
  assert got["accuracy"] == pytest.approx(skm.accuracy_score(labels[real], predicted))
  assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(labels[real], predicted))
  assert got["log_loss"] == pytest.approx(skm.log_loss(labels[real], probs, labels=[0, 1, 2]), rel=1e-5)
  assert got["confusion"] == skm.confusion_matrix(labels[real], predicted, labels=[0, 1, 2]).tolist()
  scores = np.round(rng.normal(size=60), 1)  # with ties
  binary = rng.integers(0, 2, 60)
  assert metrics_lib.roc_auc(scores, binary) == pytest.approx(skm.roc_auc_score(binary, scores))


def blobs(n, classes, seed, spread=1.5):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(classes, 4)) * spread
  y = rng.integers(0, classes, n)
  x = centres[y] + rng.normal(size=(n, 4))
  return x.astype(np.float32), y.astype(np.int32)


def test_separable_data_reaches_accuracy_one():
  x, y = blobs(200, 2, seed=2, spread=6.0)
  trainer = Trainer(create_model("logistic_regression", in_features=4), optax.sgd(0.5), "logistic")
  history = trainer.fit((x, y), steps=300)
  assert history.metrics["train"]["accuracy"] == 1.0
  assert history.metrics["train"]["roc_auc"] == 1.0


def fit_both(x, y, classes, l2=0.0, steps=300):
  """Our L-BFGS fit and sklearn's (lbfgs, tight tolerance) of the same objective."""
  n = len(y)
  C = np.inf if l2 == 0 else 1 / (n * l2)  # mean loss + l2/2 |w|^2  <=>  C * sum loss + 1/2 |w|^2
  reference = LogisticRegression(C=C, tol=1e-12, max_iter=100_000).fit(x.astype(np.float64), y)
  model = create_model("logistic_regression" if classes == 2 else "softmax_regression",
                       in_features=x.shape[1], num_classes=classes)
  trainer = Trainer(model, optax.lbfgs(), "logistic" if classes == 2 else "softmax", l2=l2)
  trainer.fit((x, y), steps=steps, log_every=steps)
  ours = trainer.evaluate((x, y))
  theirs_loss = skm.log_loss(y, reference.predict_proba(x.astype(np.float64)))
  return trainer, ours, reference, theirs_loss


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("l2", [0.0, 0.05])
def test_lbfgs_matches_sklearn(classes, l2):
  x, y = blobs(300, classes, seed=classes, spread=1.0)
  trainer, ours, reference, theirs_loss = fit_both(x, y, classes, l2)
  assert ours["log_loss"] == pytest.approx(theirs_loss, rel=1e-4)
  assert ours["accuracy"] == skm.accuracy_score(y, reference.predict(x.astype(np.float64)))
  if classes == 2:  # the same coefficients, not only the same loss
    np.testing.assert_allclose(trainer.params["linear"]["kernel"][...][:, 0], reference.coef_[0], rtol=1e-3, atol=1e-4)


def test_sgd_before_convergence_is_not_the_optimum_and_converges_to_it():
  # The comparison has teeth: 20 SGD steps are measurably worse than sklearn's optimum.
  x, y = blobs(300, 2, seed=5, spread=1.0)
  _, _, _, optimum = fit_both(x, y, 2)
  early = Trainer(create_model("logistic_regression", in_features=4), optax.sgd(0.5), "logistic")
  early.fit((x, y), steps=20)
  assert early.evaluate((x, y))["log_loss"] > optimum * (1 + 1e-3)
  early.fit((x, y), steps=20000)
  assert early.evaluate((x, y))["log_loss"] == pytest.approx(optimum, rel=1e-4)


def test_brain_age_group_matches_sklearn(data_dir):
  data = load_data("brain_age", features="tissue", label="age_group", standardize=True, data_dir=data_dir)
  (x, y), (x_test, y_test) = data.splits["train"], data.splits["test"]
  assert data.class_names == ("age<60", "age>=60") and set(np.unique(y)) == {0, 1}
  trainer, ours, reference, theirs_loss = fit_both(x, y, 2)
  assert ours["log_loss"] == pytest.approx(theirs_loss, rel=1e-4)
  assert ours["accuracy"] == skm.accuracy_score(y, reference.predict(x.astype(np.float64)))
  assert trainer.evaluate((x_test, y_test))["accuracy"] == skm.accuracy_score(
      y_test, reference.predict(x_test.astype(np.float64)))
