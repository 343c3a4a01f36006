"""A run's metrics over time: `<workdir>/metrics.jsonl` and TensorBoard events in `<workdir>/tb/`.

One JSON object per logged step: `step`, `time` (Unix seconds), `elapsed_s`
(since this process started training), `learning_rate`, `loss` (the training
objective at that step) and the `train` and `test` metrics of the parameters
after it. A resumed run keeps the records up to the checkpoint it resumes from
and drops the later ones (the run reaches those steps again, with the same
values), so each logged step appears once, in order. TensorBoard gets the same
scalars; a resumed run marks its restart step, after which TensorBoard hides
the earlier events (as after any restart).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import time
from typing import Any

from flaxzoo.checkpoints.files import dumps
from flaxzoo.experiments.errors import MetricLogError
from flaxzoo.experiments.tensorboard_events import EventFile
from flaxzoo.experiments.workdir import move_aside, write_atomic

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tb"


def read_metrics(path, *, tolerate_torn_end: bool = True) -> list[dict[str, Any]]:
  """The records of a metrics.jsonl. A last line cut short by a kill is ignored."""
  path = pathlib.Path(path)
  if path.is_dir():
    path = path / METRICS_FILE
  try:
    lines = path.read_text().splitlines()
  except FileNotFoundError:
    raise MetricLogError(f"{path}: no such file (metrics are written by `flaxzoo train`)") from None
  records = []
  for number, line in enumerate(lines, start=1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except RecursionError:
      raise MetricLogError(f"{path}, line {number}: nested too deeply to be a metrics record") from None
    except json.JSONDecodeError:
      if tolerate_torn_end and number == len(lines):
        break
      raise MetricLogError(f"{path}, line {number}: not a JSON record") from None
    if not isinstance(record, dict) or not isinstance(record.get("step"), int):
      raise MetricLogError(f"{path}, line {number}: a record needs an integer 'step'")
    if not all(isinstance(record.get(split, {}), dict) for split in ("train", "test")) or not isinstance(
        record.get("loss"), (int, float, type(None))):
      raise MetricLogError(f"{path}, line {number}: 'train'/'test' must be objects and 'loss' a number")
    records.append(record)
  return records


def scalars(record: dict[str, Any]) -> dict[str, float]:
  """The TensorBoard scalars of a record: `loss`, `learning_rate`, `train/mse`, …"""
  out = {}
  for key in ("loss", "learning_rate"):
    if isinstance(record.get(key), (int, float)):
      out[key] = float(record[key])
  for split in ("train", "test"):
    for name, value in (record.get(split) or {}).items():
      if isinstance(value, (int, float)) and name != "count" and math.isfinite(value):
        out[f"{split}/{name}"] = float(value)
  return out


class MetricLog:
  """Appends records to metrics.jsonl (flushed and synced each time) and TensorBoard.

  Args:
    workdir: the run's folder.
    resume_step: the step training starts from; records after it are dropped.
      None or 0: a fresh run, which starts a fresh file (an earlier file is
      moved to `metrics.jsonl.old-<time>`, never deleted).
    tensorboard: also write TensorBoard events (`tensorboard_events`, no TensorFlow).
  """

  def __init__(self, workdir, resume_step: int | None = None, tensorboard: bool = True):
    self.workdir = pathlib.Path(workdir)
    self.path = self.workdir / METRICS_FILE
    resume_step = resume_step or 0
    kept: list[dict[str, Any]] = []
    if resume_step > 0 and self.path.exists():
      kept = [r for r in read_metrics(self.path) if r["step"] <= resume_step]
    elif resume_step == 0:  # a fresh run: an earlier run's logs are kept aside
      for old in (self.path, self.workdir / TENSORBOARD_DIR):
        if old.exists():
          move_aside(old)
    write_atomic(self.path, "".join(dumps(record) + "\n" for record in kept))
    self.last_step = kept[-1]["step"] if kept else None
    self._file = open(self.path, "a")  # noqa: SIM115 - open for the life of the log, closed by close()
    self._tb = None
    if tensorboard:
      # A file of its own per start, and TensorBoard's restart mark on a resume.
      self._tb = EventFile(self.workdir / TENSORBOARD_DIR, f".from{resume_step}.{os.getpid()}",
                           resume_step + 1 if resume_step else None)
    self._t0 = time.perf_counter()

  def write(self, record: dict[str, Any]) -> None:
    """Appends one record (`step` required, increasing); a step already logged is skipped."""
    step = record["step"]
    if self.last_step is not None and step <= self.last_step:
      return
    record = {"step": step, "time": time.time(), "elapsed_s": time.perf_counter() - self._t0,
              **{k: v for k, v in record.items() if k != "step"}}
    try:
      self._file.write(dumps(record) + "\n")
      self._file.flush()
      os.fsync(self._file.fileno())
      if self._tb is not None:
        self._tb.add_scalars(step, scalars(record), record["time"])
    except OSError as e:  # out of space, mostly: name where
      raise OSError(e.errno, f"{e.strerror} while writing the metric log (metrics.jsonl, tb/)",
                    e.filename or str(self.workdir)) from None
    self.last_step = step

  def close(self) -> None:
    self._file.close()
    if self._tb is not None:
      self._tb.close()
      self._tb = None

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
