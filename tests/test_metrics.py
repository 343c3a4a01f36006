"""Metrics from sums: equal to direct formulas, and exact when sums are merged."""

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, mean_squared_error, r2_score

from flaxzoo.trainers.metrics import classification_sums, finalize_classification, finalize_regression, regression_sums


def test_regression_metrics_match_scikit_learn():
  rng = np.random.default_rng(0)
  y = rng.normal(0.5, 0.2, 100).astype(np.float32)
  pred = (y + rng.normal(0, 0.05, 100)).astype(np.float32)
  m = finalize_regression(regression_sums(jnp.asarray(pred[:, None]), jnp.asarray(y)), 100.0, "years")
  np.testing.assert_allclose(m["mse"], mean_squared_error(y, pred), rtol=1e-5)
  np.testing.assert_allclose(m["mae"], mean_absolute_error(y, pred), rtol=1e-5)
  np.testing.assert_allclose(m["r2"], r2_score(y, pred), rtol=1e-5)
  np.testing.assert_allclose(m["rmse"], np.sqrt(m["mse"]))
  np.testing.assert_allclose(m["mae_years"], 100 * m["mae"])
  assert m["count"] == 100


def test_sums_of_parts_give_the_metrics_of_the_whole():
  rng = np.random.default_rng(1)
  y = jnp.asarray(rng.normal(size=10).astype(np.float32))
  pred = jnp.asarray(rng.normal(size=(10, 1)).astype(np.float32))
  whole = finalize_regression(regression_sums(pred, y))
  parts = [regression_sums(pred[:4], y[:4]), regression_sums(pred[4:], y[4:])]
  merged = finalize_regression(jax.tree.map(lambda a, b: a + b, *parts))
  for key in whole:
    np.testing.assert_allclose(merged[key], whole[key], rtol=1e-6)
  # Padding with weight 0 changes nothing.
  padded = regression_sums(jnp.concatenate([pred, pred[:3]]), jnp.concatenate([y, y[:3] + 5]),
                           jnp.concatenate([jnp.ones(10), jnp.zeros(3)]))
  for key, value in finalize_regression(padded).items():
    np.testing.assert_allclose(value, whole[key], rtol=1e-6)


def test_classification_metrics_match_scikit_learn():
  rng = np.random.default_rng(2)
  logits = rng.normal(size=(50, 1)).astype(np.float32)
  labels = (rng.uniform(size=50) < 0.5).astype(np.int32)
  m = finalize_classification(classification_sums(jnp.asarray(logits), jnp.asarray(labels)))
  p = 1 / (1 + np.exp(-logits[:, 0].astype(np.float64)))
  assert m["accuracy"] == accuracy_score(labels, p > 0.5)
  np.testing.assert_allclose(m["log_loss"], log_loss(labels, p), rtol=1e-5)

  logits3 = rng.normal(size=(50, 3)).astype(np.float32)
  labels3 = rng.integers(0, 3, 50).astype(np.int32)
  m3 = finalize_classification(classification_sums(jnp.asarray(logits3), jnp.asarray(labels3)))
  p3 = np.exp(logits3) / np.exp(logits3).sum(1, keepdims=True)
  assert m3["accuracy"] == accuracy_score(labels3, p3.argmax(1))
  np.testing.assert_allclose(m3["log_loss"], log_loss(labels3, p3), rtol=1e-5)
