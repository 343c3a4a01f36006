"""One small registry for every kind of name: `Registry`.

A dict filled by `register` that refuses a name twice and whose failed lookup
lists the valid names. Every layer keeps its own names in one (models, inits,
datasets, preprocessings, losses, optimizers, experiments).
"""

from __future__ import annotations

import fnmatch
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(ValueError):
  """A name is not registered; the message lists the known names."""


class _Lazy:
  def __init__(self, target: str):
    self.target = target

  def load(self):
    import importlib

    module, _, attribute = self.target.partition(":")
    return getattr(importlib.import_module(module), attribute)


class Registry(Generic[T]):
  """`{name: value}` filled once per name. `kind` names the things in messages ("model")."""

  def __init__(self, kind: str):
    self.kind = kind
    self._entries: dict[str, T] = {}

  def register(self, name: str, value: T) -> T:
    if name in self._entries:
      raise ValueError(f"{self.kind} {name!r} is already registered")
    self._entries[name] = value
    return value

  def register_lazy(self, name: str, target: str) -> None:
    """Registers `"package.module:attribute"`, imported on the first `get(name)`: listing
    names then imports nothing heavy."""
    self.register(name, _Lazy(target))

  def get(self, name: str) -> T:
    if name not in self._entries:
      raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
    value = self._entries[name]
    if isinstance(value, _Lazy):
      value = self._entries[name] = value.load()
    return value

  def names(self, pattern: str | None = None) -> list[str]:
    """Registered names, sorted, optionally filtered by a glob `pattern`."""
    return [n for n in sorted(self._entries) if pattern is None or fnmatch.fnmatch(n, pattern)]

  def __contains__(self, name: object) -> bool:
    return name in self._entries
