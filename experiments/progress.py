"""Showing a run move: a tqdm bar on a terminal, plain periodic lines otherwise.

Updated once per compiled call of the fused loop (about every 1000 steps),
never per step.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import TextIO

MODES = ("bar", "lines", "off")

# What the command line asked for, for operations that take no `mode` argument
# (dataset build, evaluation, export). The Python API default: no output.
_mode = "off"


def configure(mode: str) -> None:
  """Sets the progress mode of operations without a `mode` argument (the CLI calls this)."""
  global _mode
  if mode not in MODES:
    raise ValueError(f"unknown progress mode {mode!r}; known: {', '.join(MODES)}")
  _mode = mode


def current_mode() -> str:
  return _mode


def choose_mode(quiet: bool, stream: TextIO | None = None) -> str:
  """`off` when quiet; a bar when both stdout and `stream` (stderr) are terminals; else lines."""
  stream = stream or sys.stderr
  if quiet:
    return "off"
  return "bar" if sys.stdout.isatty() and stream.isatty() else "lines"


class Progress:
  """Progress of training steps `start..total`.

  Args:
    total: the last step.
    start: the step the run starts (or resumes) from.
    mode: `bar` (tqdm: step/total, loss, steps/s), `lines` (one line at every
      10% or 30 s, no control characters) or `off`.
    desc: the bar's label, e.g. the experiment.
  """

  def __init__(self, total: int, start: int = 0, mode: str = "lines", desc: str = "train",
               stream: TextIO | None = None):
    if mode not in MODES:
      raise ValueError(f"unknown progress mode {mode!r}; known: {', '.join(MODES)}")
    self.total, self.start, self.mode, self.desc = total, start, mode, desc
    self.stream = stream or sys.stderr
    self._bar = None
    self._t0 = time.perf_counter()
    self._last_line = (start, self._t0)
    if mode == "bar":
      import shutil

      from tqdm.auto import tqdm

      # A terminal that reports no size (0 x 0) gets 100 x 24: tqdm would hide the bar.
      size = shutil.get_terminal_size((100, 24))
      self._bar = tqdm(total=total, initial=start, desc=desc, unit="steps", file=self.stream,
                       ncols=size.columns or 100, nrows=size.lines or 24, leave=True)

  def update(self, step: int, loss: float | None = None) -> None:
    if self.mode == "off":
      return
    if self._bar is not None:
      self._bar.update(step - self._bar.n)
      if loss is not None:
        self._bar.set_postfix(loss=f"{loss:.6g}", refresh=False)
      return
    last_step, last_time = self._last_line
    now = time.perf_counter()
    if step < self.total and step - last_step < max(1, self.total // 10) and now - last_time < 30:
      return
    rate = (step - self.start) / max(now - self._t0, 1e-9)
    loss_text = "" if loss is None else f", loss {loss:.6g}"
    print(f"{self.desc}: step {step}/{self.total} ({100 * step / self.total:.0f}%){loss_text},"
          f" {rate:,.0f} steps/s", file=self.stream, flush=True)
    self._last_line = (step, now)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None


def track(items: Iterable, desc: str, mode: str | None = None, stream: TextIO | None = None) -> Iterable:
  """`items`, with a bar over them in `bar` mode (default: the configured mode)."""
  if (mode or _mode) != "bar":
    return items
  from tqdm.auto import tqdm

  return tqdm(items, desc=desc, file=stream or sys.stderr, leave=False)
