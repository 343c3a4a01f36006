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

from flaxzoo.datasets.sources import LoadedData, load_data
from flaxzoo.trainers.checkpointing import CheckpointError, Checkpointer, abstract_like, parse_keep_best
from flaxzoo.trainers.config import ConfigError, ExperimentConfig
from flaxzoo.trainers.metric_log import MetricLog, read_metrics
from flaxzoo.trainers.progress import Progress, track
from flaxzoo.trainers.trainer import History, Trainer
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


# Fields a resumed run may change: how long and where it runs, not what it learns.
RESUMABLE_CHANGES = ("steps", "parallel", "devices", "log_every")


class Interrupted(Exception):
  """Training stopped on request (SIGTERM/SIGINT) after saving a checkpoint."""

  def __init__(self, step: int, path: pathlib.Path):
    super().__init__(f"interrupted at step {step}; checkpoint saved to {path}; rerun the same command to resume")
    self.step, self.path = step, path


def _config_differences(saved: dict[str, Any], config: ExperimentConfig) -> list[str]:
  current = config.to_dict()
  keys = sorted(set(saved) | set(current))
  return [f"{k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}"
          for k in keys if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k)]


def default_save_every(config: ExperimentConfig) -> int:
  """About 5 checkpoints a run, at multiples of log_every."""
  blocks = -(-config.steps // (5 * config.log_every))
  return max(1, blocks) * config.log_every


def _dataset_record(config: ExperimentConfig) -> dict[str, Any]:
  """Which data a run used: name and content hash where there is a file."""
  import hashlib

  if config.dataset == "brain_age":
    from flaxzoo.datasets.brain_age import brain_age_dataset_builder as builder_module

    return {"name": config.dataset, "sha256": builder_module.RAW_SHA256}
  if config.dataset and config.dataset.startswith("csv:"):
    path = pathlib.Path(config.dataset[4:])
    return {"name": config.dataset, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
  return {"name": config.dataset}


def _model_and_loss(config: ExperimentConfig, data: LoadedData) -> tuple[str, str]:
  """The config's model and loss, or the task's defaults; a mismatch is a ConfigError."""
  if data.task == "regression":
    model, loss = config.model or "linear_regression", config.loss or "mse"
    if loss != "mse":
      raise ConfigError(f"{config.name}: loss {loss!r} needs class labels, but {data.name} is a regression task")
    return model, loss
  binary = data.num_classes == 2
  model = config.model or ("logistic_regression" if binary else "softmax_regression")
  loss = config.loss or ("logistic" if binary else "softmax")
  if loss == "mse":
    raise ConfigError(f"{config.name}: {data.name} is a classification task; use the logistic or softmax loss")
  if loss == "logistic" and not binary:
    raise ConfigError(f"{config.name}: the logistic loss needs 2 classes, {data.name} has {data.num_classes};"
                      " use softmax")
  return model, loss


def _build(config: ExperimentConfig, data_dir, log, download: bool = False):
  """The loaded data, a Trainer for `config` and the model's `{"name", "args"}`."""
  if config.dataset is None:
    raise ConfigError(f"{config.name}: which data? pass --dataset csv:PATH --label COLUMN, or --dataset tfds:NAME")
  data = load_data(
      config.dataset, features=config.features, label=config.label, task=config.task,
      test_fraction=config.test_fraction, split_seed=config.split_seed, standardize=config.standardize,
      data_dir=data_dir, download=download, log=log,
  )
  model_name, loss = _model_and_loss(config, data)
  args = {"in_features": data.num_features}
  if data.task == "classification":
    args["num_classes"] = data.num_classes
  try:
    model = create_model(model_name, seed=config.seed, init=config.init, **args)
  except ValueError as e:
    raise ConfigError(f"{config.name}: model {model_name!r}: {e}") from None
  preprocessing = data.preprocessing
  trainer = Trainer(
      model,
      config.make_optimizer(),
      loss,
      seed=config.seed,
      parallel=config.parallel,
      devices=config.devices,
      task=data.task,
      label_scale=preprocessing.label_scale,
      label_unit=preprocessing.label_unit,
      l2=config.l2,
  )
  if config.shuffle == "rows" and trainer.placement.mode == "pmap":
    raise ConfigError(f"{config.name}: --shuffle rows needs --parallel none or mesh (under pmap each device"
                      " holds only its own rows)")
  return data, trainer, {"name": model_name, "args": args}


def _restore_target(trainer: Trainer):
  """The abstract state to restore into: the restoring run's devices, not the saver's."""
  from jax.sharding import NamedSharding, PartitionSpec, SingleDeviceSharding

  placement = trainer.placement
  if placement.mode == "mesh":
    sharding = NamedSharding(placement.mesh, PartitionSpec())
  else:
    sharding = SingleDeviceSharding(placement.devices[0])
  return abstract_like(trainer.state, sharding)


def _move_aside(directory: pathlib.Path) -> pathlib.Path:
  target = directory.with_name(f"{directory.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
  n = 1
  while target.exists():
    target = directory.with_name(f"{directory.name}.old-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
    n += 1
  directory.rename(target)
  return target


def run_experiment(
    config: ExperimentConfig,
    workdir=None,
    data_dir=None,
    log: Callable[[str], None] | None = None,
    *,
    checkpoint: bool = True,
    save_every: int | None = None,
    keep: int | None = 3,
    keep_best: str | None = None,
    async_save: bool = True,
    restart: bool = False,
    fallback: bool = False,
    should_stop: Callable[[], bool] | None = None,
    download: bool = False,
    progress: str = "off",
    tensorboard: bool = True,
    plots: bool = False,
) -> dict[str, Any]:
  """Trains `config` and writes `<workdir>/results.json` (default `runs/<name>`).

  With `checkpoint` (the default), the training state is saved to
  `<workdir>/checkpoints/` every `save_every` steps and at the end, and a
  workdir that has checkpoints resumes from the latest complete one (same
  config except `RESUMABLE_CHANGES`); `restart` moves them aside first.

  Returns:
    The results: `{"experiment", "step", "train": {...}, "test": {...}, ...}`
    with metrics of the final parameters.

  Every `log_every` steps the train and test metrics go to
  `<workdir>/metrics.jsonl` and TensorBoard events in `<workdir>/tb/` (see
  `metric_log`); `progress` is `bar`, `lines` or `off` (see `progress`);
  `plots` writes the PNGs of `plots.plot_run` to `<workdir>/plots/` at the end.

  Raises:
    Interrupted: `should_stop()` became true; a checkpoint was saved first.
  """
  import jax

  start = time.perf_counter()
  writer = jax.process_index() == 0  # With several processes only process 0 writes.
  log = (log if writer else None) or (lambda message: None)
  workdir = pathlib.Path(workdir or pathlib.Path("runs") / config.name)
  if writer:
    prepare_workdir(workdir)
  if save_every is not None and save_every <= 0:
    raise ConfigError(f"save_every must be a positive integer, got {save_every}")
  data, trainer, _ = _build(config, data_dir, log, download)
  preprocessing, splits = data.preprocessing, data.splits
  dataset_record = _dataset_record(config)  # hashes a CSV once, not at every save

  def meta_of(metrics):
    return {
        "experiment": config.name,
        "step": trainer.step,
        "config": config.to_dict(),
        "metrics": metrics,
        "preprocessing": preprocessing.to_dict(),
        "dataset": dataset_record,
        "task": data.task,
        "classes": data.class_names,
        "keep_best": keep_best,
        "versions": library_versions(),
    }

  checkpointer = None
  if checkpoint and keep_best:  # a misspelt metric fails now, not at the first save
    name = parse_keep_best(keep_best)[0]
    known = [f"{split}/{key}" for split in ("train", "test") for key in trainer.evaluate(splits["test"])]
    if name not in known:
      raise ConfigError(f"--keep-best {name}: no such metric; known: {', '.join(known)}")
  if checkpoint:
    directory = workdir / "checkpoints"
    if restart and directory.exists() and writer:
      log(f"--restart: moved the earlier checkpoints to {_move_aside(directory)}")
    checkpointer = Checkpointer(directory, keep=keep, keep_best=keep_best, async_save=async_save)
    latest = checkpointer.latest_step()
    if latest is not None:
      step, (state, meta) = checkpointer.restore_with_fallback(latest, _restore_target(trainer), fallback, log)
      broken = [s for s in checkpointer.steps() if s > step]
      if broken and writer:
        # Training goes on from `step` and will save these steps again: keep the
        # broken ones for inspection, out of Orbax's way, never deleted.
        aside = directory.with_name(f"checkpoints.broken-{time.strftime('%Y%m%d-%H%M%S')}")
        aside.mkdir(exist_ok=True)
        for s in broken:
          (directory / str(s)).rename(aside / str(s))
        log(f"warning: moved the unusable checkpoint steps {broken} to {aside}")
        checkpointer.close()
        checkpointer = Checkpointer(directory, keep=keep, keep_best=keep_best, async_save=async_save)
      differences = _config_differences(meta["config"], config)
      if differences:
        raise ConfigError(
            f"{workdir} holds a run of another config (step {step}); pass --restart to start over,"
            f" or another --workdir. Differences: {'; '.join(differences)}"
        )
      trainer.state = state
      log(f"resuming from step {step} ({checkpointer.directory / str(step)})")

  log(
      f"{config.name}: {config.steps} steps of {config.optimizer}(lr={config.learning_rate:g}),"
      f" {'full batch' if config.batch_size is None else f'batch {config.batch_size}'},"
      f" {len(splits['train'][0])} train / {len(splits['test'][0])} test examples,"
      f" on {trainer.placement.describe()}"
  )

  evaluated: dict[str, Any] = {}

  def evaluate_splits(t: Trainer) -> dict[str, dict[str, Any]]:
    """Train and test metrics at the current step, computed once per step."""
    if evaluated.get("step") != t.step:
      evaluated.update(step=t.step, metrics={"train": t.evaluate(splits["train"]), "test": t.evaluate(splits["test"])})
    return evaluated["metrics"]

  def save(t: Trainer) -> None:
    metrics = evaluate_splits(t)
    checkpointer.save(t.step, t.state, meta_of(metrics), metrics)

  # Every process evaluates (the computation spans all devices); process 0 writes.
  metric_log = MetricLog(workdir, trainer.step, tensorboard) if writer else None
  learning_rate = None if config.optimizer == "lbfgs" else config.learning_rate

  def log_metrics(t: Trainer, history: History) -> None:
    metrics = evaluate_splits(t)
    loss = history.losses[-1] if history.steps and history.steps[-1] == t.step else None
    if metric_log:
      metric_log.write({"step": t.step, "learning_rate": learning_rate, "loss": loss, **metrics})

  bar = Progress(config.steps, trainer.step, progress if writer else "off", config.name)
  remaining = config.steps - trainer.step
  try:
    if remaining > 0:
      history = trainer.fit(
          splits["train"],
          steps=remaining,
          batch_size=config.batch_size,
          shuffle=config.shuffle,
          eval_data={"test": splits["test"]},
          log_every=config.log_every,
          checkpoint_every=(save_every or default_save_every(config)) if checkpointer else None,
          on_checkpoint=save if checkpointer else None,
          should_stop=should_stop,
          hooks=[(config.log_every, log_metrics)],
          on_progress=lambda step, h: bar.update(step, h.losses[-1] if h.losses else None),
      )
      bar.close()
      if history.stopped:
        if checkpointer:
          save(trainer)
          checkpointer.close()
          raise Interrupted(trainer.step, checkpointer.directory / str(trainer.step))
        raise Interrupted(trainer.step, workdir)
    else:
      log(f"nothing to train: step {trainer.step} >= --steps {config.steps}; evaluating")
      history = History()
      history.metrics = evaluate_splits(trainer)
  finally:
    bar.close()
    if metric_log:
      metric_log.close()
    if checkpointer:
      checkpointer.close()

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
      "dataset": dataset_record,
      "task": data.task,
      "classes": data.class_names,
      "history": {"step": history.steps, "loss": history.losses},
      "train_seconds": history.train_seconds,
      "wall_seconds": time.perf_counter() - start,
      "versions": library_versions(),
  }
  if writer:
    write_json_atomic(workdir / "results.json", results)
    if plots:
      from flaxzoo.trainers.plots import plot_run

      files = plot_run(read_metrics(workdir), trainer, data, config.name, trainer.step, workdir / "plots")
      log(f"plots: {', '.join(str(f) for f in files)}")
  results["workdir"] = str(workdir)
  return results


def _open_checkpoints(workdir) -> Checkpointer:
  directory = pathlib.Path(workdir) / "checkpoints"
  if not directory.is_dir():
    raise CheckpointError(f"{workdir}: no checkpoints (expected {directory})")
  return Checkpointer(directory, keep=None)


def _choose_step(checkpointer: Checkpointer, step: int | None, best: bool) -> int:
  steps = checkpointer.steps()
  if not steps:
    raise CheckpointError(f"{checkpointer.directory}: no complete checkpoint")
  if step is not None:
    if step not in steps:
      raise CheckpointError(f"checkpoint step {step}: no such step in {checkpointer.directory} (steps: {steps})")
    return step
  if not best:
    return steps[-1]
  meta = checkpointer.restore_meta(steps[-1])
  spec = meta.get("keep_best") or "test/mse"
  name, mode = parse_keep_best(spec)
  split, metric = name.split("/", 1)
  scored = []
  for s in steps:
    try:
      scored.append((checkpointer.restore_meta(s)["metrics"][split][metric], s))
    except (CheckpointError, KeyError):
      continue
  if not scored:
    raise CheckpointError(f"{checkpointer.directory}: no checkpoint records {name}")
  return (min(scored) if mode == "min" else max(scored))[1]


def load_trained(workdir, step: int | None = None, *, best: bool = False, data_dir=None, parallel: str = "none",
                 devices: int | None = None, fallback: bool = False, log=None):
  """A trained run's Trainer from `<workdir>/checkpoints`, and the checkpoint's meta.

  >>> trainer, meta = load_trained("runs/brain_age_gm")
  >>> trainer.model  # an nnx.Module with the trained parameters
  """
  log = log or (lambda message: None)
  checkpointer = _open_checkpoints(workdir)
  try:
    chosen = _choose_step(checkpointer, step, best)
    config_dict = None
    for candidate in [s for s in checkpointer.steps() if s <= chosen][::-1] if fallback else [chosen]:
      try:
        config_dict = checkpointer.restore_meta(candidate)["config"]
        break
      except CheckpointError as e:
        if not fallback:
          raise
        log(f"warning: {e}")
    if config_dict is None:
      raise CheckpointError(f"{checkpointer.directory}: no checkpoint at or before step {chosen} has a readable config")
    try:
      config = ExperimentConfig(**{**config_dict, "parallel": parallel, "devices": devices})
    except TypeError as e:  # a config written by another flaxzoo version
      raise CheckpointError(f"{checkpointer.directory}: the checkpoint's config does not fit this flaxzoo ({e})") from None
    data, trainer, model = _build(config, data_dir, log)
    chosen, (state, meta) = checkpointer.restore_with_fallback(chosen, _restore_target(trainer), fallback, log)
    trainer.state = state
  finally:
    checkpointer.close()
  return trainer, {**meta, "step": chosen, "splits": data.splits, "data": data, "model": model}


def evaluate_checkpoint(workdir, step: int | None = None, *, best: bool = False, split: str = "test",
                        data_dir=None, parallel: str = "auto", devices: int | None = None,
                        fallback: bool = False, log=None) -> dict[str, Any]:
  """Restores a checkpoint onto this run's devices, evaluates it, writes `<workdir>/eval.json`."""
  import jax

  trainer, meta = load_trained(workdir, step, best=best, data_dir=data_dir, parallel=parallel, devices=devices,
                               fallback=fallback, log=log)
  splits = meta["splits"]
  names = ["train", "test"] if split == "all" else [split]
  for name in names:
    if name not in splits:
      raise ConfigError(f"unknown split {name!r}; known: {', '.join(splits)}, all")
  results = {
      "experiment": meta["config"]["name"],
      "step": meta["step"],
      "workdir": str(workdir),
      **{name: trainer.evaluate(splits[name]) for name in track(names, "evaluating")},
      "devices": {"mode": trainer.placement.mode, "count": len(trainer.placement.devices)},
  }
  if jax.process_index() == 0:
    write_json_atomic(pathlib.Path(workdir) / "eval.json", results)
  return results
