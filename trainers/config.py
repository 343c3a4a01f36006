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
    # L-BFGS with optax's zoom line search (the step size is the line search's:
    # learning_rate is not used). Full batch is what it is made for.
    "lbfgs": lambda lr: optax.lbfgs(),
}


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """What `flaxzoo train` runs. Every field can be overridden from the CLI.

  Attributes:
    name: the experiment's name (and default workdir `runs/<name>`).
    dataset: `brain_age`, `csv:PATH` or `tfds:NAME[/CONFIG]` (see
      `flaxzoo.datasets.sources`); None: must be given (`--dataset`).
    features: brain_age: `gm` or `tissue`; csv/tfds: comma-separated columns
      (None: every column but the label).
    label: brain_age: `age` (None) or `age_group`; csv: the label column.
    task: `regression`, `classification`, or None to infer from the label.
    model: a name from `flaxzoo.zoo.list_models()`; None: by task
      (`linear_regression`, `logistic_regression` for 2 classes,
      `softmax_regression` for more).
    init: `default` or `reference` (the brain-age reference initialisation).
    loss: `mse`, `logistic` or `softmax`; None: by task, as the model.
    optimizer: `sgd`, `momentum`, `adam` or `lbfgs`.
    learning_rate: the optimizer's step size, > 0 (lbfgs: unused).
    l2: weight of the L2 penalty `l2 / 2 * sum(kernel ** 2)`, >= 0.
    standardize: standardise features with the train split's mean and std.
    test_fraction: held-out share for datasets without a test split.
    split_seed: seed of that split.
    steps: optimizer steps, > 0.
    batch_size: None for full-batch gradient descent, else the mini-batch size.
    seed: seeds the initialisation and the batch order (the brain_age split
      is fixed by the dataset, not by this seed).
    log_every: steps between logged losses.
    shuffle: mini-batch order, `blocks`, `rows` or `none` (see `trainers.batching`).
    parallel: `auto`, `none`, `pmap` or `mesh` (see `trainers.parallel`).
    devices: local devices to use; None for all.
  """

  name: str
  dataset: str | None = "brain_age"
  features: str | None = "gm"
  label: str | None = None
  task: str | None = None
  model: str | None = "linear_regression"
  init: str = "reference"
  loss: str | None = "mse"
  optimizer: str = "sgd"
  learning_rate: float = 0.05
  l2: float = 0.0
  standardize: bool = False
  test_fraction: float = 0.2
  split_seed: int = 0
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
    if isinstance(self.l2, bool) or not isinstance(self.l2, (int, float)) or not self.l2 >= 0:
      raise ConfigError(f"{self.name}: l2 must be a number >= 0, got {self.l2!r}")
    if not isinstance(self.test_fraction, (int, float)) or not 0 < self.test_fraction < 1:
      raise ConfigError(f"{self.name}: test_fraction must be between 0 and 1, got {self.test_fraction!r}")
    if self.task not in (None, "regression", "classification"):
      raise ConfigError(f"{self.name}: unknown task {self.task!r}; known: regression, classification")
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
_GENERIC = dict(dataset=None, features=None, model=None, loss=None, init="default", standardize=True,
                learning_rate=0.1, steps=2000, seed=0, log_every=100)
_EXPERIMENTS = {
    config.name: config
    for config in (
        ExperimentConfig(name="brain_age_gm", features="gm"),
        ExperimentConfig(name="brain_age_tissue", features="tissue"),
        # The least-squares optimum of the gm split: plain float32 SGD stalls
        # 1.6e-4 short of it (lr × gradient < half an ulp); Adam gets to 1e-7.
        ExperimentConfig(name="brain_age_gm_lstsq", features="gm", optimizer="adam",
                         learning_rate=1e-3, steps=200_000, log_every=10_000),
        # Age >= 60 from standardised GM/WM/CSF fractions: binary logistic regression.
        ExperimentConfig(name="brain_age_group", features="tissue", label="age_group", model="logistic_regression",
                         loss="logistic", init="default", standardize=True, learning_rate=1.0, steps=5000,
                         log_every=500),
        # Any dataset (--dataset csv:PATH --label COLUMN, or tfds:NAME): the task
        # from the label, or set by the experiment; features standardised.
        ExperimentConfig(name="linear", **_GENERIC),
        ExperimentConfig(name="linear_regression", task="regression", **_GENERIC),
        ExperimentConfig(name="linear_classifier", task="classification", **_GENERIC),
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
