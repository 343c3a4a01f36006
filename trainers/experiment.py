"""Running a named experiment end to end: data, model, training, results.json."""

from __future__ import annotations

import json
import os
import pathlib
import sys
import tempfile
import time
from typing import Any, Callable

import numpy as np
from flax import nnx

from flaxzoo.datasets import TissueFractions, load_split
from flaxzoo.trainers.config import ConfigError, ExperimentConfig
from flaxzoo.trainers.trainer import Trainer
from flaxzoo.zoo import create_model


def library_versions() -> dict[str, str]:
  from importlib import metadata

  names = ["flaxzoo", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "tensorflow-datasets", "numpy"]
  versions = {"python": sys.version.split()[0]}
  for name in names:
    try:
      versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      versions[name] = "not installed"
  return versions


def prepare_workdir(workdir) -> pathlib.Path:
  """Creates `workdir` and checks that it can be written to, before any work."""
  workdir = pathlib.Path(workdir)
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=workdir, prefix=".flaxzoo-write-test"):
      pass
  except OSError as e:
    raise ConfigError(f"workdir {workdir} is not writable ({e.strerror or e})") from None
  return workdir


def write_json_atomic(path: pathlib.Path, payload: dict[str, Any]) -> None:
  """Writes JSON through a temporary file and a rename: never a half-written file."""
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "w") as f:
      json.dump(payload, f, indent=2)
      f.write("\n")
    os.replace(tmp, path)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise


def _params_as_lists(params) -> dict[str, Any]:
  flat = {}
  for path, leaf in nnx.to_flat_state(params):
    flat["/".join(str(p) for p in path)] = np.asarray(leaf.get_value()).tolist()
  return flat


def run_experiment(
    config: ExperimentConfig,
    workdir=None,
    data_dir=None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
  """Trains `config` and writes `<workdir>/results.json` (default `runs/<name>`).

  Returns:
    The results: `{"experiment", "step", "train": {...}, "test": {...}, ...}`
    with metrics of the final parameters.
  """
  import jax

  start = time.perf_counter()
  writer = jax.process_index() == 0  # With several processes only process 0 writes.
  log = (log if writer else None) or (lambda message: None)
  workdir = pathlib.Path(workdir or pathlib.Path("runs") / config.name)
  if writer:
    prepare_workdir(workdir)
  preprocessing = TissueFractions(features=config.features)
  splits = {s: preprocessing(load_split(config.dataset, s, data_dir, log)) for s in ("train", "test")}
  model = create_model(
      config.model, seed=config.seed, init=config.init, in_features=preprocessing.num_features
  )
  trainer = Trainer(
      model,
      config.make_optimizer(),
      config.loss,
      seed=config.seed,
      parallel=config.parallel,
      devices=config.devices,
      label_scale=preprocessing.label_scale,
      label_unit=preprocessing.label_unit,
  )
  log(
      f"{config.name}: {config.steps} steps of {config.optimizer}(lr={config.learning_rate:g}),"
      f" {'full batch' if config.batch_size is None else f'batch {config.batch_size}'},"
      f" {len(splits['train'][0])} train / {len(splits['test'][0])} test examples,"
      f" on {trainer.placement.describe()}"
  )
  history = trainer.fit(
      splits["train"],
      steps=config.steps,
      batch_size=config.batch_size,
      shuffle=config.shuffle,
      eval_data={"test": splits["test"]},
      log_every=config.log_every,
  )
  from flaxzoo.datasets.brain_age import brain_age_dataset_builder as builder_module

  results = {
      "experiment": config.name,
      "step": trainer.step,
      "train": history.metrics["train"],
      "test": history.metrics["test"],
      "params": _params_as_lists(trainer.params),
      "devices": {"mode": trainer.placement.mode, "count": len(trainer.placement.devices),
                  "processes": jax.process_count(), "platform": trainer.placement.devices[0].platform},
      "config": config.to_dict(),
      "preprocessing": preprocessing.to_dict(),
      "dataset": {"name": config.dataset, "sha256": builder_module.RAW_SHA256},
      "history": {"step": history.steps, "loss": history.losses},
      "train_seconds": history.train_seconds,
      "wall_seconds": time.perf_counter() - start,
      "versions": library_versions(),
  }
  if writer:
    write_json_atomic(workdir / "results.json", results)
  results["workdir"] = str(workdir)
  return results
