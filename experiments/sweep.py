"""`flaxzoo sweep`: a grid of settings × cross-validation folds, every model trained in one program.

The grid is the product of lists of learning rates, L2 weights and seeds;
`folds` splits the training split into K seeded folds (stratified by class
for classification): each model trains on K−1 and is validated on the one
held out. The test split is never read. Every (setting, fold) is one model
of a `flaxzoo.trainers.Sweep`; the results go to `<workdir>/sweep.json`:

  {"experiment", "grid", "folds", "metric", "runs": [{"settings", "fold", "seed", "train_rows", "valid_rows",
   "train", "valid", "diverged"}], "summary": [{"settings", "runs", "diverged", "valid": {METRIC: {"mean",
   "std", "ci95"}}}], "best": {"settings", "by"}, "interval": ...}

`train_rows`/`valid_rows` are the dataset's own row ids (`LoadedData.rows_of`),
so anyone can recompute a fold. The 95% interval is Student's t over the
runs of a setting (folds × seeds): `mean ± t(0.975, m−1) · std / √m` — the
usual cross-validation interval; folds share training rows, so it is
optimistic, as everyone's is. A setting with a diverged run has no summary
metrics and is never `best`.

The sweep's state is checkpointed (Orbax, `<workdir>/checkpoints/`) every
minute or `save_every` steps, at the end and on SIGTERM/SIGINT; a sweep
started again in the same workdir resumes and writes the same `sweep.json`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from flaxzoo.checkpoints.card import library_versions
from flaxzoo.checkpoints.files import standard_json
from flaxzoo.experiments.config import OPTIMIZERS, Config, resumable_fields
from flaxzoo.experiments.errors import ConfigError
from flaxzoo.experiments.workdir import (
    WorkdirLock,
    check_same_data,
    claim,
    move_aside,
    removed_if_unused,
    write_json_atomic,
)

# Lists a sweep takes: `Config` field -> flag.
GRID = {"learning_rate": "--lr", "l2": "--l2", "seed": "--seeds"}
DEFAULT_FOLDS = 5
# The metric that picks `best`, by task (lower is better).
METRIC = {"regression": "mse", "classification": "log_loss"}


def parse_list(text: str, field: str) -> tuple:
  """`"0.01,0.05"` → `(0.01, 0.05)` checked as the schema checks `field`; ValueError in one line."""
  from flaxzoo.experiments.config import parse_flag_value

  f = {f.name: f for f in dataclasses.fields(Config)}[field]
  items = [item.strip() for item in text.split(",")]
  if not text.strip() or any(not item for item in items):
    raise ValueError(f"a comma-separated list of values, got {text!r}")
  values = [parse_flag_value(f, item) for item in items]  # the schema's own parse and check of each
  if len(set(values)) != len(values):
    raise ValueError(f"a value is given twice in {text!r}")
  return tuple(values)


def assign_folds(labels: np.ndarray, folds: int, seed: int, classification: bool) -> np.ndarray:
  """The fold `[n]` (0..folds−1) of each training row: a seeded permutation dealt out in turn, class by
  class for classification (each fold then holds every class in proportion, ±1 row)."""
  n = len(labels)
  if not 2 <= folds <= n:
    raise ConfigError(f"--folds must be between 2 and the {n} training rows, got {folds}")
  rng = np.random.default_rng(seed)
  fold = np.empty(n, np.int64)
  if not classification:
    fold[rng.permutation(n)] = np.arange(n) % folds
    return fold
  start = 0
  for cls in np.unique(labels):
    members = np.flatnonzero(labels == cls)
    fold[rng.permutation(members)] = (start + np.arange(len(members))) % folds
    start += len(members)
  return fold


def interval(values: Sequence[float]) -> dict[str, Any]:
  """`{"mean", "std", "ci95": [lo, hi]}` of the runs' values (std with m − 1; t interval)."""
  from scipy import stats

  values = np.asarray(values, np.float64)
  m = len(values)
  mean = float(np.mean(values))
  if m < 2:
    return {"mean": mean, "std": None, "ci95": None}
  std = float(np.std(values, ddof=1))
  half = float(stats.t.ppf(0.975, m - 1) * std / math.sqrt(m))
  return {"mean": mean, "std": std, "ci95": [mean - half, mean + half]}


def _settings_of(config: Config, grid: dict[str, tuple]) -> list[dict[str, Any]]:
  names = list(GRID)
  lists = [grid.get(name) or (getattr(config, name),) for name in names]
  return [dict(zip(names, values, strict=True)) for values in itertools.product(*lists)]


def _identity(config: Config, grid, folds: int) -> dict[str, Any]:
  """What a resumed sweep must share with the checkpoint: all but the fields a resumed run may change."""
  fields = {k: v for k, v in config.to_dict().items() if k not in resumable_fields()}
  return {"config": fields, "grid": {k: list(v) for k, v in grid.items()}, "folds": folds}


def run_sweep(config: Config, grid: dict[str, tuple], *, folds: int = DEFAULT_FOLDS, workdir=None, data_dir=None,
              log: Callable[[str], None] | None = None, refit: bool = False, save_every: int | None = None,
              restart: bool = False, should_stop: Callable[[], bool] | None = None,
              download: bool = False, refit_options: dict[str, Any] | None = None) -> dict[str, Any]:
  """Runs the sweep of `config` over `grid` with `folds`-fold cross-validation; writes and returns sweep.json.

  Args:
    grid: `{"learning_rate": (...), "l2": (...), "seed": (...)}`; a missing
      field takes the config's value.
    refit: train the best setting on the whole training split as a normal run
      in `<workdir>/best/` (results.json with test metrics; exportable).
    refit_options: `run_experiment`'s options for the refit (`plots=None`, `tensorboard=False`).
  """
  workdir = pathlib.Path(workdir or pathlib.Path("runs") / f"{config.name}_sweep")
  with removed_if_unused(workdir):
    claim(workdir)
    with WorkdirLock(workdir):
      results = _sweep_in(config, grid, folds, workdir, data_dir, log or (lambda m: None), save_every, restart,
                          should_stop, download)
  if refit:
    from flaxzoo.experiments.runner import run_experiment

    best = results["best"]
    if best is None:
      raise ConfigError("every setting diverged: nothing to refit; try smaller learning rates")
    refit_config = config.replace(**best["settings"])
    (log or (lambda m: None))(f"refit: {best['settings']} on the whole training split in {workdir / 'best'}")
    results["refit"] = run_experiment(refit_config, workdir=workdir / "best", data_dir=data_dir, log=log,
                                      should_stop=should_stop, **(refit_options or {}))
  results["workdir"] = str(workdir)
  return results


@dataclasses.dataclass
class _Planned:
  """A sweep built for a config: the engine, its (setting, fold) runs and the training rows' folds."""

  sweep: Any
  runs: list[tuple[dict[str, Any], int]]
  fold_of: np.ndarray
  train_weights: np.ndarray
  model: dict[str, Any]
  loss: str


def _plan(config: Config, settings: list[dict[str, Any]], folds: int, data) -> _Planned:
  from flaxzoo.experiments.build import model_and_loss
  from flaxzoo.trainers.sweep import Sweep
  from flaxzoo.zoo.models import create_models

  if config.offset:  # (Sweep's programs add none to the linear predictor)
    raise ConfigError(f"{config.name}: --offset is fitted by `flaxzoo train` (an exact fit), not by a sweep's"
                      " or cross-validation's many models")
  model_name, loss = model_and_loss(config, data)
  y = data.splits["train"][1]
  fold_of = assign_folds(y, folds, config.split_seed, data.task == "classification")
  runs = [(s, f) for s in settings for f in range(folds)]
  args = {"in_features": data.num_features}
  if data.task == "classification":
    args["num_classes"] = data.num_classes
  try:
    models = create_models(model_name, [s["seed"] for s, _ in runs], init=config.init, **args)
  except ValueError as e:
    raise ConfigError(f"{config.name}: model {model_name!r}: {e}") from None
  optimizer = OPTIMIZERS.get(config.optimizer)
  parallel = "none" if config.parallel == "none" else "auto" if config.parallel == "auto" else "mesh"
  try:
    l2, l1 = np.asarray([config.penalties(s["l2"]) for s, _ in runs]).reshape(-1, 2).T  # --penalty's split
    sweep = Sweep(models, lambda learning_rate: optimizer(learning_rate),
                  {"learning_rate": [s["learning_rate"] for s, _ in runs]}, loss, l2=l2, l1=l1,
                  seeds=[s["seed"] for s, _ in runs], parallel=parallel, devices=config.devices, task=data.task,
                  label_scale=data.preprocessing.label_scale, label_unit=data.preprocessing.label_unit,
                  solver=config.solver)
    sweep.chosen_solver(len(y), config.batch_size)  # a solver that cannot apply: one line
  except ValueError as e:
    raise ConfigError(f"{config.name}: {e}") from None
  train_weights = np.stack([(fold_of != f).astype(np.float32) for _, f in runs])
  return _Planned(sweep, runs, fold_of, train_weights, {"name": model_name, "args": args}, loss)


def _summary(values: list[dict[str, Any]]) -> dict[str, Any]:
  """`{metric: interval}` over runs' metric dicts (the numbers only, not `count`)."""
  names = [key for key, value in values[0].items() if isinstance(value, float) and key != "count"]
  return {name: interval([v[name] for v in values]) for name in names}


def cross_validate(config: Config, folds: int = 10, data=None, data_dir=None) -> dict[str, Any]:
  """The `folds`-fold cross-validated metrics of `config` on its training split (what a card records):
  `{"folds", "fold_seed", "steps", "rows", "metric", "valid": {METRIC: {"mean", "std", "ci95"}},
  "interval", "command"}`. The folds are `flaxzoo sweep`'s; the test split is not read."""
  from flaxzoo.experiments.build import build_data
  from flaxzoo.experiments.runner import command_of

  data = data if data is not None else build_data(config, data_dir)
  planned = _plan(config, _settings_of(config, {}), folds, data)
  x, y = data.splits["train"]
  history = planned.sweep.fit((x, y), steps=config.steps, weights=planned.train_weights,
                              batch_size=config.batch_size, shuffle=config.shuffle, log_every=config.log_every)
  del history
  if planned.sweep.diverged.any():
    raise ConfigError(f"{config.name}: a cross-validation fold diverged")
  valid = planned.sweep.evaluate((x, y), 1 - planned.train_weights)
  words = command_of(config).split(" ")
  words = ["--seeds" if w == "--seed" else w for w in words]
  words[1] = "sweep"
  unit = data.preprocessing.label_unit
  metric = f"mae_{unit}" if data.task == "regression" and unit else "mae" if data.task == "regression" else "accuracy"
  return {"folds": folds, "fold_seed": config.split_seed, "steps": config.steps, "rows": int(len(x)),
          "metric": metric, "valid": _summary(valid),
          "interval": "Student t over the folds: mean +- t(0.975, K-1) * std / sqrt(K)",
          "command": " ".join(words + ["--folds", str(folds)])}


def _sweep_in(config, grid, folds, workdir, data_dir, log, save_every, restart, should_stop, download):
  from flaxzoo.experiments.build import build_data
  from flaxzoo.experiments.session import RunSession

  start = time.perf_counter()
  data = build_data(config, data_dir, log, download=download)
  x, y = data.splits["train"]
  settings = _settings_of(config, grid)
  planned = _plan(config, settings, folds, data)
  if data.task == "classification":  # as scikit-learn warns: a fold's model never sees a class it is scored on
    for f in range(folds):
      missing = sorted(set(range(data.num_classes)) - set(np.unique(np.asarray(y)[planned.fold_of != f]).tolist()))
      if missing:
        names = [data.class_names[c] for c in missing]
        log(f"warning: fold {f}'s training rows hold no row of class {', '.join(map(repr, names))}: its models"
            " never learn it and are validated on it (fewer folds, or more rows of that class)")
  identity = standard_json(_identity(config, grid, folds))
  session = RunSession(workdir, "sweep", log, keep=2, async_save=False, restart=restart)
  try:
    _resume_sweep(session, planned.sweep, identity, data, workdir, log)
    _train_sweep(session, config, planned, identity, data, (x, y), settings, save_every, should_stop, log)
  finally:
    session.close()
  results = _sweep_results(config, grid, folds, planned, data, settings)
  write_json_atomic(workdir / "sweep.json", results)
  log(f"sweep: {len(planned.runs)} models in {time.perf_counter() - start:.1f} s")
  return results


def _resume_sweep(session, sweep, identity, data, workdir, log) -> None:
  """The sweep from its latest checkpoint, where there is one of this very sweep (same grid, folds, data)."""
  from jax.sharding import SingleDeviceSharding

  from flaxzoo.checkpoints.manager import abstract_like

  target = abstract_like(sweep.saved_state(), SingleDeviceSharding(sweep.placement.devices[0]))
  resumed = session.resume(target)
  if resumed is not None:
    step, state, meta = resumed
    if meta.get("sweep") != identity:
      raise ConfigError(f"{workdir} holds another sweep (step {step}); pass --restart to start over, or"
                        " another --workdir")
    check_same_data(workdir, meta, data.record, step)
    sweep.restore_state(state)
    sweep.diverged_step = np.asarray(meta["diverged_step"], np.int64)
    log(f"resuming the sweep from step {step}")
  elif (workdir / "sweep.json").exists():
    log(f"moved the earlier sweep.json to {move_aside(workdir / 'sweep.json')}")
  session.last["step"] = sweep.step  # (on disk already, or nothing trained yet)


def _train_sweep(session, config, planned, identity, data, train, settings, save_every, should_stop,
                 log) -> None:
  """The steps left to `config.steps` for every model, saved when due and at the end; `Interrupted` (after a
  save) where `should_stop()` ended them."""
  sweep, runs, folds = planned.sweep, planned.runs, len(set(planned.fold_of.tolist()))

  def save(s) -> None:
    session.save(s.step, s.saved_state(), lambda: {"sweep": identity, "config": config.to_dict(),
                                                   "dataset": data.record, "diverged_step": s.diverged_step.tolist(),
                                                   "step": s.step})

  def save_when_due(s) -> None:
    if save_every or session.due() or s.step >= config.steps:
      save(s)

  solver = sweep.chosen_solver(len(train[0]), config.batch_size)
  how = (f"{config.steps} steps of {config.optimizer}" if solver == "optax" else
         f"the {solver} solver (at most {config.steps} iterations)")
  log(f"{config.name} sweep: {len(settings)} settings x {folds} folds = {len(runs)} models, {how},"
      f" {'full batch' if config.batch_size is None else f'batch {config.batch_size}'},"
      f" {len(train[0])} training rows, on {sweep.placement.describe()}")
  remaining = config.steps - sweep.step
  if remaining > 0:
    try:
      history = sweep.fit(train, steps=remaining, weights=planned.train_weights, batch_size=config.batch_size,
                          shuffle=config.shuffle, log_every=config.log_every,
                          checkpoint_every=save_every or min(config.log_every * 10, remaining),
                          on_checkpoint=save_when_due, should_stop=should_stop)
    except ValueError as e:
      raise ConfigError(f"{config.name}: {e}") from None
    if history.stopped:
      save(sweep)
      raise session.interrupted(sweep.step)
    log(f"trained {len(runs)} models in {history.train_seconds:.2f} s ({history.path})")
  save(sweep)


def _sweep_results(config, grid, folds, planned, data, settings) -> dict:
  """sweep.json: every run's train and validation metrics, each setting's summary over its runs, the best."""
  sweep, runs, fold_of, train_weights = planned.sweep, planned.runs, planned.fold_of, planned.train_weights
  x, y = data.splits["train"]
  row_ids = data.rows_of("train")
  model_name, args, loss = planned.model["name"], planned.model["args"], planned.loss
  train_metrics = sweep.evaluate((x, y), train_weights)
  valid_metrics = sweep.evaluate((x, y), 1 - train_weights)
  metric = METRIC[data.task]
  run_records = []
  for k, (setting, fold) in enumerate(runs):
    run_records.append({
        "settings": setting, "fold": fold, "seed": setting["seed"],
        "train_rows": row_ids[fold_of != fold].tolist(), "valid_rows": row_ids[fold_of == fold].tolist(),
        "train": train_metrics[k], "valid": valid_metrics[k],
        "diverged": bool(sweep.diverged[k]),
        "diverged_step": int(sweep.diverged_step[k]) if sweep.diverged[k] else None,
    })
  summary = []
  for setting in settings:
    mine = [r for r in run_records if r["settings"] == setting]
    diverged = any(r["diverged"] for r in mine)
    summary.append({"settings": setting, "runs": len(mine), "diverged": diverged,
                    "valid": None if diverged else _summary([r["valid"] for r in mine])})
  finite = [s for s in summary if not s["diverged"] and math.isfinite(s["valid"][metric]["mean"])]
  best = min(finite, key=lambda s: s["valid"][metric]["mean"]) if finite else None
  results = {
      "experiment": config.name,
      "grid": {name: list(grid.get(name) or (getattr(config, name),)) for name in GRID},
      "folds": folds,
      "fold_seed": config.split_seed,
      "metric": f"valid/{metric}",
      "steps": sweep.step,
      "model": {"name": model_name, "args": args},
      "loss": loss,
      "config": config.to_dict(),
      "dataset": data.record,
      "task": data.task,
      "interval": "Student t over the runs of a setting (folds x seeds): mean +- t(0.975, m-1) * std / sqrt(m)",
      "runs": run_records,
      "summary": summary,
      "best": None if best is None else {"settings": best["settings"], "by": f"valid/{metric}",
                                          "valid": best["valid"][metric]},
      "versions": library_versions(),
  }
  return standard_json(results)
