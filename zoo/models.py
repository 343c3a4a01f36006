"""The model zoo: `create_model(name, **overrides)`, `list_models()`, and the registered models."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from flaxzoo.zoo.initializers import INITIALIZERS
from flaxzoo.zoo.registry import Registry


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """A named model: its constructor and default constructor arguments."""

  name: str
  constructor: Callable[..., Any] | str  # an nnx.Module class, or "package.module:Class" imported when built
  defaults: dict[str, Any]
  description: str

  def build(self, **kwargs):
    constructor = self.constructor
    if isinstance(constructor, str):
      import importlib

      module, _, attribute = constructor.partition(":")
      constructor = getattr(importlib.import_module(module), attribute)
    return constructor(**kwargs)


_MODELS: Registry[ModelSpec] = Registry("model")


def register_model(name: str, constructor, description: str = "", **defaults) -> ModelSpec:
  """Registers `constructor` (a class, or `"package.module:Class"`) under `name`; a name can be registered once."""
  return _MODELS.register(name, ModelSpec(name, constructor, dict(defaults), description))


def get_model_spec(name: str) -> ModelSpec:
  return _MODELS.get(name)


def list_models(pattern: str | None = None) -> list[str]:
  """Registered model names, sorted, optionally filtered by a glob `pattern`.

  The shipped pretrained weights are listed by `flaxzoo.checkpoints.list_pretrained`.
  """
  return _MODELS.names(pattern)


def create_model(name: str, *, seed: int = 0, init: str = "default", **overrides):
  """Builds the model registered as `name`.

  Args:
    name: a name from `list_models()`.
    seed: seeds `nnx.Rngs` (and the reference init).
    init: `"default"` (the module's own initialisers) or `"reference"`
      (`flaxzoo.zoo.initializers.reference_init`).
    **overrides: constructor arguments replacing the registered defaults,
      e.g. `in_features=3`.

  Raises:
    UnknownNameError: for an unknown model or init name, listing the known ones.
    ValueError: for an argument the constructor does not take.
  """
  spec = get_model_spec(name)
  initializer = INITIALIZERS.get(init)
  unknown = set(overrides) - set(spec.defaults)
  if unknown:
    raise ValueError(
        f"model {name!r} takes no argument {sorted(unknown)[0]!r}; it takes:"
        f" {', '.join(spec.defaults)}"
    )
  import numpy as np
  from flax import nnx

  arguments = {**spec.defaults, **overrides}
  graphdef, init = _initializer(spec, _frozen(arguments))
  # The seed is an argument of one compiled program per architecture: a new model (a fit, a fold, a
  # sweep of 200) compiles nothing (an eager init compiles each random op: 0.33 s for an nnx.Linear).
  model = nnx.merge(graphdef, init(np.uint32(seed)))
  if initializer is not None:
    initializer(model, seed)
  return model


def _frozen(arguments: dict[str, Any]):
  """A hashable key of constructor arguments (a value that cannot be hashed: its repr)."""
  def key(value):
    try:
      hash(value)
      return value
    except TypeError:
      return repr(value)

  return tuple(sorted((name, key(value)) for name, value in arguments.items()))


_INITIALIZERS: dict[tuple, Any] = {}


def _initializer(spec: ModelSpec, frozen):
  """`(graphdef, init(seed) -> state)` of `spec` built with these arguments, compiled once and kept."""
  key = (spec.name, spec.constructor if isinstance(spec.constructor, str) else id(spec.constructor), frozen)
  if key not in _INITIALIZERS:
    import jax
    from flax import nnx

    arguments = dict(frozen)
    build = lambda seed: spec.build(**arguments, rngs=nnx.Rngs(jax.random.key(seed)))
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: build(0)))
    _INITIALIZERS[key] = (graphdef, jax.jit(lambda seed: nnx.state(build(seed))))
  return _INITIALIZERS[key]


# By path: listing the models imports no JAX.
register_model(
    "linear_regression", "flaxzoo.zoo.linear:LinearRegression",
    "least-squares linear regression, [batch, d] -> [batch, out]",
    in_features=1, out_features=1,
)
register_model(
    "logistic_regression", "flaxzoo.zoo.logistic:LinearClassifier",
    "binary logistic regression, one logit",
    in_features=1, num_classes=2,
)
register_model(
    "softmax_regression", "flaxzoo.zoo.logistic:LinearClassifier",
    "multinomial (softmax) regression, num_classes logits",
    in_features=1, num_classes=3,
)
