"""Shared fixtures: one brain_age build per test session, strict JAX promotion."""

import os
import pathlib
import subprocess
import sys

import jax
import pytest

# Silent broadcasting and implicit dtype promotion become test failures.
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> pathlib.Path:
  """A TFDS data dir with brain_age built (array_record) once per session."""
  from flaxzoo.datasets import prepare

  path = tmp_path_factory.mktemp("tfds")
  prepare("brain_age", path)
  return path


@pytest.fixture(scope="session")
def brain_age(data_dir):
  """Raw columns of both splits, `{"train": {...}, "test": {...}}`."""
  from flaxzoo.datasets import load_split

  return {split: load_split("brain_age", split, data_dir) for split in ("train", "test")}


def cli_args(args, plots: bool = False) -> list[str]:
  """`args` as strings; `train` gets `--no-plots` unless a test is about plots
  (matplotlib adds ~1 s to every run)."""
  args = [str(a) for a in args]
  if args and args[0] == "train" and not plots:
    args.append("--no-plots")
  return args


def run_cli(*args, env=None, cwd=None, plots=False) -> subprocess.CompletedProcess:
  """Runs `flaxzoo ARGS` in a fresh Python process."""
  return subprocess.run(
      [sys.executable, "-m", "flaxzoo.experiments.cli", *cli_args(args, plots)],
      capture_output=True, text=True, timeout=300, cwd=cwd,
      env={**os.environ, **(env or {})},
  )


def cli_main(*args, plots: bool = False) -> subprocess.CompletedProcess:
  """Runs `flaxzoo ARGS` in this process, through `main(argv)`: where the process boundary is not what a
  test is about (no imports to pay again). Returns the exit code, stdout and stderr like `run_cli`."""
  import contextlib
  import io
  import signal

  from flaxzoo.experiments.cli import main

  handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}  # train installs its own
  out, err = io.StringIO(), io.StringIO()
  try:
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
      try:
        code = main(cli_args(args, plots))
      except SystemExit as e:  # argparse's usage errors
        code = e.code
  finally:
    for signum, handler in handlers.items():
      signal.signal(signum, handler)
  return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
