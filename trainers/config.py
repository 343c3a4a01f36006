"""Experiment configs: one frozen dataclass, named instances, typed overrides."""

from __future__ import annotations

import dataclasses
from typing import Any

import optax

from flaxzoo.zoo.registry import UnknownNameError


class ConfigError(ValueError):
  """A config field has an invalid value; the message names the field."""


OPTIMIZERS = {
    "sgd": lambda lr: optax.sgd(lr),
    "momentum": lambda lr: optax.sgd(lr, momentum=0.9),
    "adam": lambda lr: optax.adam(lr),
}


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """What `flaxzoo train` runs. Every field can be overridden from the CLI.

  Attributes:
    name: the experiment's name (and default workdir `runs/<name>`).
    dataset: a TFDS dataset of `flaxzoo.datasets`.
    features: the preprocessing's feature set (`gm` or `tissue`).
    model: a name from `flaxzoo.zoo.list_models()`.
    init: `default` or `reference` (the brain-age reference initialisation).
    loss: `mse`, `logistic` or `softmax`.
    optimizer: `sgd`, `momentum` or `adam`.
    learning_rate: the optimizer's step size, > 0.
    steps: optimizer steps, > 0.
    batch_size: None for full-batch gradient descent, else the mini-batch size.
    seed: seeds the initialisation and the batch order (the dataset split is
      fixed by the dataset, not by this seed).
    log_every: steps between logged losses.
    shuffle: mini-batch order, `blocks` or `none` (see `trainers.batching`).
    parallel: `auto`, `none`, `pmap` or `mesh` (see `trainers.parallel`).
    devices: local devices to use; None for all.
  """

  name: str
  dataset: str = "brain_age"
  features: str = "gm"
  model: str = "linear_regression"
  init: str = "reference"
  loss: str = "mse"
  optimizer: str = "sgd"
  learning_rate: float = 0.05
  steps: int = 15000
  batch_size: int | None = None
  seed: int = 13
  log_every: int = 1000
  shuffle: str = "blocks"
  parallel: str = "auto"
  devices: int | None = None

  def __post_init__(self):
    def positive(field, value, kind):
      if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        raise ConfigError(f"{self.name}: {field} must be a positive number, got {value!r}")

    positive("steps", self.steps, int)
    positive("log_every", self.log_every, int)
    positive("learning_rate", self.learning_rate, (int, float))
    if self.batch_size is not None:
      positive("batch_size", self.batch_size, int)
    if self.devices is not None:
      positive("devices", self.devices, int)
    if self.optimizer not in OPTIMIZERS:
      raise ConfigError(
          f"{self.name}: unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS)}"
      )

  def replace(self, **overrides: Any) -> "ExperimentConfig":
    """A copy with the given fields changed; `None` values are ignored."""
    return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

  def make_optimizer(self) -> optax.GradientTransformation:
    return OPTIMIZERS[self.optimizer](self.learning_rate)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


# The brain-age reference: 15000 full-batch gradient-descent steps, lr 0.05, MSE, seed 13.
_EXPERIMENTS = {
    config.name: config
    for config in (
        ExperimentConfig(name="brain_age_gm", features="gm"),
        ExperimentConfig(name="brain_age_tissue", features="tissue"),
        # The least-squares optimum of the gm split: plain float32 SGD stalls
        # 1.6e-4 short of it (lr × gradient < half an ulp); Adam gets to 1e-7.
        ExperimentConfig(name="brain_age_gm_lstsq", features="gm", optimizer="adam",
                         learning_rate=1e-3, steps=200_000, log_every=10_000),
    )
}


def list_experiments() -> list[str]:
  return sorted(_EXPERIMENTS)


def get_experiment(name: str) -> ExperimentConfig:
  """The named experiment's config; an unknown name lists the known ones."""
  if name not in _EXPERIMENTS:
    raise UnknownNameError(
        f"unknown experiment {name!r}; known: {', '.join(list_experiments())}"
    )
  return _EXPERIMENTS[name]
