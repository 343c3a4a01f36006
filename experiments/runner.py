"""Running a named experiment end to end: data, model, training with checkpoints and logs, results.json."""

from __future__ import annotations

import pathlib
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from flax import nnx

from flaxzoo.checkpoints.manager import abstract_like, parse_keep_best
from flaxzoo.datasets.preprocessing import Preprocessing
from flaxzoo.experiments.build import build
from flaxzoo.experiments.config import Config, reproducing_command, resumable_fields
from flaxzoo.experiments.errors import ConfigError, Interrupted
from flaxzoo.experiments.metric_log import MetricLog, read_metrics
from flaxzoo.experiments.named import EXPERIMENTS, get_experiment
from flaxzoo.experiments.phases import Phases
from flaxzoo.experiments.progress import Progress
from flaxzoo.experiments.records import RunRecord
from flaxzoo.experiments.session import RunSession
from flaxzoo.experiments.workdir import (
  STATE_DIR,
  WorkdirLock,
  check_same_data,
  claim,
  removed_if_unused,
  set_aside_outputs,
  write_json_atomic,
)
from flaxzoo.trainers.history import History
from flaxzoo.trainers.trainer import Trainer


def command_of(config: Config) -> str:
  """The `flaxzoo train` command line that reproduces `config`'s parameters: its experiment and every
  field that changes training and differs from the experiment's default (a config of an unnamed
  experiment as the generic `linear` with its fields set)."""
  import dataclasses

  if config.name not in EXPERIMENTS:
    config = dataclasses.replace(config, name="linear")
  return reproducing_command(config, get_experiment(config.name))


def params_as_lists(params) -> dict[str, Any]:
  flat = {}
  for path, leaf in nnx.to_flat_state(params):
    flat["/".join(str(p) for p in path)] = np.asarray(leaf.get_value()).tolist()
  return flat


def config_differences(saved: dict[str, Any], config: Config) -> list[str]:
  """Fields a resumed run may not change that differ from the checkpoint's."""
  current, resumable = config.to_dict(), set(resumable_fields())
  keys = sorted(set(saved) | set(current))
  return [f"{k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}"
          for k in keys if k not in resumable and saved.get(k) != current.get(k)]


def start_plot_worker(workdir: pathlib.Path) -> None:
  """`python -m flaxzoo.experiments.plot_worker WORKDIR`, detached (its own session, no terminal
  streams): the run does not wait for it."""
  import os

  quiet = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
  os.posix_spawn(sys.executable, [sys.executable, "-m", "flaxzoo.experiments.plot_worker", str(workdir)],
                 os.environ, file_actions=quiet, setsid=True)


def _close_all(closables) -> None:
  """Closes each; a failure to close raises only when nothing else is being raised already."""
  failures = []
  for closable in closables:
    if closable is not None:
      try:
        closable.close()
      except Exception as e:  # noqa: BLE001 - the first error is the one to report
        failures.append(e)
  if failures and sys.exc_info()[0] is None:
    raise failures[0]


def restore_target(trainer: Trainer):
  """The abstract state to restore into: the restoring run's devices, not the saver's."""
  from jax.sharding import NamedSharding, PartitionSpec, SingleDeviceSharding

  placement = trainer.placement
  if placement.mode == "mesh":
    sharding = NamedSharding(placement.mesh, PartitionSpec())
  else:
    sharding = SingleDeviceSharding(placement.devices[0])
  return abstract_like(trainer.state, sharding)


def run_experiment(config: Config, workdir=None, data_dir=None, log: Callable[[str], None] | None = None,
                   **options) -> dict[str, Any]:
  """Trains `config` and writes `<workdir>/results.json` (default `runs/<name>`); see `train_in`.

  The workdir is claimed (a new or empty folder, or one flaxzoo made) and locked
  for the run's whole life (`flaxzoo.experiments.workdir`); with several
  processes, process 0 does both.
  """
  import jax

  workdir = pathlib.Path(workdir or pathlib.Path("runs") / config.name)
  if jax.process_index() != 0:
    return train_in(config, workdir, data_dir, log, **options)
  with removed_if_unused(workdir):
    claim(workdir)
    with WorkdirLock(workdir):
      return train_in(config, workdir, data_dir, log, **options)


def train_in(
    config: Config,
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
    phases: Phases | None = None,
) -> dict[str, Any]:
  """Trains `config` in `workdir` (claimed and locked by `run_experiment`), writes `results.json`.

  With `checkpoint` (the default), the training state is saved to
  `<workdir>/checkpoints/` every `save_every` steps and at the end, and a
  workdir that has checkpoints resumes from the latest complete one (same
  config except the resumable fields); `restart` moves them aside first.
  Every `log_every` steps the train and test metrics go to
  `<workdir>/metrics.jsonl` and TensorBoard events in `<workdir>/tb/`;
  `progress` is `bar`, `lines` or `off`; `plots` writes the PNGs of
  `plots.draw` to `<workdir>/plots/` at the end (`"background"`: by a process
  of their own that the run does not wait for).

  Returns:
    The results: `{"experiment", "step", "train": {...}, "test": {...}, "model",
    "loss", "command", ...}` with metrics of the final parameters.

  Raises:
    Interrupted: `should_stop()` became true; a checkpoint was saved first.
  """
  import jax

  start = time.perf_counter()
  writer = jax.process_index() == 0  # With several processes only process 0 writes.
  log = (log if writer else None) or (lambda message: None)
  workdir = pathlib.Path(workdir)
  if save_every is not None and save_every <= 0:
    raise ConfigError(f"save_every must be a positive integer, got {save_every}")
  phases = phases or Phases()
  with phases("data and model"):
    built = build(config, data_dir, log, download=download, progress_bar=progress == "bar" and writer)
  run = _Run(config, built, workdir, log, writer, phases, keep_best)
  session, resumed = None, False
  if checkpoint:
    session, resumed = _open_session(run, keep, async_save, restart, fallback)
  if writer and not resumed:
    set_aside_outputs(workdir, log)  # a new run: an earlier run's outputs are kept, not overwritten
  _announce(config, built, log)
  history = _fit(run, session, save_every, should_stop, progress, tensorboard)
  trainer = built.trainer
  devices = {"mode": trainer.placement.mode, "count": len(trainer.placement.devices),
             "processes": jax.process_count(), "platform": trainer.placement.devices[0].platform}
  results = run.record.results(trainer.step, history, params_as_lists(trainer.params), devices,
                               time.perf_counter() - start)
  with phases("coefficients"):
    coefficients = _coefficients(run, config)
  if coefficients:
    results["coefficients"] = coefficients
  if writer:
    write_json_atomic(workdir / "results.json", results)
    if plots:
      with phases("plots"):
        _plots(run, plots)
  results["workdir"] = str(workdir)
  return results


class _Run:
  """One training run's parts: its config, data and trainer, what it records (`RunRecord`, the card's
  entries), and the train and test metrics of a step, computed once."""

  def __init__(self, config: Config, built, workdir: pathlib.Path, log, writer: bool, phases: Phases,
               keep_best: str | None):
    self.config, self.built, self.data, self.trainer = config, built, built.data, built.trainer
    self.workdir, self.log, self.writer, self.phases, self.keep_best = workdir, log, writer, phases, keep_best
    self.splits = {split: self.data.split_data(split) for split in self.data.splits}  # (with `--offset`'s column)
    self.record = RunRecord.of(config, built, command_of(config))
    # What predicting needs beyond the parameters, recorded with each checkpoint so that `predict` on the
    # workdir never reopens the training data: the inputs' range, and a fit report (brain age's bias correction).
    x_train = np.asarray(self.data.splits["train"][0], np.float64).reshape(len(self.data.splits["train"][0]), -1)
    self.input_range = {"min": x_train.min(axis=0).tolist(), "max": x_train.max(axis=0).tolist(),
                        "note": "per model input (after preprocessing), over the training split"}
    self.reports = (self.data.task == "regression"
                    and type(self.data.preprocessing).fit_report is not Preprocessing.fit_report)
    self.evaluated: dict[str, Any] = {}

  def card_entries(self, t: Trainer) -> dict[str, Any]:
    entries = {"input_range": self.input_range}
    if t.link != "identity":  # the outputs are log means: `predict` on the workdir shows exp(outputs)
      entries["link"] = t.link
    if self.config.offset:  # `predict` adds the table's own column
      entries["offset"] = {"column": self.config.offset}
    if self.reports:
      predicted = self.data.preprocessing.postprocess(t.predict_means(self.data.splits["train"][0]))[:, 0]
      entries.update(self.data.preprocessing.fit_report(predicted, self.data.raw["train"]))
    return entries

  def meta(self, metrics) -> dict[str, Any]:
    return self.record.meta(self.trainer.step, metrics, self.keep_best, self.card_entries(self.trainer))

  def evaluate_splits(self, t: Trainer) -> dict[str, dict[str, Any]]:
    """Train and test metrics at the current step, computed once per step."""
    if self.evaluated.get("step") != t.step:
      with self.phases("evaluate"):
        self.evaluated.update(step=t.step, metrics={"train": t.evaluate(self.splits["train"]),
                                                    "test": t.evaluate(self.splits["test"])})
    return self.evaluated["metrics"]


def _open_session(run: _Run, keep, async_save: bool, restart: bool, fallback: bool) -> tuple[RunSession, bool]:
  """`(session, resumed)`: the run's checkpoints, resumed from the latest complete one where there is one
  (same config but for the resumable fields, same data)."""
  trainer, keep_best = run.trainer, run.keep_best
  if keep_best:  # a misspelt metric fails now, not at the first save
    try:
      name = parse_keep_best(keep_best)[0]
    except ValueError as e:
      raise ConfigError(f"--keep-best: {e}") from None
    known = [f"{split}/{key}" for split in ("train", "test") for key in trainer.evaluate(run.splits["test"])]
    if name not in known:
      raise ConfigError(f"--keep-best {name}: no such metric; known: {', '.join(known)}")
  with run.phases("checkpoint set-up"):
    session = RunSession(run.workdir, "run", run.log, keep=keep, keep_best=keep_best, async_save=async_save,
                         restart=restart, writer=run.writer)
    resumed = session.resume(restore_target(trainer), fallback)
    if resumed is None:
      return session, False
    step, state, meta = resumed
    differences = config_differences(meta["config"], run.config)
    if differences:
      raise ConfigError(
          f"{run.workdir} holds a run of another config (step {step}); pass --restart to start over,"
          f" or another --workdir. Differences: {'; '.join(differences)}"
      )
    check_same_data(run.workdir, meta, run.data.record, step)
    trainer.state = state
    run.log(f"resuming from step {step} ({session.directory / str(step)})")
  return session, True


def _coefficients(run: _Run, config: Config):
  """The run's coefficient table (`experiments.coefficients`), or None where its fit has none."""
  from flaxzoo.experiments.coefficients import run_coefficients

  try:
    return run_coefficients(run.trainer, run.data, config.batch_size)
  except ValueError as e:  # (too few rows for a covariance): the run itself stands
    run.log(f"no coefficient table: {e}")
    return None


def _announce(config: Config, built, log) -> None:
  """The run's first line: the task first (integer labels, counts 0-10, are read as classes unless --task says
  otherwise), the solver, the batch, the data's size and the devices."""
  data, trainer = built.data, built.trainer
  splits = data.splits
  solver = trainer.chosen_solver(len(splits["train"][0]), config.batch_size)
  how = (f"{config.steps} steps of {config.optimizer}(lr={config.learning_rate:g})" if solver == "optax" else
         f"the {solver} solver (at most {config.steps} iterations)")
  task = (f"classification of {len(data.class_names)} classes" + (" (integer labels: --task regression for a"
          " number)" if config.task is None and all(c.lstrip("-").isdigit() for c in data.class_names) else "")
          if data.task == "classification" else "regression")
  log(
      f"{config.name}: {task}; {how},"
      f" {'full batch' if config.batch_size is None else f'batch {config.batch_size}'},"
      f" {len(splits['train'][0])} train / {len(splits['test'][0])} test examples,"
      f" on {trainer.placement.describe()}"
  )


def _fit(run: _Run, session: RunSession | None, save_every, should_stop, progress: str, tensorboard: bool) -> History:
  """The steps left to `config.steps` with their saves, metric log and progress bar; `Interrupted` (after a
  save) where `should_stop()` ended them."""
  config, trainer, phases = run.config, run.trainer, run.phases

  def save(t: Trainer) -> None:
    if session.saved(t.step):
      return
    metrics = run.evaluate_splits(t)
    with phases("checkpoint saves"):
      session.save(t.step, t.state, lambda: run.meta(metrics), metrics)

  # Every process evaluates (the computation spans all devices); process 0 writes.
  with phases("metric log"):
    metric_log = MetricLog(run.workdir, trainer.step, tensorboard) if run.writer else None
  learning_rate = None if config.optimizer == "lbfgs" else config.learning_rate

  def log_metrics(t: Trainer, history: History) -> None:
    metrics = run.evaluate_splits(t)
    loss = history.losses[-1] if history.steps and history.steps[-1] == t.step else None
    if metric_log:
      with phases("metric log"):
        metric_log.write({"step": t.step, "learning_rate": learning_rate, "loss": loss, **metrics})

  hooks = [(config.log_every, log_metrics)]
  if session and not save_every:
    hooks.append((config.log_every, lambda t, _: save(t) if session.due() else None))
  bar = Progress(config.steps, trainer.step, progress if run.writer else "off", config.name)
  remaining = config.steps - trainer.step
  try:
    if remaining <= 0:
      run.log(f"nothing to train: step {trainer.step} >= --steps {config.steps}; evaluating")
      history = History()
      history.metrics = run.evaluate_splits(trainer)
      return history
    nested = sum(phases.seconds.values())
    fit_start = time.perf_counter()
    history = trainer.fit(
        run.splits["train"], steps=remaining, batch_size=config.batch_size, shuffle=config.shuffle,
        eval_data={"test": run.splits["test"]}, log_every=config.log_every,
        checkpoint_every=save_every if session else None, on_checkpoint=save if session else None,
        should_stop=should_stop, hooks=hooks,
        on_progress=lambda step, h: bar.update(step, h.losses[-1] if h.losses else None),
    )
    # The fit's own time: compiling and the steps, without the hooks' phases counted above.
    phases.seconds["compile and steps"] = (time.perf_counter() - fit_start) - (sum(phases.seconds.values())
                                                                                - nested)
    bar.close()
    if history.converged is False:
      run.log(f"warning: the {trainer.chosen_solver(len(run.data.splits['train'][0]), config.batch_size)} solver did"
              f" not converge in {history.iterations} iterations (--steps caps them); its parameters are saved as"
              f" they are")
    if history.stopped:
      if session:
        save(trainer)
        session.close()
        raise session.interrupted(trainer.step)
      raise Interrupted(trainer.step, run.workdir)
    return history
  finally:
    bar.close()
    with phases("closing (the last save)"):
      _close_all([metric_log, session])


def _plots(run: _Run, plots) -> None:
  """The run's PNGs: drawn here, or (`"background"`) by a process of its own, after this one has released the
  workdir."""
  from flaxzoo.experiments import plots as plots_lib

  workdir, trainer = run.workdir, run.trainer
  inputs = plots_lib.plot_inputs(trainer, run.data, run.config.name, trainer.step)
  if plots == "background":
    plots_lib.save_inputs(inputs, workdir / STATE_DIR / "plot_inputs.npz")
    start_plot_worker(workdir)
    run.log(f"plots: being drawn into {workdir / 'plots'} in the background"
            f" (`flaxzoo plot --workdir {workdir}` draws them again)")
  else:
    files = plots_lib.draw(read_metrics(workdir), inputs, workdir / "plots")
    run.log(f"plots: {', '.join(str(f) for f in files)}")
