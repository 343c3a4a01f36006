"""A registry of named models: `create_model(name, **overrides)`."""

from __future__ import annotations

import dataclasses
import fnmatch
from typing import Any, Callable

from flax import nnx

from flaxzoo.zoo.initializers import INITIALIZERS


class UnknownNameError(ValueError):
  """A name is not registered; the message lists the known names."""


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """A named model: its constructor and default constructor arguments."""

  name: str
  constructor: Callable[..., nnx.Module]
  defaults: dict[str, Any]
  description: str


_MODELS: dict[str, ModelSpec] = {}


def register_model(name: str, constructor, description: str = "", **defaults) -> ModelSpec:
  """Registers `constructor` under `name`; a name can be registered once."""
  if name in _MODELS:
    raise ValueError(f"model {name!r} is already registered")
  spec = ModelSpec(name, constructor, dict(defaults), description)
  _MODELS[name] = spec
  return spec


def get_model_spec(name: str) -> ModelSpec:
  if name not in _MODELS:
    raise UnknownNameError(f"unknown model {name!r}; known: {', '.join(sorted(_MODELS))}")
  return _MODELS[name]


def list_models(pattern: str | None = None, pretrained: bool = False) -> list[str]:
  """Registered model names (or, with `pretrained`, the shipped checkpoints), sorted,
  optionally filtered by a glob `pattern`."""
  if pretrained:
    from flaxzoo.zoo.pretrained import list_pretrained

    names = list_pretrained()
  else:
    names = sorted(_MODELS)
  return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def create_model(name: str, *, seed: int = 0, init: str = "default", **overrides) -> nnx.Module:
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
  if init not in INITIALIZERS:
    raise UnknownNameError(f"unknown init {init!r}; known: {', '.join(INITIALIZERS)}")
  unknown = set(overrides) - set(spec.defaults)
  if unknown:
    raise ValueError(
        f"model {name!r} takes no argument {sorted(unknown)[0]!r}; it takes:"
        f" {', '.join(spec.defaults)}"
    )
  model = spec.constructor(**{**spec.defaults, **overrides}, rngs=nnx.Rngs(seed))
  if INITIALIZERS[init] is not None:
    INITIALIZERS[init](model, seed)
  return model
