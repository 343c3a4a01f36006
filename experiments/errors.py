"""The run layer's errors; the CLI prints each as one line (`flaxzoo: error: ...`)."""

from __future__ import annotations

import pathlib


class ConfigError(ValueError):
  """A config field, flag or run option has an invalid value; the message names it."""


class MetricLogError(ValueError):
  """A metrics.jsonl cannot be read; the message names the file and line."""


class Interrupted(Exception):
  """Training stopped on request (SIGTERM/SIGINT) after saving a checkpoint."""

  def __init__(self, step: int, path: pathlib.Path):
    super().__init__(f"interrupted at step {step}; checkpoint saved to {path}; rerun the same command to resume")
    self.step, self.path = step, path
