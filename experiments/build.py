"""From a config to what a run trains: the loaded data, the model, the Trainer."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from flaxzoo.datasets.sources import LoadedData, load_data
from flaxzoo.experiments.config import Config
from flaxzoo.experiments.errors import ConfigError
from flaxzoo.trainers.trainer import Trainer
from flaxzoo.zoo.models import create_model


@dataclasses.dataclass
class Built:
  """A config made concrete: `model` is `{"name", "args"}` for `create_model`, `loss` the resolved loss."""

  data: LoadedData
  trainer: Trainer
  model: dict[str, Any]
  loss: str


def model_and_loss(config: Config, data: LoadedData) -> tuple[str, str]:
  """The config's model and loss, or the task's defaults; a mismatch is a ConfigError."""
  chosen = config.resolved_loss()
  if data.task == "regression":
    loss = chosen or "mse"
    if loss in ("logistic", "softmax"):
      raise ConfigError(f"{config.name}: loss {loss!r} needs class labels, but {data.name} is a regression task")
    log_link = loss.partition(":")[0] in ("poisson", "gamma", "tweedie")
    return config.model or ("glm" if log_link else "linear_regression"), loss
  binary = data.num_classes == 2
  model = config.model or ("logistic_regression" if binary else "softmax_regression")
  loss = chosen or ("logistic" if binary else "softmax")
  if loss not in ("logistic", "softmax"):
    raise ConfigError(f"{config.name}: {data.name} is a classification task; use the logistic or softmax loss")
  if loss == "logistic" and not binary:
    raise ConfigError(f"{config.name}: the logistic loss needs 2 classes, {data.name} has {data.num_classes};"
                      " use softmax")
  return model, loss


def build_data(config: Config, data_dir=None, log: Callable[[str], None] | None = None, *, download: bool = False,
               progress_bar: bool = False) -> LoadedData:
  """The data that `config` trains on, loaded, split and preprocessed."""
  if config.dataset is None:
    raise ConfigError(f"{config.name}: which data? pass --dataset csv:PATH --label COLUMN, or --dataset tfds:NAME")
  task = config.task
  if task is None and (config.resolved_loss() or "logistic") not in ("logistic", "softmax"):
    task = "regression"  # a regression loss says what the labels are (counts look like class labels)
  return load_data(
      config.dataset, features=config.features, label=config.label, task=task,
      test_fraction=config.test_fraction, split_seed=config.split_seed, standardize=config.standardize,
      data_dir=data_dir, download=download, log=log, progress_bar=progress_bar,
  )


def build(config: Config, data_dir=None, log: Callable[[str], None] | None = None, *, download: bool = False,
          progress_bar: bool = False) -> Built:
  """Loads the data and builds the model and the Trainer that `config` describes."""
  data = build_data(config, data_dir, log, download=download, progress_bar=progress_bar)
  model_name, loss = model_and_loss(config, data)
  if config.offset:
    data = _with_offsets(config, data, loss)
  from flaxzoo.trainers.losses import label_error

  problem = label_error(loss, data.splits["train"][1])  # (a log link's domain: counts >= 0, amounts > 0)
  if problem:
    raise ConfigError(f"{config.name}: {data.name}, label {config.label or 'of the dataset'}: {problem}")
  args = {"in_features": data.num_features}
  if data.task == "classification":
    args["num_classes"] = data.num_classes
  try:
    model = create_model(model_name, seed=config.seed, init=config.init, **args)
  except ValueError as e:
    raise ConfigError(f"{config.name}: model {model_name!r}: {e}") from None
  if config.shuffle == "rows" and config.parallel == "pmap":
    raise ConfigError(f"{config.name}: --shuffle rows needs --parallel none or mesh (under pmap each device"
                      " holds only its own rows)")
  preprocessing = data.preprocessing
  optimizer = config.make_optimizer()
  l2, l1 = config.penalties()
  if config.solver == "auto":  # exact where a solver applies, else the optimizer (Trainer's auto without one)
    from flaxzoo.trainers import solvers
    from flaxzoo.trainers.statistics import is_affine

    rows = len(data.splits["train"][0])
    full_batch = config.batch_size is None or config.batch_size >= rows
    if solvers.choose("auto", loss, is_affine(model), full_batch, l1=bool(l1), l2=bool(l2)) != "optax":
      optimizer = None
  if l1 and optimizer is not None and config.solver in ("optax", "auto"):  # the optax path's L1: a proximal step
    if config.optimizer == "lbfgs":
      raise ConfigError(f"{config.name}: --penalty {config.penalty} needs a step size for its proximal step: use"
                        " --optimizer sgd or adam with --lr, or --solver auto (an exact solver)")
    from flaxzoo.trainers.penalties import proximal

    optimizer = proximal(optimizer, config.learning_rate)
  try:
    trainer = Trainer(
        model, optimizer, loss, seed=config.seed, parallel=config.parallel, devices=config.devices,
        task=data.task, label_scale=preprocessing.label_scale, label_unit=preprocessing.label_unit, l2=l2,
        solver=config.solver, l1=l1,
    )
    solver = trainer.chosen_solver(len(data.splits["train"][0]), config.batch_size)  # one that cannot apply: a line
  except ValueError as e:  # the Trainer names its Python arguments; the message is the user's fix
    raise ConfigError(f"{config.name}: {e}") from None
  if config.offset and solver == "optax":
    raise ConfigError(f"{config.name}: --offset is fitted by the exact solvers: pass --solver auto (full batch)")
  return Built(data, trainer, {"name": model_name, "args": args}, loss)


def _with_offsets(config: Config, data: LoadedData, loss: str) -> LoadedData:
  """`data` with `--offset`'s column for each split (a csv column, finite numbers), for least squares or a
  log-link GLM."""
  import numpy as np

  from flaxzoo.trainers.loss_names import GLM_FAMILIES, split_loss

  if split_loss(loss)[0] not in ("mse",) + GLM_FAMILIES:
    raise ConfigError(f"{config.name}: --offset is for least squares and the log-link GLMs (--family), not {loss!r}")
  if not data.name.startswith("csv:"):
    raise ConfigError(f"{config.name}: --offset names a column of a csv dataset, not of {data.name}")
  if config.offset in data.preprocessing.input_columns:
    raise ConfigError(f"{config.name}: --offset {config.offset} is also an input column: leave it out of --features")
  offsets = {}
  for split in data.splits:
    try:
      values = data.file_column(config.offset, split, numeric=True)
    except ValueError as e:
      raise ConfigError(f"{config.name}: --offset: {e}") from None
    if not np.all(np.isfinite(values)):
      raise ConfigError(f"{config.name}: --offset {config.offset}: a blank or non-finite value in the {split} rows")
    offsets[split] = values.astype(np.float64)
  return dataclasses.replace(data, offsets=offsets)
