"""What a run records about itself, built in one place: a checkpoint's meta and `results.json` share it."""

from __future__ import annotations

import dataclasses
from typing import Any

from flaxzoo.checkpoints.card import library_versions
from flaxzoo.checkpoints.files import standard_json


@dataclasses.dataclass
class RunRecord:
  """The facts of a training run that every record of it repeats: its experiment, config, reproducing
  command, model and loss, preprocessing, dataset, task and classes."""

  experiment: str
  config: dict[str, Any]
  command: str
  model: dict[str, Any]
  loss: Any
  preprocessing: dict[str, Any]
  dataset: dict[str, Any]
  task: str
  classes: list[str] | None

  @classmethod
  def of(cls, config, built, command: str) -> RunRecord:
    data = built.data
    return cls(config.name, config.to_dict(), command, built.model, built.loss, data.preprocessing.to_dict(),
               data.record, data.task, data.class_names)

  def meta(self, step: int, metrics, keep_best: str | None, card: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's meta (JSON): what `flaxzoo eval`, `export` and `predict` read back."""
    return standard_json({
        "experiment": self.experiment, "step": step, "config": self.config, "command": self.command,
        "model": self.model, "loss": self.loss, "metrics": metrics, "preprocessing": self.preprocessing,
        "dataset": self.dataset, "task": self.task, "classes": self.classes, "keep_best": keep_best,
        "versions": library_versions(), "card": card,
    })

  def results(self, step: int, history, params, devices, wall_seconds: float) -> dict[str, Any]:
    """`results.json`: the final metrics of train and test (`history.metrics`), the parameters and the run."""
    return {
        "experiment": self.experiment, "step": step, "train": history.metrics["train"],
        "test": history.metrics["test"], "model": self.model, "loss": self.loss, "command": self.command,
        "params": params, "devices": devices, "config": self.config, "preprocessing": self.preprocessing,
        "dataset": self.dataset, "task": self.task, "classes": self.classes,
        "history": {"step": history.steps, "loss": history.losses}, "train_seconds": history.train_seconds,
        "wall_seconds": wall_seconds, "versions": library_versions(),
    }
