"""The `flaxzoo` command's flags: one parser per command, the config schema's flags declared by the schema."""

from __future__ import annotations

import argparse


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


def build_parser() -> argparse.ArgumentParser:
  """The `flaxzoo` parser: a sub-parser per command, with the flags every command shares."""
  parser = _Parser(prog="flaxzoo", description="A model zoo for JAX: train, list, evaluate.")
  common = argparse.ArgumentParser(add_help=False)
  common.add_argument("-v", "--verbose", action="store_true",
                      help="debug messages, and the warnings of jax/orbax/absl that are hidden by default")
  common.add_argument("--quiet", action="store_true", help="no progress or messages: only the result")
  commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
  commands.add_parser("list", help="list the registered models and experiments", parents=[common])
  for add_flags in (_train_flags, _sweep_flags, _eval_flags, _export_flags, _plot_flags, _predict_flags):
    add_flags(commands, common)
  return parser


def _train_flags(commands, common) -> None:
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


def _sweep_flags(commands, common) -> None:
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


def _eval_flags(commands, common) -> None:
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
  evaluate.add_argument("--coef-table", action="store_true",
                        help="print the coefficients with standard errors, p-values and intervals (exact fits)")
  evaluate.add_argument("--cov-type", choices=["nonrobust", "HC0", "HC1", "HC2", "HC3", "cluster"],
                        default="nonrobust", help="the covariance of --coef-table (default: nonrobust)")
  evaluate.add_argument("--groups", metavar="COLUMN", help="--cov-type cluster: the column that names each row's group")


def _export_flags(commands, common) -> None:
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


def _plot_flags(commands, common) -> None:
  plot = commands.add_parser("plot", help="write the PNG plots of a training workdir", parents=[common])
  plot.add_argument("--workdir", required=True, help="a workdir written by `flaxzoo train`")
  plot.add_argument("--out", help="folder for the PNGs (default: WORKDIR/plots)")
  plot.add_argument("--data-dir", help="TFDS data dir")


def _predict_flags(commands, common) -> None:
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
