"""The `flaxzoo` command line: a thin shell over the Python API.

  flaxzoo list
  flaxzoo train brain_age_gm [--workdir DIR] [--steps N] [--lr X] [--batch-size B]
                             [--seed S] [--data-dir D] [--parallel MODE] [--devices N]
                             [--coordinator HOST:PORT --num-processes P --process-id I]

Errors a user can cause (bad flags, unknown names, malformed data, unwritable
directories) print one line `flaxzoo: error: ...` and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys


class _Parser(argparse.ArgumentParser):
  """argparse, but a usage error is one line, not the usage block plus a line."""

  def error(self, message):
    self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _number(kind, valid, requirement: str):
  """An argparse type: `kind(text)` that satisfies `valid`, else a one-line error."""

  def parse(text: str):
    from flaxzoo.trainers.decimals import parse_decimal

    try:
      value = parse_decimal(text, kind)
    except ValueError as e:
      raise argparse.ArgumentTypeError(str(e)) from None
    if not valid(value):
      raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
    return value

  return parse


def _positive(kind):
  return _number(kind, lambda v: 0 < v < 2**31, f"between 1 and {2**31 - 1}")


_step = _number(int, lambda v: 0 <= v < 2**31, f"between 0 and {2**31 - 1}")


def _argparse_type(convert):
  """argparse's `type` from `convert(text)`: its ValueError becomes argparse's one-line error."""

  def parse(text: str):
    try:
      return convert(text)
    except ValueError as e:
      raise argparse.ArgumentTypeError(str(e)) from None

  return parse


def _field_type(field):
  """argparse's `type` for a schema field: the schema's own parse and check, errors in one line."""
  from flaxzoo.experiments.config import parse_flag_value

  return _argparse_type(lambda text: parse_flag_value(field, text))


def _list_type(field_name: str):
  """argparse's `type` for a comma-separated list of a schema field's values (`flaxzoo sweep`)."""

  def convert(text: str):
    from flaxzoo.experiments.sweep import parse_list  # only when the flag is given: --help stays light

    return parse_list(text, field_name)

  return _argparse_type(convert)


def _add_config_flags(parser: argparse.ArgumentParser, skip=()) -> None:
  """One flag per field of the config schema (`flaxzoo.experiments.config.Config`), declared there."""
  from flaxzoo.experiments.config import field_options, flag_of

  for field in field_options():
    if field.name in skip:
      continue
    meta = field.metadata
    kwargs = dict(dest=field.name, help=meta["help"], default=None)
    if meta["kind"] is bool:
      kwargs["action"] = argparse.BooleanOptionalAction
    else:
      kwargs["type"] = _field_type(field)
      if meta["choices"]:
        kwargs["choices"] = meta["choices"]
      if meta["metavar"]:
        kwargs["metavar"] = meta["metavar"]
    parser.add_argument(flag_of(field), **kwargs)


def _build_parser() -> argparse.ArgumentParser:
  parser = _Parser(prog="flaxzoo", description="A model zoo for JAX: train, list, evaluate.")
  common = argparse.ArgumentParser(add_help=False)
  common.add_argument("-v", "--verbose", action="store_true",
                      help="debug messages, and the warnings of jax/orbax/absl that are hidden by default")
  common.add_argument("--quiet", action="store_true", help="no progress or messages: only the result")
  commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
  commands.add_parser("list", help="list the registered models and experiments", parents=[common])

  train = commands.add_parser("train", help="train a named experiment", parents=[common])
  train.add_argument("experiment", help="an experiment name (see `flaxzoo list`)")
  train.add_argument("--workdir", help="output folder (default: runs/EXPERIMENT)")
  _add_config_flags(train)
  train.add_argument("--download", action="store_true", help="tfds: download and prepare a missing dataset")
  train.add_argument("--data-dir", help="TFDS data dir (default: $TFDS_DATA_DIR or ~/.cache/flaxzoo)")
  train.add_argument("--coordinator", metavar="HOST:PORT",
                     help="multi-process run: address of process 0 (jax.distributed)")
  train.add_argument("--num-processes", type=_positive(int), help="multi-process run: how many processes")
  train.add_argument("--process-id", type=_step, help="multi-process run: this process, 0..P-1")
  train.add_argument("--timeout", type=_positive(int), default=60,
                     help="multi-process run: seconds to wait for the others to connect, or for a"
                          " process that stopped answering, before exiting with an error (default 60)")
  train.add_argument("--save-every", type=_positive(int),
                     help="steps between checkpoints (default: every minute of training, and at the end)")
  train.add_argument("--keep", type=_positive(int), default=3, help="checkpoints to keep (default 3)")
  train.add_argument("--keep-best", metavar="SPLIT/METRIC[:min|max]",
                     help="keep the best checkpoints by this metric, e.g. test/mse, instead of the latest")
  train.add_argument("--sync-save", action="store_true", help="save checkpoints in the foreground")
  train.add_argument("--restart", action="store_true",
                     help="ignore existing checkpoints (moved aside to checkpoints.old-*, never deleted)")
  train.add_argument("--fallback", action="store_true",
                     help="if the latest checkpoint is broken, resume from the latest good one (with a warning)")
  train.add_argument("--no-plots", action="store_true", help="do not write <workdir>/plots/*.png at the end")
  train.add_argument("--wait-for-plots", action="store_true",
                     help="draw the plots before returning (default: in a background process)")
  train.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard events to <workdir>/tb/")

  sweep = commands.add_parser("sweep", help="a grid of settings x cross-validation folds, trained at once",
                              parents=[common])
  sweep.add_argument("experiment", help="an experiment name (see `flaxzoo list`)")
  sweep.add_argument("--lr", dest="grid_learning_rate", type=_list_type("learning_rate"), metavar="LR,...",
                     help="learning rates (default: the experiment's)")
  sweep.add_argument("--l2", dest="grid_l2", type=_list_type("l2"), metavar="L2,...",
                     help="L2 penalties (default: the experiment's)")
  sweep.add_argument("--seeds", dest="grid_seed", type=_list_type("seed"), metavar="SEED,...",
                     help="seeds of the initialisation and batch order (default: the experiment's)")
  sweep.add_argument("--folds", type=_number(int, lambda v: 2 <= v <= 1000, "between 2 and 1000"), default=5,
                     help="cross-validation folds of the training split (default 5; seeded by --split-seed)")
  sweep.add_argument("--refit", action="store_true",
                     help="train the best setting on the whole training split in WORKDIR/best (test metrics)")
  sweep.add_argument("--workdir", help="output folder (default: runs/EXPERIMENT_sweep)")
  _add_config_flags(sweep, skip=("learning_rate", "l2", "seed"))
  sweep.add_argument("--save-every", type=_positive(int),
                     help="steps between checkpoints of the sweep (default: every minute, and at the end)")
  sweep.add_argument("--restart", action="store_true",
                     help="ignore the sweep's checkpoints (moved aside to checkpoints.old-*, never deleted)")
  sweep.add_argument("--download", action="store_true", help="tfds: download and prepare a missing dataset")
  sweep.add_argument("--no-plots", action="store_true",
                     help="as train's: a sweep draws none (`flaxzoo plot --workdir WORKDIR/best` draws the refit's)")
  sweep.add_argument("--no-tensorboard", action="store_true",
                     help="--refit: do not write TensorBoard events to <workdir>/best/tb/")
  sweep.add_argument("--data-dir", help="TFDS data dir (default: $TFDS_DATA_DIR or ~/.cache/flaxzoo)")

  evaluate = commands.add_parser("eval", help="evaluate a checkpoint of a training workdir", parents=[common])
  evaluate.add_argument("--workdir", required=True, help="a workdir written by `flaxzoo train`")
  which = evaluate.add_mutually_exclusive_group()
  which.add_argument("--step", type=_step, help="the checkpoint step (default: the latest)")
  which.add_argument("--best", action="store_true", help="the best checkpoint by the run's --keep-best metric")
  evaluate.add_argument("--split", default="test", help="train, test or all (default: test)")
  evaluate.add_argument("--parallel", choices=["auto", "none", "pmap", "mesh"], default="auto")
  evaluate.add_argument("--devices", type=_positive(int), help="local devices to use (default: all)")
  evaluate.add_argument("--data-dir", help="TFDS data dir")
  evaluate.add_argument("--fallback", action="store_true", help="use the latest good step before a broken one")

  export = commands.add_parser("export", help="export a trained workdir as a pretrained checkpoint",
                               parents=[common])
  export.add_argument("--workdir", required=True)
  export.add_argument("--name", required=True, help="the checkpoint's name (a folder name)")
  export.add_argument("--out", default="exports", help="where to write NAME/ (default: exports, in the current"
                                                       " folder)")
  export.add_argument("--step", type=_step, help="the checkpoint step (default: the latest)")
  export.add_argument("--data-dir", help="TFDS data dir")
  export.add_argument("--force", action="store_true", help="replace an existing export of that name")
  export.add_argument("--cv-folds", type=_number(int, lambda v: 2 <= v <= 1000, "between 2 and 1000"),
                      help="also record the recipe's K-fold cross-validated metrics in the card (trains K models)")

  plot = commands.add_parser("plot", help="write the PNG plots of a training workdir", parents=[common])
  plot.add_argument("--workdir", required=True, help="a workdir written by `flaxzoo train`")
  plot.add_argument("--out", help="folder for the PNGs (default: WORKDIR/plots)")
  plot.add_argument("--data-dir", help="TFDS data dir")

  predict = commands.add_parser("predict", help="predict with a pretrained model, an export or a workdir",
                                parents=[common])
  predict.add_argument("model", help="a pretrained name (see `flaxzoo list`), an export folder or a workdir")
  predict.add_argument("--input", required=True,
                       help="CSV or TSV with the model's input columns (the card's preprocessing names them: for"
                            " brain age GM, WM, CSF and total volume in cm^3), an optional id column, and for brain"
                            " age an optional age")
  predict.add_argument("--output", help="CSV to write, created only if it does not exist (default: standard output)")
  predict.add_argument("--force", action="store_true", help="replace an existing --output (atomically)")
  predict.add_argument("--precision", type=_number(int, lambda v: 0 <= v <= 12, "between 0 and 12"),
                       metavar="DECIMALS", help="numbers to this many decimals (default: in full, the shortest text"
                                                " that reads back as the same float64)")
  predict.add_argument("--column", action="append", default=[], metavar="INPUT=COLUMN",
                       help="read INPUT (e.g. gm, or a feature) from the table's column COLUMN; repeatable")
  return parser


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
    how = (f"{c.optimizer}(lr={c.learning_rate:g}), {c.steps} steps" if c.solver == "optax" else
           f"solver {c.solver} (at most {c.steps} iterations)")
    penalty = "" if not c.l2 else f", {c.penalty} {c.l2:g}"
    print(
        f"  {name:22s} {model} on {data}, {c.resolved_loss() or 'loss by task'}{penalty}, {how}, seed {c.seed}"
        + (", standardised" if c.standardize else "")
    )


# Decimals as in DESIGN.md's reference table; errors in the label's own unit (`mae_years`) get 3.
_COLUMNS = {"mse": ".6f", "rmse": ".6f", "mae": ".6f", "r2": ".5f", "accuracy": ".4f", "balanced_accuracy": ".4f",
            "log_loss": ".6f", "roc_auc": ".4f"}
_HEADERS = {"balanced_accuracy": "bal_acc"}


def _print_metrics(results, splits) -> None:
  """The metrics table of `results[split]` for each split."""
  first = results[splits[0]]
  formats = {**_COLUMNS, **{k: ".3f" for k in first if k.startswith(("mae_", "rmse_"))}}
  columns = [c for c in formats if c in first]

  def cell(value, fmt: str) -> str:  # a number too long for its column (a house price's MSE) in 6 digits
    text = format(value, fmt)
    return text if len(text) <= 11 else format(value, ".6g")

  cells = {split: [cell(results[split][c], formats[c]) for c in columns] for split in splits}
  # Every column at least one space wider than its widest entry: numbers never run together.
  widths = [max(12, 1 + max(len(_HEADERS.get(c, c)), *(len(cells[s][i]) for s in splits))) for i, c in
            enumerate(columns)]
  print("  " + f"{'split':6s}" + "".join(f"{_HEADERS.get(c, c):>{w}s}" for c, w in zip(columns, widths)))
  for split in splits:
    print("  " + f"{split:6s}" + "".join(f"{text:>{w}s}" for text, w in zip(cells[split], widths)))


def _print_table(results) -> None:
  print(f"{results['experiment']} after {results['step']} steps:")
  _print_metrics(results, ["train", "test"])
  if "confusion" in results["test"]:
    names = results.get("classes") or [str(k) for k in range(len(results["test"]["confusion"]))]
    print(f"  test confusion (rows: true {', '.join(names)}; columns: predicted): {results['test']['confusion']}")
  print(f"results: {results['workdir']}/results.json")


def _train(args) -> None:
  from flaxzoo.experiments.phases import Phases

  phases = Phases()
  with phases("imports"):
    from flaxzoo.experiments.config import field_options
    from flaxzoo.experiments.errors import ConfigError
    from flaxzoo.experiments.named import get_experiment
    from flaxzoo.experiments.runner import run_experiment

  config = get_experiment(args.experiment).replace(**{f.name: getattr(args, f.name) for f in field_options()})
  multi = [args.coordinator, args.num_processes, args.process_id]
  if any(v is not None for v in multi):
    if any(v is None for v in multi):
      raise ConfigError("a multi-process run needs --coordinator, --num-processes and --process-id together")
    if not re.fullmatch(r"[\w.\-]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5}", args.coordinator):
      raise ConfigError(f"--coordinator must be HOST:PORT, got {args.coordinator!r}")
    if not 0 <= args.process_id < args.num_processes:
      raise ConfigError(f"--process-id must be in [0, {args.num_processes}), got {args.process_id}")
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


def _print_sweep(results) -> None:
  metric = results["metric"].split("/", 1)[1]
  unit = [k for k in (results["summary"][0]["valid"] or {}) if k.startswith("mae_")] if results["summary"] else []
  shown = [metric] + [m for m in ("mae", "accuracy") if m != metric] + unit
  print(f"{results['experiment']}: {len(results['runs'])} models, {results['folds']}-fold cross-validation,"
        f" {results['steps']} steps; validation mean ± std [95% CI, t over folds x seeds]:")
  for row in results["summary"]:
    setting = "  ".join(f"{k}={v:g}" for k, v in row["settings"].items())
    if row["diverged"]:
      print(f"  {setting}: diverged")
      continue
    cells = []
    for name in shown:
      if name not in row["valid"]:
        continue
      s = row["valid"][name]
      spread = "" if s["std"] is None else f" ± {s['std']:.4g} [{s['ci95'][0]:.4g}, {s['ci95'][1]:.4g}]"
      cells.append(f"{name} {s['mean']:.4g}{spread}")
    mark = "  <- best" if results["best"] and row["settings"] == results["best"]["settings"] else ""
    print(f"  {setting}: {'; '.join(cells)}{mark}")
  if results["best"] is None:
    print("  every setting diverged")
  if "refit" in results:
    refit = results["refit"]
    test = refit["test"]
    figures = ", ".join(f"{k} {test[k]:.5g}" for k in ("mse", "r2", "mae_years", "accuracy") if k in test)
    print(f"refit of the best setting: test {figures} ({refit['workdir']}/results.json)")
  print(f"sweep: {results['workdir']}/sweep.json")


class Terminated(BaseException):
  """SIGTERM in a command that is not training: unwinds as KeyboardInterrupt does (temporary files and
  staging folders are removed on the way), then the command exits 143."""


def _raise_terminated(signum, frame):
  raise Terminated()


_pending: list[type[BaseException]] = []


def _signal_again(unraisable) -> None:
  """`sys.unraisablehook`: a signal's exception raised where Python ignores exceptions (a garbage-collector
  callback, a `__del__`) is not lost: it is raised again 10 ms later (SIGALRM), in ordinary code."""
  import signal

  kind = unraisable.exc_type
  if kind is not None and issubclass(kind, (Terminated, KeyboardInterrupt)):
    _pending[:] = [kind]
    signal.setitimer(signal.ITIMER_REAL, 0.01)
    return
  sys.__unraisablehook__(unraisable)


def _raise_pending(signum, frame):
  if _pending:
    raise _pending.pop()()


class _StopFlag:
  """SIGTERM/SIGINT set a flag; training polls it, saves a checkpoint and stops (exit 128 + the signal)."""

  last = None  # the signal that stopped the run, for its exit status

  def __init__(self):
    import signal

    self.signal = None
    for signum in (signal.SIGTERM, signal.SIGINT):
      signal.signal(signum, self._handle)

  # The same signal again within this many seconds is the same request: `timeout` sends SIGTERM to the
  # command and then to its whole process group, and the second copy stopped the run before it saved.
  SAME_REQUEST_S = 1.0

  def _handle(self, signum, frame):
    import time

    if self.signal == signum and time.monotonic() - self.since < self.SAME_REQUEST_S:
      return
    if self.signal is not None:
      # A second signal: stop now, without waiting for the save in flight (Orbax commits a step by a
      # rename, so the last complete checkpoint stays) and without a traceback from its threads.
      import os

      print("flaxzoo: interrupted again: stopped at once; the last complete checkpoint is kept", file=sys.stderr,
            flush=True)
      os._exit(128 + signum)
    self.signal = _StopFlag.last = signum
    self.since = time.monotonic()

  def __call__(self) -> bool:
    return self.signal is not None


def _plot(args) -> None:
  from flaxzoo.experiments.trained import plot_workdir

  for path in plot_workdir(args.workdir, args.out, data_dir=args.data_dir, log=_log):
    print(path)


def _log(message: str) -> None:
  logging.getLogger("flaxzoo").info(message)


# Loggers of libraries whose warnings mean nothing to a user of the CLI.
_LIBRARY_LOGGERS = ("absl", "jax", "orbax", "tensorflow_datasets", "etils", "matplotlib", "concurrent.futures",
                    "asyncio")


class _MainThreadOnly:
  """stderr for the main thread; what library threads print there (Orbax's and TensorStore's savers
  report a failed write from each of their threads, with tracebacks) goes to the debug log instead.
  The failure itself reaches flaxzoo as an exception: one line."""

  def __init__(self, stream):
    self._stream = stream

  def write(self, text: str) -> int:
    import threading

    if threading.current_thread() is threading.main_thread():
      return self._stream.write(text)
    logging.getLogger("flaxzoo").debug("from a library thread: %s", text.rstrip())
    return len(text)

  def __getattr__(self, name):
    return getattr(self._stream, name)


def _setup_logging(verbose: bool, quiet: bool) -> None:
  """flaxzoo's messages on stderr: INFO by default, only errors with --quiet, DEBUG with -v."""
  import warnings

  handler = logging.StreamHandler(sys.stderr)
  handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbose else "%(message)s"))
  logger = logging.getLogger("flaxzoo")
  logger.handlers[:] = [handler]
  logger.propagate = False
  logger.setLevel(logging.DEBUG if verbose else logging.ERROR if quiet else logging.INFO)
  if not verbose:
    # Their errors reach flaxzoo as exceptions (one line each); their logs would repeat them with
    # tracebacks from background threads (Orbax's save threads on a full disk).
    for name in _LIBRARY_LOGGERS:
      logging.getLogger(name).setLevel(logging.CRITICAL)
    import threading

    # Errors of library threads (Orbax's savers) that outlive a failed save: logged at debug level.
    threading.excepthook = lambda hook: logger.debug("in thread %s: %r", hook.thread, hook.exc_value)
    if not isinstance(sys.stderr, _MainThreadOnly):
      sys.stderr = _MainThreadOnly(sys.stderr)
    warnings.filterwarnings("ignore", module="|".join(_LIBRARY_LOGGERS))


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
      for table, ids in card.preprocessing.iter_inputs(args.input, chosen):
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
         " (column outside_training_range): their predictions are extrapolations")
  _log(f"{rows} predictions of {card.name} ({card.path})" + (f" written to {args.output}" if args.output else ""))


class _stdout:
  """Standard output as a binary stream (`with`), flushed at the end."""

  def __enter__(self):
    sys.stdout.flush()
    return sys.stdout.buffer if hasattr(sys.stdout, "buffer") else _TextAsBytes(sys.stdout)

  def __exit__(self, *exc):
    sys.stdout.flush()


class _TextAsBytes:
  def __init__(self, stream):
    self._stream = stream

  def write(self, data: bytes) -> int:
    return self._stream.write(data.decode())


def _eval(args) -> None:
  from flaxzoo.experiments.trained import evaluate_checkpoint

  results = evaluate_checkpoint(
      args.workdir, args.step, best=args.best, split=args.split, data_dir=args.data_dir,
      parallel=args.parallel, devices=args.devices, fallback=args.fallback, log=_log,
  )
  splits = [s for s in ("train", "test") if s in results]
  print(f"{results['experiment']} at step {results['step']} on {results['devices']['count']} device(s):")
  _print_metrics(results, splits)
  print(f"eval: {results['workdir']}/eval.json")


def _use_compilation_cache() -> None:
  """JAX's persistent compilation cache for the commands that compile: a second run of the same job
  loads its compiled programs from disk instead of compiling them again (~0.4 s of a 2-second run).

  In `$FLAXZOO_JAX_CACHE`, else `$XDG_CACHE_HOME/flaxzoo/jax` (~/.cache); `FLAXZOO_JAX_CACHE=off`
  turns it off, and JAX's own `JAX_COMPILATION_CACHE_DIR` wins. Set before jax is imported.
  """
  where = os.environ.get("FLAXZOO_JAX_CACHE")
  if where == "off" or "JAX_COMPILATION_CACHE_DIR" in os.environ or "jax" in sys.modules:
    return
  if not where:
    where = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "flaxzoo", "jax")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = where
  # Every program: the small ones are the ones a short run compiles.
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def main(argv: list[str] | None = None, exiting: bool = False) -> int:
  """Runs a command; returns its exit code. `exiting`: the process ends right after (the console script),
  so a SIGINT or SIGTERM that comes once the command is done is ignored."""
  argv = sys.argv[1:] if argv is None else argv
  args = _build_parser().parse_args(argv)
  if args.command != "list":
    _use_compilation_cache()
  import signal
  import threading

  # SIGTERM unwinds (training replaces this with _StopFlag once it can save); restored when main returns,
  # for a caller that runs main() in its own process (the tests).
  if threading.current_thread() is threading.main_thread():
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)}
    hook, sys.unraisablehook = sys.unraisablehook, _signal_again
    signal.signal(signal.SIGTERM, _raise_terminated)
    signal.signal(signal.SIGALRM, _raise_pending)
    try:
      return _main(args, argv)
    finally:
      # The command is done: in a process that ends now, a signal is too late to stop anything and is
      # ignored (one that came here once raised KeyboardInterrupt, a traceback after the whole output was
      # written; SIGTERM's default action would exit -15). A caller's own process gets its handlers back.
      for signum, handler in handlers.items():
        late = exiting and signum in (signal.SIGINT, signal.SIGTERM)
        signal.signal(signum, signal.SIG_IGN if late else handler)
      sys.unraisablehook = hook
  return _main(args, argv)


def _main(args, argv: list[str]) -> int:
  _StopFlag.last = None
  _setup_logging(args.verbose, args.quiet)
  from flaxzoo.experiments import progress

  progress.configure(progress.choose_mode(args.quiet))
  if args.command == "train" and args.coordinator is not None:
    from flaxzoo.experiments import supervisor

    if not supervisor.is_worker():
      return supervisor.run_supervised(
          argv, args.coordinator, args.process_id or 0, args.num_processes or 1, args.timeout
      )
  from flaxzoo.checkpoints.errors import CheckpointError
  from flaxzoo.datasets.tables import DataError
  from flaxzoo.experiments.errors import ConfigError, Interrupted, MetricLogError
  from flaxzoo.zoo.registry import UnknownNameError

  commands = {"list": lambda: _list(), "train": lambda: _train(args), "sweep": lambda: _sweep(args),
              "eval": lambda: _eval(args), "export": lambda: _export(args), "predict": lambda: _predict(args),
              "plot": lambda: _plot(args)}
  try:
    commands[args.command]()
  except (DataError, ConfigError, UnknownNameError, CheckpointError, MetricLogError) as e:
    print(f"flaxzoo: error: {e}", file=sys.stderr)
    return 2
  except Interrupted as e:
    print(f"flaxzoo: {e}", file=sys.stderr)
    return 128 + (_StopFlag.last or 15)  # 130 after SIGINT, 143 after SIGTERM
  except Terminated:
    print("flaxzoo: terminated (SIGTERM); nothing half-written is left", file=sys.stderr)
    return 143
  except FloatingPointError as e:  # flaxzoo.trainers.DivergedError: nothing non-finite was saved
    print(f"flaxzoo: error: {e}{' (--lr)' if str(e).endswith('learning rate') else ''}", file=sys.stderr)
    return 1
  except BrokenPipeError:  # the reader of the output went away (`flaxzoo list | head`): nothing to say
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so that the last flush does not fail again
    return 141
  except OSError as e:  # out of space, read-only, a missing folder, a directory where a file goes
    where = f"{e.filename}: " if e.filename else ""
    print(f"flaxzoo: error: {where}{e.strerror or e}", file=sys.stderr)
    return 1
  except KeyboardInterrupt:
    print("flaxzoo: interrupted", file=sys.stderr)
    return 130
  except Exception as e:
    # A signal's exception that Python wrapped in another on its way out (an import that was defining a
    # class: RuntimeError "Error calling __set_name__"): the signal's exit, not a traceback.
    signal_error = _signal_in_chain(e)
    if signal_error is None:
      raise
    print("flaxzoo: interrupted" if isinstance(signal_error, KeyboardInterrupt) else
          "flaxzoo: terminated (SIGTERM); nothing half-written is left", file=sys.stderr)
    return 130 if isinstance(signal_error, KeyboardInterrupt) else 143
  return 0


def _signal_in_chain(error: BaseException) -> BaseException | None:
  """The Terminated or KeyboardInterrupt that caused `error` (its causes and contexts), if one did."""
  seen = set()
  while error is not None and id(error) not in seen:
    if isinstance(error, (Terminated, KeyboardInterrupt)):
      return error
    seen.add(id(error))
    error = error.__cause__ or error.__context__
  return None


def entry_point() -> None:
  """The `flaxzoo` console script.

  Exits without the interpreter's teardown once everything is written and closed: tearing down JAX's
  runtime and a few thousand modules takes ~0.5 s and does nothing for the user.
  """
  try:
    code = main(exiting=True)
  except (KeyboardInterrupt, Terminated) as signalled:  # between the command's own handling and the hold
    print("flaxzoo: interrupted" if isinstance(signalled, KeyboardInterrupt) else
          "flaxzoo: terminated (SIGTERM); nothing half-written is left", file=sys.stderr)
    code = 130 if isinstance(signalled, KeyboardInterrupt) else 143
  try:
    sys.stdout.flush()
    sys.stderr.flush()
  except BrokenPipeError:
    code = 141
  logging.shutdown()
  os._exit(code)


if __name__ == "__main__":
  entry_point()
