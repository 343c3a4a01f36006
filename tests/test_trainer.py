"""The Trainer against closed-form answers, an independent loop, and itself."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from flaxzoo.datasets import TissueFractions
from flaxzoo.trainers import Trainer
from flaxzoo.trainers.batching import arrange, make_epoch_order_fn, make_layout
from flaxzoo.zoo import LinearClassifier, LinearRegression, create_model


def params_of(trainer):
  params = trainer.params
  return (np.asarray(params["linear"]["kernel"][...])[:, 0], np.asarray(params["linear"]["bias"][...]))


def reference_loop(x, y, w, b, steps, lr=0.05):
  """DESIGN.md's reference, written independently: a Python loop of jitted GD steps."""

  def loss(p):
    return jnp.mean((x @ p[0] + p[1] - y) ** 2)

  @jax.jit
  def step(p):
    grads = jax.grad(loss)(p)
    return jax.tree.map(lambda a, g: a - lr * g, p, grads)

  p = (jnp.asarray(w), jnp.asarray(b))
  for _ in range(steps):
    p = step(p)
  return np.asarray(p[0]), np.asarray(p[1])


@pytest.fixture(scope="module")
def tissue(brain_age):
  pre = TissueFractions("tissue")
  return pre(brain_age["train"]), pre(brain_age["test"])


def reference_trainer(num_features):
  model = create_model("linear_regression", seed=13, init="reference", in_features=num_features)
  return Trainer(model, optax.sgd(0.05), "mse")


def test_fused_loop_equals_the_reference_loop_before_convergence(tissue):
  (x, y), _ = tissue
  fused = reference_trainer(3)
  w0, b0 = params_of(fused)
  fused.fit((x, y), steps=200, log_every=64)
  w_ref, b_ref = reference_loop(x, y, w0, b0, 200)
  w, b = params_of(fused)
  np.testing.assert_allclose(w, w_ref, atol=1e-6)
  np.testing.assert_allclose(b, b_ref, atol=1e-6)
  # Far from the start and from the optimum: the comparison is not vacuous.
  assert np.abs(w_ref - w0).max() > 0.1
  assert fused.evaluate((x, y))["mse"] > 1.5 * 0.009145


def test_history_logs_every_k_steps_and_continues_across_fits(tissue):
  (x, y), _ = tissue
  once, twice = reference_trainer(3), reference_trainer(3)
  history = once.fit((x, y), steps=200, log_every=64)
  assert history.steps == [64, 128, 192, 200]
  assert history.losses[0] > history.losses[-1]
  twice.fit((x, y), steps=120, log_every=64)
  twice.fit((x, y), steps=80, log_every=64)
  assert twice.step == 200
  for a, b in zip(params_of(once), params_of(twice)):
    np.testing.assert_allclose(a, b, atol=1e-7)


def test_converges_to_least_squares_on_synthetic_data():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(256, 3)).astype(np.float32)
  y = (x @ np.float32([1.5, -2.0, 0.5]) + 0.3 + rng.normal(0, 0.1, 256)).astype(np.float32)
  trainer = Trainer(LinearRegression(3, rngs=nnx.Rngs(0)), optax.sgd(0.1), "mse")
  trainer.fit((x, y), steps=2000)
  design = np.c_[x, np.ones(len(x))].astype(np.float64)
  coef = np.linalg.lstsq(design, y.astype(np.float64), rcond=None)[0]
  optimum_mse = np.mean((design @ coef - y) ** 2)
  w, b = params_of(trainer)
  np.testing.assert_allclose(np.r_[w, b], coef, rtol=1e-4)
  np.testing.assert_allclose(trainer.evaluate((x, y))["mse"], optimum_mse, rtol=1e-4)


def test_brain_age_gm_converges_to_least_squares(brain_age):
  # Adam: plain float32 SGD at lr 0.05 stalls 1.6e-4 (relative) short of the
  # optimum, where lr * gradient drops below half an ulp of the weights.
  x, y = TissueFractions("gm")(brain_age["train"])
  model = create_model("linear_regression", seed=13, init="reference")
  trainer = Trainer(model, optax.adam(1e-3), "mse")
  with jax.numpy_dtype_promotion("standard"):  # optax's bias correction mixes int and float.
    trainer.fit((x, y), steps=200_000, log_every=50_000)
  design = np.c_[x, np.ones(len(x))].astype(np.float64)
  coef = np.linalg.lstsq(design, y.astype(np.float64), rcond=None)[0]
  w, b = params_of(trainer)
  np.testing.assert_allclose(np.r_[w, b], coef, rtol=1e-4)
  np.testing.assert_allclose(trainer.evaluate((x, y))["mse"], np.mean((design @ coef - y) ** 2), rtol=1e-4)


def test_blocks_pad_the_last_batch_and_every_epoch_covers_each_example_once():
  n, batch = 10, 4
  data = {"x": np.arange(n, dtype=np.float32)[:, None], "y": np.arange(n, dtype=np.float32)}
  layout = make_layout(n, batch, num_shards=3)
  assert (layout.num_blocks, layout.block_size) == (3, 6)  # 4 rounded up to a multiple of 3
  blocks = arrange(data, layout, order=np.random.default_rng(0).permutation(n))
  assert blocks["x"].shape == (3, 6, 1) and blocks["weight"].shape == (3, 6)
  assert blocks["weight"].sum(1).tolist() == [4, 4, 2]
  real = blocks["y"][blocks["weight"] > 0]
  assert sorted(real.tolist()) == list(range(n))
  order_fn = jax.jit(make_epoch_order_fn(layout.num_blocks, "blocks"))
  rng = jax.random.PRNGKey(0)
  epochs = [np.asarray(order_fn(jnp.int32(e), rng)).tolist() for e in range(4)]
  assert all(sorted(e) == [0, 1, 2] for e in epochs)
  assert len({tuple(e) for e in epochs}) > 1  # the block order changes between epochs
  none_fn = make_epoch_order_fn(layout.num_blocks, "none")
  assert np.asarray(none_fn(jnp.int32(3), rng)).tolist() == [0, 1, 2]


def independent_mini_batch_loop(x, y, w, b, steps, batch, seed, lr=0.05):
  """Block shuffling written out: rows permuted once by the seed, the batches of each
  epoch in the order `permutation(fold_in(PRNGKey(seed), epoch))`, plain GD on each."""
  n = len(x)
  rows = np.random.default_rng(seed).permutation(n)
  batches = [rows[k:k + batch] for k in range(0, n, batch)]
  loss = lambda p, xb, yb: jnp.mean((xb @ p[0] + p[1] - yb) ** 2)
  step = jax.jit(lambda p, xb, yb: jax.tree.map(lambda a, g: a - lr * g, p, jax.grad(loss)(p, xb, yb)))
  p = (jnp.asarray(w), jnp.asarray(b))
  for s in range(steps):
    epoch, position = divmod(s, len(batches))
    order = np.asarray(jax.random.permutation(jax.random.fold_in(jax.random.PRNGKey(seed), epoch), len(batches)))
    index = batches[order[position]]
    p = step(p, jnp.asarray(x[index]), jnp.asarray(y[index]))
  return np.asarray(p[0]), np.asarray(p[1])


def test_mini_batch_fused_equals_an_independent_loop(tissue):
  (x, y), _ = tissue
  fused = Trainer(create_model("linear_regression", seed=13, init="reference", in_features=3), optax.sgd(0.05),
                  "mse", seed=5)
  w0, b0 = params_of(fused)
  fused.fit((x, y), steps=30, batch_size=100, log_every=7)  # 6 batches an epoch, the last one of 87 rows
  w_ref, b_ref = independent_mini_batch_loop(x, y, w0, b0, 30, 100, seed=5)
  np.testing.assert_allclose(params_of(fused)[0], w_ref, atol=1e-6)
  np.testing.assert_allclose(params_of(fused)[1], b_ref, atol=1e-6)
  full = reference_trainer(3)
  full.fit((x, y), steps=30)
  assert np.abs(params_of(full)[0] - params_of(fused)[0]).max() > 1e-4


def test_logistic_regression_separates_separable_data():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(200, 2)).astype(np.float32)
  labels = (x[:, 0] - 0.5 * x[:, 1] > 0).astype(np.int32)
  trainer = Trainer(LinearClassifier(2, 2, rngs=nnx.Rngs(0)), optax.sgd(1.0), "logistic")
  trainer.fit((x, labels), steps=500)
  metrics = trainer.evaluate((x, labels))
  assert metrics["accuracy"] == 1.0 and metrics["log_loss"] < 0.1


def test_softmax_regression_separates_three_clusters():
  rng = np.random.default_rng(4)
  centers = np.float32([[0, 4], [4, -2], [-4, -2]])
  labels = rng.integers(0, 3, 300).astype(np.int32)
  x = (centers[labels] + rng.normal(size=(300, 2))).astype(np.float32)
  trainer = Trainer(LinearClassifier(2, 3, rngs=nnx.Rngs(0)), optax.sgd(0.5), "softmax")
  trainer.fit((x, labels), steps=300, batch_size=64)
  assert trainer.evaluate((x, labels))["accuracy"] == 1.0


@pytest.mark.parametrize("steps", [0, -5, 2.5])
def test_bad_steps_are_rejected(steps):
  trainer = reference_trainer(1)
  with pytest.raises(ValueError, match=f"steps must be a positive integer, got {steps}"):
    trainer.fit((np.zeros((4, 1), np.float32), np.zeros(4, np.float32)), steps=steps)


def test_bad_data_shapes_are_rejected():
  trainer = reference_trainer(1)
  with pytest.raises(ValueError, match=r"x must be \[examples, features\], got shape \(4,\)"):
    trainer.fit((np.zeros(4, np.float32), np.zeros(4, np.float32)), steps=1)
  with pytest.raises(ValueError, match="y has 3 rows but x has 4"):
    trainer.fit((np.zeros((4, 1), np.float32), np.zeros(3, np.float32)), steps=1)
  with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
    trainer.fit((np.zeros((4, 1), np.float32), np.zeros(4, np.float32)), steps=1, batch_size=0)


def test_row_shuffling_visits_every_example_once_per_epoch_in_a_new_order():
  from flaxzoo.trainers.batching import arrange, make_epoch_order_fn, make_layout, make_take_fn

  layout = make_layout(23, 5, num_shards=2)  # 5 batches, the last of 3; blocks of 6 (padded)
  blocks = {k: jnp.asarray(v) for k, v in arrange({"x": np.arange(23.0)[:, None], "y": np.zeros(23)}, layout).items()}
  order_fn, take = make_epoch_order_fn(layout.num_blocks, "rows", layout), make_take_fn("rows", layout)
  epochs = []
  for epoch in range(3):
    order = order_fn(epoch, jax.random.PRNGKey(0))
    seen = []
    for position in range(layout.num_blocks):
      batch = take(blocks, order, position)
      real = np.asarray(batch["weight"]) > 0
      assert real.sum() == (5 if position < 4 else 3)
      np.testing.assert_allclose(np.asarray(batch["scale"])[real], 1 / real.sum(), rtol=1e-6)
      seen += np.asarray(batch["x"])[real, 0].astype(int).tolist()
    assert sorted(seen) == list(range(23))
    epochs.append(seen)
  assert epochs[0] != epochs[1] != epochs[2]


def test_row_shuffling_equals_an_independent_loop():
  from flaxzoo.trainers.index_shuffle import draw_keys, shuffled_index

  rng = np.random.default_rng(3)
  x = rng.standard_normal((50, 2)).astype(np.float32)
  y = (x @ np.array([1.0, -2.0], np.float32)).astype(np.float32)
  trainer = Trainer(LinearRegression(2, rngs=nnx.Rngs(0)), optax.sgd(0.1), "mse", parallel="none", seed=0)
  w, b = params_of(trainer)
  trainer.fit((x, y), steps=37, batch_size=8, shuffle="rows", log_every=10)
  # Every epoch a fresh permutation of the 50 rows, keyed by fold_in(PRNGKey(seed), epoch); 7 batches, the last of 2.
  loss = lambda p, xb, yb: jnp.mean((xb @ p[0] + p[1] - yb) ** 2)
  step = jax.jit(lambda p, xb, yb: jax.tree.map(lambda a, g: a - 0.1 * g, p, jax.grad(loss)(p, xb, yb)))
  p = (jnp.asarray(w), jnp.asarray(b))
  for s in range(37):
    epoch, position = divmod(s, 7)
    keys = draw_keys(jax.random.fold_in(jax.random.PRNGKey(0), epoch))
    order = np.asarray(shuffled_index(jnp.arange(50), keys, 50))
    index = order[position * 8:(position + 1) * 8]
    p = step(p, jnp.asarray(x[index]), jnp.asarray(y[index]))
  np.testing.assert_allclose(params_of(trainer)[0], np.asarray(p[0]), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(params_of(trainer)[1], np.asarray(p[1]), rtol=1e-5, atol=1e-6)


def test_a_large_full_batch_is_streamed_in_row_chunks_with_the_same_result():
  rng = np.random.default_rng(4)
  x = rng.standard_normal((3000, 3)).astype(np.float32)
  y = (x @ np.array([0.5, -1.0, 2.0], np.float32) + 0.3).astype(np.float32)
  results = {}
  for chunk in (None, 64):  # 3000 rows: 47 chunks of 64, the last padded with weight-0 rows
    trainer = Trainer(LinearRegression(3, rngs=nnx.Rngs(0)), optax.sgd(0.1), "mse", parallel="none", row_chunk=chunk)
    layout, _ = trainer.layout_blocks((x, y))
    assert layout.block_size == (3000 if chunk is None else 3008)
    history = trainer.fit((x, y), steps=30, log_every=10)
    results[chunk] = (np.asarray(trainer.params["linear"]["kernel"][...]), history.losses)
  np.testing.assert_allclose(results[64][0], results[None][0], rtol=1e-5)
  np.testing.assert_allclose(results[64][1], results[None][1], rtol=1e-5)
