"""Every registered model builds and has the documented shapes; reference init."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flaxzoo.zoo import (LinearClassifier, LinearRegression, UnknownNameError, create_model,
                         list_models, register_model)

OUTPUTS = {"linear_regression": 1, "logistic_regression": 1, "softmax_regression": 3}


def test_registry_lists_the_models():
  assert list_models() == sorted(OUTPUTS)
  assert list_models("*_regression") == sorted(OUTPUTS)
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
  with pytest.raises(UnknownNameError, match="unknown model 'resnet'; known: linear_regression, logistic_regression, softmax_regression"):
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
