"""Every registered model builds and has the documented shapes; reference init."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flaxzoo.zoo import LinearClassifier, LinearRegression, UnknownNameError, create_model, list_models, register_model

OUTPUTS = {"glm": 1, "linear_regression": 1, "logistic_regression": 1, "softmax_regression": 3}


def test_registry_lists_the_models():
  assert list_models() == sorted(OUTPUTS)
  assert list_models("*_regression") == sorted(set(OUTPUTS) - {"glm"})
  assert list_models("logistic*") == ["logistic_regression"]


@pytest.mark.parametrize("name", sorted(OUTPUTS))
@pytest.mark.parametrize("in_features", [1, 3])
def test_every_model_builds_with_the_expected_output_shape(name, in_features):
  model = create_model(name, in_features=in_features)
  out = model(jnp.ones((5, in_features), jnp.float32))
  assert out.shape == (5, OUTPUTS[name]) and out.dtype == jnp.float32


def test_linear_regression_computes_x_kernel_plus_bias():
  model = LinearRegression(2, 2, rngs=nnx.Rngs(0))
  x = np.float32([[1, 2], [3, 4], [0, 0]])
  expected = x @ np.asarray(model.linear.kernel[...]) + np.asarray(model.linear.bias[...])
  np.testing.assert_allclose(model(x), expected, rtol=1e-6)
  assert model(jnp.zeros((0, 2))).shape == (0, 2)


def test_classifier_has_one_logit_for_two_classes():
  assert LinearClassifier(4, 2, rngs=nnx.Rngs(0))(jnp.ones((3, 4))).shape == (3, 1)
  assert LinearClassifier(4, 5, rngs=nnx.Rngs(0))(jnp.ones((3, 4))).shape == (3, 5)
  with pytest.raises(ValueError, match="num_classes must be >= 2, got 1"):
    LinearClassifier(4, 1, rngs=nnx.Rngs(0))


def test_reference_init_reproduces_the_published_values():
  model = create_model("linear_regression", seed=13, init="reference")
  assert float(model.linear.kernel[0, 0]) == np.float32(-0.47798702)
  assert float(model.linear.bias[0]) == np.float32(1.2634865)
  model3 = create_model("linear_regression", seed=13, init="reference", in_features=3)
  np.testing.assert_array_equal(
      np.asarray(model3.linear.kernel[...])[:, 0], np.float32([0.5537158, 1.6863561, -0.28639108])
  )
  assert float(model3.linear.bias[0]) == np.float32(1.2634865)


def test_seeds_and_default_init_differ_from_reference():
  a = create_model("linear_regression", seed=0)
  b = create_model("linear_regression", seed=1)
  assert float(a.linear.kernel[0, 0]) != float(b.linear.kernel[0, 0])
  assert float(a.linear.bias[0]) == 0.0


def test_unknown_names_list_the_known_ones():
  with pytest.raises(UnknownNameError, match="unknown model 'resnet'; known: glm, linear_regression, logistic_regression, softmax_regression"):
    create_model("resnet")
  with pytest.raises(UnknownNameError, match="unknown init 'xavier'; known: default, reference"):
    create_model("linear_regression", init="xavier")
  with pytest.raises(ValueError, match="takes no argument 'depth'"):
    create_model("linear_regression", depth=3)
  with pytest.raises(ValueError, match="reference init needs one output"):
    create_model("softmax_regression", init="reference")


def test_a_name_registers_once():
  with pytest.raises(ValueError, match="already registered"):
    register_model("linear_regression", LinearRegression)


@pytest.mark.parametrize("model", [LinearRegression(3, rngs=nnx.Rngs(0)), LinearClassifier(3, 4, rngs=nnx.Rngs(0))],
                         ids=["regression", "classifier"])
def test_a_wrong_input_width_rank_or_dtype_is_rejected_like_nnx_linear(model):
  name = type(model).__name__
  plain = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
  for x in (np.ones((2, 4), np.float32), np.ones((2, 2), np.float32)):  # the 4th column was ignored before
    with pytest.raises(TypeError):
      plain(x)
    with pytest.raises(TypeError, match=rf"{name}: x must be \[\.\.\., 3\] \(3 features\), got shape \(2, {x.shape[1]}\)"):
      model(x)
  with pytest.raises(TypeError, match="got a scalar"):
    model(np.float32(1.0))
  for x in (np.ones((2, 3), np.complex64), np.array([["a", "b", "c"]])):
    with pytest.raises(TypeError, match="x must be a real array"):
      model(x)


@pytest.mark.parametrize("model", [LinearRegression(3, 2, rngs=nnx.Rngs(1)), LinearClassifier(3, 4, rngs=nnx.Rngs(1))],
                         ids=["regression", "classifier"])
def test_one_example_and_any_leading_axes_like_nnx_linear(model):
  x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
  reference = nnx.Linear(3, model.linear.out_features, rngs=nnx.Rngs(0))
  reference.kernel.set_value(model.linear.kernel[...])
  reference.bias.set_value(model.linear.bias[...])
  np.testing.assert_allclose(model(x), reference(x), rtol=1e-6, atol=1e-6)  # [2, 5, 3] -> [2, 5, k]
  np.testing.assert_allclose(model(x[0, 0]), reference(x[0, 0]), rtol=1e-6, atol=1e-6)  # [3] -> [k]
  assert model(x[0, 0]).shape == (model.linear.out_features,)


@pytest.mark.parametrize("in_features", range(1, 11))
def test_the_cpu_fast_path_equals_the_plain_product(in_features):
  from flaxzoo.zoo.dense import SMALL, dense, dense_plain, dense_unrolled

  rng = np.random.default_rng(in_features)
  kernel = jnp.asarray(rng.normal(size=(in_features, 2)), jnp.float32)
  bias = jnp.asarray(rng.normal(size=(2,)), jnp.float32)
  # Values and gradients (the trainer differentiates the fast path), each path's in one program, as the trainer
  # compiles them (op by op, the 60 shapes' programs took 5 s).
  value_and_grad = lambda f, x, kernel: (f(x, kernel, bias), jax.grad(lambda k: jnp.sum(f(x, k, bias) ** 2))(kernel))
  paths = jax.jit(lambda x, kernel: [value_and_grad(f, x, kernel) for f in (dense_unrolled, dense_plain)])
  for shape in ((in_features,), (7, in_features), (2, 3, in_features)):
    (fast, fast_grad), (plain, plain_grad) = paths(jnp.asarray(rng.normal(size=shape), jnp.float32), kernel)
    np.testing.assert_allclose(fast, plain, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fast_grad, plain_grad, rtol=1e-5, atol=1e-5)
  # Which path the model takes: unrolled for a few features on the CPU, one dot otherwise.
  expected = dense_unrolled if in_features <= SMALL and jax.default_backend() == "cpu" else dense_plain
  x = jnp.asarray(rng.normal(size=(4, in_features)), jnp.float32)
  np.testing.assert_array_equal(dense(x, kernel, bias), expected(x, kernel, bias))
