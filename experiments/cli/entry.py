"""The `flaxzoo` program: parse, choose the process's compilation cache, run the command, map errors to exit
codes (one line, no traceback)."""

from __future__ import annotations

import logging
import os
import sys

from flaxzoo.experiments.cli.commands import _eval, _export, _list, _plot, _predict, _sweep, _train
from flaxzoo.experiments.cli.output import _setup_logging
from flaxzoo.experiments.cli.parser import build_parser
from flaxzoo.experiments.cli.signals import (
  _raise_pending,
  _raise_terminated,
  _raised,
  _signal_again,
  _signal_in_chain,
  _StopFlag,
  signal_exit,
)


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
  args = build_parser().parse_args(argv)
  if args.command != "list":
    _use_compilation_cache()
  import signal
  import threading

  # SIGTERM unwinds (training replaces this with _StopFlag once it can save); restored when main returns,
  # for a caller that runs main() in its own process (the tests).
  if threading.current_thread() is threading.main_thread():
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)}
    hook, sys.unraisablehook = sys.unraisablehook, _signal_again
    _raised.clear()
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
  if args.command == "train":
    from flaxzoo.experiments.cli.commands import multi_process_error

    if (error := multi_process_error(args)) is not None:
      print(f"flaxzoo: error: {error}", file=sys.stderr)
      return 2
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
  except KeyboardInterrupt as signalled:  # SIGINT, or SIGTERM (`Terminated`)
    line, code = signal_exit(signalled)
    print(line, file=sys.stderr)
    return code
  except Exception as e:
    # A signal's exception that Python wrapped in another on its way out (an import that was defining a
    # class: RuntimeError "Error calling __set_name__"): the signal's exit, not a traceback.
    signal_error = _signal_in_chain(e)
    if signal_error is None:
      raise
    line, code = signal_exit(signal_error)
    print(line, file=sys.stderr)
    return code
  return 0


def entry_point() -> None:
  """The `flaxzoo` console script.

  Exits without the interpreter's teardown once everything is written and closed: tearing down JAX's
  runtime and a few thousand modules takes ~0.5 s and does nothing for the user.
  """
  try:
    code = main(exiting=True)
  except KeyboardInterrupt as signalled:  # between the command's own handling and the hold (SIGTERM's too)
    line, code = signal_exit(signalled)
    print(line, file=sys.stderr)
  try:
    sys.stdout.flush()
    sys.stderr.flush()
  except BrokenPipeError:
    code = 141
  logging.shutdown()
  os._exit(code)
