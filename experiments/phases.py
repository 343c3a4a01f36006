"""Where a run's wall time goes, phase by phase (`flaxzoo train --verbose` prints it)."""

from __future__ import annotations

import contextlib
import time

# When the CLI module was imported: the start of a command, near enough (Python itself takes ~20 ms).
START = time.perf_counter()


class Phases:
  """Adds up the seconds spent in named phases: `with phases("data"): ...`."""

  def __init__(self):
    self.seconds: dict[str, float] = {}

  @contextlib.contextmanager
  def __call__(self, name: str):
    start = time.perf_counter()
    try:
      yield
    finally:
      self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

  def summary(self) -> str:
    """`phases: imports 0.81 s, data 0.12 s, …, total 1.64 s` (total since the command started)."""
    total = time.perf_counter() - START
    parts = [f"{name} {seconds:.2f} s" for name, seconds in self.seconds.items()]
    return f"phases: {', '.join(parts)}; total {total:.2f} s since start"
