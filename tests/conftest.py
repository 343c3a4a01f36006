"""Shared fixtures: one brain_age build per test session, strict JAX promotion."""

import os
import pathlib
import subprocess
import sys

# JAX's persistent compilation cache for this process and every process a test starts (they inherit
# the environment): the suite compiles the same few hundred small programs on every run.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "flaxzoo", "jax-tests"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

# One BLAS thread a test process: `pytest -n 2` runs a worker a core, and OpenBLAS's idle threads spin (50
# products of 500 x 500 with 10 ms pauses between: 178 ms of work, 860 ms of CPU on two threads, 271 on one),
# taking the other worker's core. For the processes the tests start (the variable), and for this one, whose
# NumPy a plugin loaded before this file (threadpoolctl). flaxzoo's own host sums take one thread a call anyway.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402 - after the cache's settings
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import threadpoolctl  # noqa: E402

threadpoolctl.threadpool_limits(int(os.environ["OPENBLAS_NUM_THREADS"]), user_api="blas")

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


def made_by_flaxzoo(workdir: pathlib.Path) -> pathlib.Path:
  """An empty workdir with flaxzoo's marker, as a first run leaves it (for tests that put files in it)."""
  from flaxzoo.experiments.workdir import claim

  claim(workdir)
  return workdir


# Variables that must be set before jax is imported, or that change what is imported: a fresh process.
_PROCESS_ENV = ("XLA_FLAGS", "PYTHONPATH", "JAX_PLATFORMS")


def run_cli(*args, env=None, cwd=None, plots=False, fresh_process=False) -> subprocess.CompletedProcess:
  """Runs `flaxzoo ARGS` and returns its exit code, stdout and stderr.

  In this process through `main(argv)` (no second start-up to pay), unless the
  test needs a fresh process: `fresh_process`, or an `env` that must be set
  before jax is imported (XLA_FLAGS for simulated devices)."""
  env = {k: str(v) for k, v in (env or {}).items()}
  if fresh_process or any(k in env for k in _PROCESS_ENV):
    return subprocess.run(
        [sys.executable, "-m", "flaxzoo.experiments.cli", *cli_args(args, plots)],
        capture_output=True, text=True, timeout=300, cwd=cwd,
        env={**os.environ, **env},
    )
  saved_env = {k: os.environ.get(k) for k in env}
  saved_cwd = os.getcwd()
  os.environ.update(env)
  try:
    if cwd is not None:
      os.chdir(cwd)
    return cli_main(*args, plots=plots)
  finally:
    os.chdir(saved_cwd)
    for k, v in saved_env.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v


def cli_main(*args, plots: bool = False) -> subprocess.CompletedProcess:
  """Runs `flaxzoo ARGS` in this process, through `main(argv)`, as the console script would: standard
  dtype promotion (the tests' strict mode is for our own code), an uncaught exception printed as a
  traceback with exit code 1. Returns the exit code, stdout and stderr like a subprocess."""
  import contextlib
  import io
  import signal
  import traceback

  from flaxzoo.experiments.cli import main

  handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}  # train installs its own
  out, err = io.StringIO(), io.StringIO()
  try:
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
         jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
      try:
        code = main(cli_args(args, plots))
      except SystemExit as e:  # argparse's usage errors and --help
        code = e.code or 0
      except Exception:  # noqa: BLE001 - what the console script would print
        err.write(traceback.format_exc())
        code = 1
  finally:
    for signum, handler in handlers.items():
      signal.signal(signum, handler)
  return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def one_line_error(result, *fragments) -> str:
  """Asserts that a CLI run failed with one `flaxzoo…error:` line holding `fragments`, and no traceback."""
  assert result.returncode in (1, 2), (result.returncode, result.stderr)  # an error, not a signal or a crash
  lines = result.stderr.strip().splitlines()
  assert lines and lines[-1].startswith("flaxzoo") and "error: " in lines[-1], result.stderr
  assert "Traceback" not in result.stderr, result.stderr
  for fragment in fragments:
    assert fragment in lines[-1], result.stderr
  return lines[-1]


class Compilations:
  """Counts the programs XLA compiles (or loads from the persistent cache) while it is open."""

  def __init__(self):
    self.count, self.active = 0, False
    jax.monitoring.register_event_duration_secs_listener(self._on_event)

  def _on_event(self, name, *_, **__):
    if self.active and name == "/jax/core/compile/backend_compile_duration":
      self.count += 1

  def __enter__(self):
    self.count, self.active = 0, True
    return self

  def __exit__(self, *_):
    self.active = False


COMPILATIONS = Compilations()


def logistic_objective(model, x, y, C):
  """scikit-learn's objective of LogisticRegression(C), divided by C n: mean log loss + |coef|² / (2 C n)."""
  scores = np.atleast_2d(x @ model.coef_.T + model.intercept_)
  if scores.shape[1] == 1:
    z = scores[:, 0]
    loss = np.mean(np.logaddexp(0, z) - (y == model.classes_[1]) * z)
  else:
    labels = np.searchsorted(model.classes_, y)
    loss = np.mean(np.logaddexp.reduce(scores, axis=1) - scores[np.arange(len(y)), labels])
  return loss + np.sum(model.coef_**2) / (2 * C * len(y))


# A prediction table of two people, as a user writes one.
PEOPLE = "id,GM Vol,WM Vol,CSF Vol,Total Vol,Age\nsub-1,716.28,425.44,493.752,1635.472,24\n" \
         "sub-2,542.256,395.496,633.312,1571.064,86\n"


def snapshot(folder: pathlib.Path) -> dict[str, bytes]:
  return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def trained(tmp_path_factory, data_dir):
  """A brain_age_gm workdir of 2000 steps, a checkpoint every 1000 (tests copy it before they change it)."""
  workdir = tmp_path_factory.mktemp("trained")
  result = run_cli("train", "brain_age_gm", "--steps", "2000", "--save-every", "1000", "--workdir", workdir,
                   "--data-dir", data_dir)
  assert result.returncode == 0, result.stderr
  return workdir
