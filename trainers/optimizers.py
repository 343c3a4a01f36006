"""The optax optimizers by name (`--optimizer`, the estimators' `optimizer=`): `make(learning_rate)`.

Imports no optax until one is made: a config's flags and `--help` stay light.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flaxzoo.zoo.registry import Registry


def _optax():
  import optax  # ~0.5 s: only when a run builds its optimizer, not for flags or --help

  return optax


# `make(learning_rate) -> optax.GradientTransformation`, by name.
OPTIMIZERS: Registry[Callable[[float], Any]] = Registry("optimizer")
OPTIMIZERS.register("sgd", lambda lr: _optax().sgd(lr))
OPTIMIZERS.register("momentum", lambda lr: _optax().sgd(lr, momentum=0.9))
OPTIMIZERS.register("adam", lambda lr: _optax().adam(lr))
# L-BFGS with optax's zoom line search: the step size is the line search's,
# learning_rate is not used. Full batch is what it is made for.
OPTIMIZERS.register("lbfgs", lambda lr: _optax().lbfgs())
