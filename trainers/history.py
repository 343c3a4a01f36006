"""What a fit takes and gives back: the data's forms and checks, its `History`, and `DivergedError`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from flaxzoo.trainers.batching import SHUFFLES

Data = tuple[Any, Any] | Mapping[str, Any]  # (x [n, d], y [n]) or {"x": ..., "y": ..., "weight": ...}


class DivergedError(FloatingPointError):
  """Training reached a non-finite loss or parameters; `step` is the first logged step where it showed,
  and the Trainer's state is the last finite one (`last_finite_step`)."""

  def __init__(self, step: int, last_finite_step: int, advice: str = "try a smaller learning rate"):
    super().__init__(f"training diverged: the loss or the parameters are not finite at step {step} (the last"
                     f" finite state is step {last_finite_step}); {advice}")
    self.step, self.last_finite_step = step, last_finite_step


@dataclasses.dataclass
class History:
  """What `fit` logged: loss every `log_every` steps and final metrics."""

  steps: list[int] = dataclasses.field(default_factory=list)
  losses: list[float] = dataclasses.field(default_factory=list)
  metrics: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
  train_seconds: float = 0.0
  stopped: bool = False  # `should_stop` ended the run early (no final metrics then)
  converged: bool | None = None  # an exact solver's verdict (None: optax steps)
  iterations: int | None = None  # an exact solver's iterations


def _as_numpy(data: Data, name: str) -> dict[str, np.ndarray]:
  if isinstance(data, Mapping):
    arrays = dict(data)
  else:
    x, y = data
    arrays = {"x": x, "y": y}
  arrays = {key: np.asarray(value) for key, value in arrays.items()}
  x = arrays["x"]
  if x.ndim != 2:
    raise ValueError(f"{name}: x must be [examples, features], got shape {x.shape}")
  for key, value in arrays.items():
    if len(value) != len(x):
      raise ValueError(f"{name}: {key} has {len(value)} rows but x has {len(x)}")
  if len(x) == 0:
    raise ValueError(f"{name}: no examples")
  return arrays


def check_fit_arguments(steps, log_every, batch_size, shuffle, shuffles=SHUFFLES) -> None:
  """ValueError naming the argument unless `fit`'s numbers are positive integers and `shuffle` is known."""
  for name, value in (("steps", steps), ("log_every", log_every), ("batch_size", batch_size)):
    if (value is not None or name != "batch_size") and (
        isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0):
      raise ValueError(f"{name} must be a positive integer, got {value!r}")
  if shuffle not in shuffles:
    raise ValueError(f"unknown shuffle {shuffle!r}; known: {', '.join(shuffles)}")


@dataclasses.dataclass
class SweepHistory:
  """What `Sweep.fit` logged: `losses[i]` is every model's loss `[K]` at `steps[i]`."""

  steps: list[int] = dataclasses.field(default_factory=list)
  losses: list[list[float]] = dataclasses.field(default_factory=list)
  train_seconds: float = 0.0
  stopped: bool = False
  path: str = ""  # "statistics", "full batch", "mini-batch" or an exact solver's name
  converged: np.ndarray | None = None  # `[K]`, an exact solver's verdict
