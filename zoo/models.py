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
  import jax
  from flax import nnx

  def build():
    return spec.build(**{**spec.defaults, **overrides}, rngs=nnx.Rngs(seed))

  # The initialisers run as one compiled program (eagerly, each random op compiles on its own:
  # 0.33 s for an nnx.Linear); the same values.
  graphdef = nnx.graphdef(nnx.eval_shape(build))
  model = nnx.merge(graphdef, jax.jit(lambda: nnx.state(build()))())
  if initializer is not None:
    initializer(model, seed)
  return model


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
