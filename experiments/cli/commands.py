"""The `flaxzoo` commands, each a thin shell over the Python API: list, train, sweep, eval, export, predict, plot."""

from __future__ import annotations

import logging
import re

from flaxzoo.experiments.cli.output import _log, _print_metrics, _print_sweep, _print_table, _stdout
from flaxzoo.experiments.cli.signals import _StopFlag


def _list() -> None:
  from flaxzoo.checkpoints.pretrained import list_pretrained, read_card_summary
  from flaxzoo.experiments.named import get_experiment, list_experiments
  from flaxzoo.zoo.models import get_model_spec, list_models

  print("models:")
  for name in list_models():
    print(f"  {name:22s} {get_model_spec(name).description}")

  print("pretrained:")
  for name in list_pretrained():
    print(f"  {name:22s} {read_card_summary(name)}")
  print("experiments:")
  for name in list_experiments():
    c = get_experiment(name)
    data = (c.dataset or "--dataset") + (f"/{c.features}" if c.features else "") + (f" -> {c.label}" if c.label else "")
    model = c.model or {"regression": "linear_regression", "classification": "logistic/softmax"}.get(
        c.task, "model by task")
    solver = _solver_of(c)
    how = (f"{c.optimizer}(lr={c.learning_rate:g}), {c.steps} steps" if solver == "optax" else
           f"solver {solver} (at most {c.steps} iterations)")
    penalty = "" if not c.l2 else f", {c.penalty} {c.l2:g}"
    print(
        f"  {name:22s} {model} on {data}, {c.resolved_loss() or 'loss by task'}{penalty}, {how}, seed {c.seed}"
        + (", standardised" if c.standardize else "")
    )


def _solver_of(config) -> str:
  """The solver a run of `config` takes (`solvers.choose`, the one rule: no JAX imported to ask it)."""
  from flaxzoo.trainers.solvers._choice import choose
  from flaxzoo.zoo.models import get_model_spec

  affine = config.model is None or get_model_spec(config.model).affine  # (by task: a zoo linear model)
  loss = config.resolved_loss() or ("mse" if config.task == "regression" else "logistic")
  l2, l1 = config.penalties()
  try:
    return choose(config.solver, loss, affine, config.batch_size is None, l1=l1 > 0, l2=l2 > 0)
  except ValueError:  # a named solver that cannot apply: the run says so in one line
    return config.solver


def multi_process_error(args) -> str | None:
  """What is wrong with `train`'s multi-process flags, or None: checked before anything is imported or a
  member's child process is started (a usage error in 0.07 s, not ~1.9 s after JAX's start-up)."""
  multi = [args.coordinator, args.num_processes, args.process_id]
  if all(v is None for v in multi):
    return None
  if any(v is None for v in multi):
    return "a multi-process run needs --coordinator, --num-processes and --process-id together"
  if not re.fullmatch(r"[\w.\-]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5}", args.coordinator):
    return f"--coordinator must be HOST:PORT, got {args.coordinator!r}"
  if not 0 <= args.process_id < args.num_processes:
    return f"--process-id must be in [0, {args.num_processes}), got {args.process_id}"
  return None


def _train(args) -> None:
  from flaxzoo.experiments.phases import Phases

  phases = Phases()
  with phases("imports"):
    from flaxzoo.experiments.config import field_options
    from flaxzoo.experiments.errors import ConfigError
    from flaxzoo.experiments.named import get_experiment
    from flaxzoo.experiments.runner import run_experiment

  config = get_experiment(args.experiment).replace(**{f.name: getattr(args, f.name) for f in field_options()})
  if args.coordinator is not None:  # (its flags checked by `_main`: `multi_process_error`)
    from flaxzoo.trainers import distributed

    try:
      distributed.initialize(args.coordinator, args.num_processes, args.process_id, args.timeout)
    except (ValueError, RuntimeError) as e:
      raise ConfigError(str(e)) from None
  from flaxzoo.experiments.progress import current_mode

  stop = _StopFlag()
  results = run_experiment(
      config, workdir=args.workdir, data_dir=args.data_dir, log=_log,
      save_every=args.save_every, keep=args.keep, keep_best=args.keep_best, async_save=not args.sync_save,
      restart=args.restart, fallback=args.fallback, should_stop=stop, download=args.download,
      progress=current_mode(), tensorboard=not args.no_tensorboard, phases=phases,
      plots=None if args.no_plots else "background" if not args.wait_for_plots else "wait",
  )
  logging.getLogger("flaxzoo").debug(phases.summary())
  if (args.process_id or 0) == 0:
    _print_table(results)


def _sweep(args) -> None:
  from flaxzoo.experiments.config import field_options
  from flaxzoo.experiments.named import get_experiment
  from flaxzoo.experiments.sweep import GRID, run_sweep

  overrides = {f.name: getattr(args, f.name) for f in field_options() if f.name not in GRID}
  config = get_experiment(args.experiment).replace(**overrides)
  grid = {name: getattr(args, f"grid_{name}") for name in GRID if getattr(args, f"grid_{name}") is not None}
  results = run_sweep(config, grid, folds=args.folds, workdir=args.workdir, data_dir=args.data_dir, log=_log,
                      refit=args.refit, save_every=args.save_every, restart=args.restart, should_stop=_StopFlag(),
                      download=args.download, refit_options={"tensorboard": not args.no_tensorboard})
  _print_sweep(results)


def _plot(args) -> None:
  from flaxzoo.experiments.trained import plot_workdir

  for path in plot_workdir(args.workdir, args.out, data_dir=args.data_dir, log=_log):
    print(path)


def _export(args) -> None:
  import json

  from flaxzoo.checkpoints.card import summary
  from flaxzoo.experiments.trained import export_run

  target = export_run(args.workdir, args.name, args.out, step=args.step, force=args.force, data_dir=args.data_dir,
                      cv_folds=args.cv_folds)
  card = json.loads((target / "card.json").read_text())
  print(f"exported {args.workdir} (step {card['recipe']['step']}) to {target}: {summary(card)}")


def _predict(args) -> None:
  import pathlib

  from flaxzoo.checkpoints.files import open_atomic
  from flaxzoo.checkpoints.prediction import predict
  from flaxzoo.experiments.csv_out import format_rows, header_line
  from flaxzoo.experiments.errors import ConfigError
  from flaxzoo.experiments.trained import load_model

  if args.output and pathlib.Path(args.output).exists() and not args.force:
    raise ConfigError(f"{args.output} exists; pass --force to replace it")
  chosen = dict(item.partition("=")[::2] for item in args.column)
  if any(not k or not v for k, v in chosen.items()):
    raise ConfigError(f"--column takes INPUT=COLUMN, got {args.column}")
  import concurrent.futures

  model, card = load_model(args.model)
  rows = outside = 0
  # A block of rows at a time: read (Arrow) and predict here, while a second thread formats (Arrow,
  # which lets go of the GIL) and writes the block before; two blocks in flight at most. The output
  # file appears whole at the end (a temporary file and a rename), standard output as it goes.
  try:
    with open_atomic(args.output, exclusive=not args.force) if args.output else _stdout() as out, \
         concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="flaxzoo-write") as writer:
      pending = None
      extra = {"extra": (card.data["offset"]["column"],)} if "offset" in card.data else {}  # (a model's offset)
      for table, ids in card.preprocessing.iter_inputs(args.input, chosen, **extra):
        result = predict(model, card, table, first_row=rows + 1)
        if rows == 0:
          out.write(header_line(["id", *result]))
        if pending is not None:
          pending.result()
        pending = writer.submit(lambda block: out.write(format_rows(block, args.precision)), {"id": ids, **result})
        rows += len(ids)
        outside += int((result["outside_training_range"] == "yes").sum()) if "outside_training_range" in result else 0
      if pending is not None:
        pending.result()
  except FileExistsError:  # created by someone else while these predictions were written: theirs is kept
    raise ConfigError(f"{args.output} was created meanwhile (another run?); it is kept as it is: pass --force to"
                      " replace it") from None
  if outside:
    _log(f"warning: {outside} of {rows} rows have inputs outside the range of the training data"
         " (column outside_training_range): their predictions (and intervals) extrapolate the model there")
  _log(f"{rows} predictions of {card.name} ({card.path})" + (f" written to {args.output}" if args.output else ""))


def _coef_table(args) -> None:
  """`flaxzoo eval --coef-table`: the checkpoint's coefficient table on its training split."""
  from flaxzoo.experiments.coefficients import format_table, run_coefficients
  from flaxzoo.experiments.errors import ConfigError
  from flaxzoo.experiments.trained import load_trained

  if (args.cov_type == "cluster") != (args.groups is not None):
    raise ConfigError("--cov-type cluster needs --groups COLUMN, and --groups needs --cov-type cluster")
  trainer, meta = load_trained(args.workdir, args.step, best=args.best, data_dir=args.data_dir, parallel="none",
                               fallback=args.fallback, log=_log)
  try:
    table = run_coefficients(trainer, meta["data"], meta["config_object"].batch_size, args.cov_type, args.groups)
  except ValueError as e:
    raise ConfigError(f"{args.workdir}: {e}") from None
  if table is None:
    raise ConfigError(f"{args.workdir}: no coefficient table: its fit is not exact least squares, logistic or a"
                      " log-link GLM without an L1 part (the optax path, Huber, quantile and softmax have none)")
  print(format_table(table))


def _eval(args) -> None:
  from flaxzoo.experiments.trained import evaluate_checkpoint

  if args.coef_table or args.groups or args.cov_type != "nonrobust":
    return _coef_table(args)
  results = evaluate_checkpoint(
      args.workdir, args.step, best=args.best, split=args.split, data_dir=args.data_dir,
      parallel=args.parallel, devices=args.devices, fallback=args.fallback, log=_log,
  )
  splits = [s for s in ("train", "test") if s in results]
  print(f"{results['experiment']} at step {results['step']} on {results['devices']['count']} device(s):")
  _print_metrics(results, splits)
  print(f"eval: {results['workdir']}/eval.json")
