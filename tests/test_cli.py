"""`flaxzoo` end to end in fresh processes, and every bad input the CLI can get."""

import json
import pathlib
import shutil
import subprocess
import sys

import pytest
from conftest import made_by_flaxzoo, run_cli
from test_reference import assert_matches_reference


def test_train_writes_results_and_prints_the_table(data_dir, tmp_path):
  result = run_cli("train", "brain_age_gm", "--workdir", tmp_path / "run", "--data-dir", data_dir)
  assert result.returncode == 0, result.stderr
  results = json.loads((tmp_path / "run" / "results.json").read_text())
  assert_matches_reference(results, "brain_age_gm")
  for split in ("train", "test"):
    assert {"mse", "r2", "mae_years"} <= set(results[split])
    assert all(isinstance(results[split][k], float) for k in ("mse", "r2", "mae_years"))
  assert "train" in result.stdout and "0.00913" in result.stdout and "0.69809" in result.stdout
  assert "Traceback" not in result.stderr


def test_default_workdir_is_runs_experiment_and_overrides_apply(data_dir, tmp_path):
  result = run_cli("train", "brain_age_tissue", "--steps", "200", "--lr", "0.1", "--batch-size", "64",
                   "--seed", "3", "--quiet", "--data-dir", data_dir, cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  results = json.loads((tmp_path / "runs" / "brain_age_tissue" / "results.json").read_text())
  assert results["step"] == 200
  assert (results["config"]["learning_rate"], results["config"]["batch_size"], results["config"]["seed"]) == (0.1, 64, 3)
  assert len(results["params"]["linear/kernel"]) == 3


def test_data_dir_from_the_environment(data_dir, tmp_path):
  result = run_cli("train", "brain_age_gm", "--steps", "10", "--workdir", tmp_path,
                   env={"TFDS_DATA_DIR": str(data_dir)})
  assert result.returncode == 0, result.stderr
  assert not (tmp_path / "brain_age").exists()


def test_list_names_models_and_experiments():
  result = run_cli("list")
  assert result.returncode == 0, result.stderr
  for name in ("linear_regression", "logistic_regression", "softmax_regression", "brain_age_gm", "brain_age_tissue"):
    assert name in result.stdout


def test_help_and_list_import_no_jax():
  """They answer in ~0.06 s: a config's loss with a parameter (`huber:1.35`) is checked without JAX (regression
  test: `list` took 1.1 s, importing it through the losses' parser)."""
  code = ("import sys; from flaxzoo.experiments.cli import main\n"
          "for args in (['--help'], ['list']):\n"
          "  sys.argv = ['flaxzoo', *args]\n"
          "  try:\n    main()\n  except SystemExit:\n    pass\n"
          "print('jax' in sys.modules)")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
  assert result.returncode == 0 and result.stdout.strip().endswith("False"), (result.stdout[-500:], result.stderr)


def test_console_script_is_installed():
  # Installed beside the interpreter, as pip does in a virtualenv.
  script = shutil.which("flaxzoo", path=str(pathlib.Path(sys.executable).parent))
  assert script, f"no flaxzoo console script beside {sys.executable}"
  result = subprocess.run([script, "list"], capture_output=True, text=True, timeout=120)
  assert result.returncode == 0 and "brain_age_gm" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "brain_age_wm"], "unknown experiment 'brain_age_wm'; known: brain_age_gm, brain_age_gm_huber, brain_age_gm_lstsq, brain_age_gm_median, brain_age_group, brain_age_tissue, claims_poisson, linear, "),
        (["train", "brain_age_gm", "--steps", "0"], "argument --steps: must be between 1 and 2147483647, got 0"),
        (["train", "brain_age_gm", "--steps", "-3"], "argument --steps: must be between 1 and 2147483647, got -3"),
        (["train", "brain_age_gm", "--steps", "ten"], "argument --steps: not an integer: 'ten'"),
        (["train", "brain_age_gm", "--lr", "0"], "argument --lr: must be > 0 and finite, got 0"),
        (["train", "brain_age_gm", "--lr", "-0.05"], "argument --lr: must be > 0 and finite, got -0.05"),
        (["train", "brain_age_gm", "--batch-size", "0"], "argument --batch-size: must be between 1 and 2147483647, got 0"),
        (["fit", "brain_age_gm"], "invalid choice: 'fit'"),
    ],
    ids=["unknown-experiment", "steps-0", "steps-negative", "steps-text", "lr-0", "lr-negative", "batch-0",
         "unknown-command"],
)
def test_bad_arguments_exit_2_with_one_line_and_overwrite_nothing(args, message, tmp_path, data_dir):
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "results.json").write_text('{"earlier": "run"}')
  result = run_cli(*args, "--workdir", workdir, "--data-dir", data_dir)
  assert result.returncode == 2
  assert message in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1, result.stderr
  assert "Traceback" not in result.stderr
  assert (workdir / "results.json").read_text() == '{"earlier": "run"}'


def test_unwritable_data_dir_exits_2_and_keeps_earlier_results(tmp_path):
  blocker = tmp_path / "not-a-dir"
  blocker.write_text("x")
  workdir = made_by_flaxzoo(tmp_path / "run")
  (workdir / "results.json").write_text('{"earlier": "run"}')
  result = run_cli("train", "brain_age_gm", "--workdir", workdir, "--data-dir", blocker / "tfds")
  assert result.returncode == 2
  assert f"flaxzoo: error: data dir {blocker / 'tfds'} is not writable" in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1, result.stderr
  assert (workdir / "results.json").read_text() == '{"earlier": "run"}'


def test_unwritable_workdir_exits_2(tmp_path, data_dir):
  blocker = tmp_path / "not-a-dir"
  blocker.write_text("x")
  result = run_cli("train", "brain_age_gm", "--workdir", blocker / "run", "--data-dir", data_dir)
  assert result.returncode == 2
  assert f"flaxzoo: error: workdir {blocker / 'run'} is not writable" in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_main_in_process_leaves_the_callers_signal_handlers_and_mask_as_they_were():
  """A caller that runs main() in its own process gets its signal handlers and mask back unchanged (only the
  console script, which exits right after, ignores a late signal)."""
  import signal

  from flaxzoo.experiments.cli import main

  original = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # a caller holding SIGINT back itself
  try:
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)}
    assert main(["list"]) == 0
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before
    assert signal.SIGINT in before and signal.SIGTERM not in before
    assert {s: signal.getsignal(s) for s in handlers} == handlers
  finally:
    signal.pthread_sigmask(signal.SIG_SETMASK, original)
