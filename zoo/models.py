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
  affine: bool = False  # its outputs are affine in its inputs (`affine_map()`): the exact solvers fit it

  def build(self, **kwargs):
    constructor = self.constructor
    if isinstance(constructor, str):
      import importlib

      module, _, attribute = constructor.partition(":")
      constructor = getattr(importlib.import_module(module), attribute)
    return constructor(**kwargs)


_MODELS: Registry[ModelSpec] = Registry("model")


def register_model(name: str, constructor, description: str = "", *, affine: bool = False, **defaults) -> ModelSpec:
  """Registers `constructor` (a class, or `"package.module:Class"`) under `name`; a name can be registered once.
  `affine`: the model is affine in its inputs (known without building it: `flaxzoo list` names its solver)."""
  return _MODELS.register(name, ModelSpec(name, constructor, dict(defaults), description, affine))


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
  spec, arguments = _arguments(name, init, overrides)
  initializer = INITIALIZERS.get(init)
  import numpy as np
  from flax import nnx

  graphdef, init = _initializer(spec, _frozen(arguments))
  # The seed is an argument of one compiled program per architecture: a new model (a fit, a fold, a
  # sweep of 200) compiles nothing (an eager init compiles each random op: 0.33 s for an nnx.Linear).
  model = nnx.merge(graphdef, init(np.uint32(seed)))
  if initializer is not None:
    initializer(model, seed)
  return model


@dataclasses.dataclass(frozen=True)
class StackedModels:
  """K models of one architecture as one state: `params` (an `nnx.State`) with a leading model axis `[K, ...]`,
  and the other variables `rest` of the first (what `Sweep` trains). `model(k)` is model `k` on its own."""

  graphdef: Any
  params: Any
  rest: Any
  count: int

  def model(self, k: int = 0):
    import jax
    from flax import nnx

    return nnx.merge(self.graphdef, jax.tree.map(lambda v: v[k], self.params), self.rest)


def create_models(name: str, seeds, *, init: str = "default", **overrides) -> StackedModels:
  """`create_model(name, seed=s, init=init, **overrides)` for every `s` of `seeds`, stacked: with the default
  init, one program initialises them all (a sweep of 5000 models: one call, not 5000), the same numbers
  as one by one."""
  import numpy as np

  seeds = np.asarray(seeds, np.int64).reshape(-1)
  if init != "default" or len(seeds) == 0:
    return stack_models([create_model(name, seed=int(s), init=init, **overrides) for s in seeds])
  import jax
  from flax import nnx

  spec, arguments = _arguments(name, init, overrides)
  key = (spec.name, spec.constructor if isinstance(spec.constructor, str) else id(spec.constructor),
         _frozen(arguments))
  graphdef, one = _initializer(spec, key[2])
  if key not in _STACKED_INITIALIZERS:
    _STACKED_INITIALIZERS[key] = jax.jit(jax.vmap(one))
  state = _STACKED_INITIALIZERS[key](seeds.astype(np.uint32))
  first = nnx.merge(graphdef, jax.tree.map(lambda v: v[0], state))
  graphdef, _, rest = nnx.split(first, nnx.Param, ...)
  return StackedModels(graphdef, nnx.filter_state(state, nnx.Param), rest, len(seeds))


def stack_models(models) -> StackedModels:
  """Models of one architecture (the same class and shapes) as `StackedModels`; ValueError otherwise."""
  import jax
  import numpy as np
  from flax import nnx

  models = list(models)
  if not models:
    raise ValueError("a sweep needs at least one model")
  split = [nnx.split(m, nnx.Param, ...) for m in models]
  graphdef, _, rest = split[0]
  if any(g != graphdef for g, _, _ in split):
    raise ValueError("the models of a sweep must have one architecture (the same class and shapes)")
  params = jax.tree.map(lambda *leaves: np.stack([np.asarray(v) for v in leaves]), *[p for _, p, _ in split])
  return StackedModels(graphdef, params, rest, len(models))


_STACKED_INITIALIZERS: dict[Any, Any] = {}


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


def _arguments(name: str, init: str, overrides: dict[str, Any]):
  """`(spec, constructor arguments)`; UnknownNameError or ValueError as `create_model` says."""
  spec = get_model_spec(name)
  INITIALIZERS.get(init)
  unknown = set(overrides) - set(spec.defaults)
  if unknown:
    raise ValueError(
        f"model {name!r} takes no argument {sorted(unknown)[0]!r}; it takes:"
        f" {', '.join(spec.defaults)}"
    )
  return spec, {**spec.defaults, **overrides}


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
    in_features=1, out_features=1, affine=True,
)
register_model(
    "logistic_regression", "flaxzoo.zoo.logistic:LinearClassifier",
    "binary logistic regression, one logit",
    in_features=1, num_classes=2, affine=True,
)
register_model(
    "softmax_regression", "flaxzoo.zoo.logistic:LinearClassifier",
    "multinomial (softmax) regression, num_classes logits",
    in_features=1, num_classes=3, affine=True,
)
register_model(
    "glm", "flaxzoo.zoo.glm:GeneralizedLinear",
    "generalized linear model, log link: log means [batch, out] (losses poisson, gamma, tweedie:P)",
    in_features=1, out_features=1, affine=True,
)
