"""Checkpoints in real subprocesses with real signals: exact resume, other device
counts, SIGTERM, eval from a checkpoint, and every kind of broken checkpoint."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import cli_args, run_cli

# ~1 µs a step on one CPU device: long enough to be killed at chosen moments.
LONG = ["--steps", "3000000", "--save-every", "500000", "--log-every", "100000", "--keep", "10"]
MINIBATCH = ["--steps", "300000", "--batch-size", "64", "--save-every", "50000", "--log-every", "10000", "--keep", "10"]
EIGHT = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}


def start(args, env=None):
  return subprocess.Popen([sys.executable, "-m", "flaxzoo.experiments.cli", *cli_args(args)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, **(env or {})})


def steps_saved(workdir) -> list[int]:
  directory = pathlib.Path(workdir) / "checkpoints"
  if not directory.is_dir():
    return []
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit() and (p / "commit_success.txt").exists())


def kill_after_save(args, workdir, step, data_dir):
  """Starts `flaxzoo train ARGS`, SIGKILLs it once checkpoint `step` is complete."""
  process = start(["train", *args, "--workdir", workdir, "--data-dir", data_dir])
  deadline = time.monotonic() + 120
  while step not in steps_saved(workdir) and process.poll() is None and time.monotonic() < deadline:
    time.sleep(0.005)
  process.kill()
  process.communicate()
  assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
  return max(steps_saved(workdir))


def params(workdir):
  return json.loads((pathlib.Path(workdir) / "results.json").read_text())["params"]


RUNS = {"long": ["brain_age_gm", *LONG], "minibatch": ["brain_age_tissue", *MINIBATCH]}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_dir):
  """`reference(name) -> params`: the run `RUNS[name]`, never interrupted (made once, when first asked)."""
  runs = {}

  def reference(name):
    if name not in runs:
      workdir = tmp_path_factory.mktemp(name)
      result = run_cli("train", *RUNS[name], "--workdir", workdir, "--data-dir", data_dir)
      assert result.returncode == 0, result.stderr
      runs[name] = params(workdir)
    return runs[name]

  return reference


@pytest.mark.parametrize("name, kill_at", [
    ("long", (500000, 1500000, 2500000)),
    # (mini-batches: in the slow selection, ~12 s with its reference; the default one resumes mini-batches in
    # test_resume_on_another_device_count)
    pytest.param("minibatch", (50000, 150000, 250000), marks=pytest.mark.slow),
])
def test_sigkill_at_three_moments_then_rerun_ends_bitwise_equal(name, kill_at, uninterrupted, tmp_path, data_dir):
  args = RUNS[name]
  reached = [kill_after_save(args, tmp_path, step, data_dir) for step in kill_at]
  assert reached == sorted(reached) and reached[0] >= kill_at[0]
  result = run_cli("train", *args, "--workdir", tmp_path, "--data-dir", data_dir)
  assert result.returncode == 0, result.stderr
  assert f"resuming from step {reached[-1]}" in result.stderr
  assert params(tmp_path) == uninterrupted(name)  # bitwise: the same float32 values


def interrupt_training(tmp_path, data_dir, signum) -> tuple[int, int]:
  """`(exit status, step saved)` of a long training run sent `signum` once it trains."""
  process = start(["train", "brain_age_gm", *LONG, "--workdir", tmp_path, "--data-dir", data_dir])
  while "steps of sgd" not in process.stderr.readline():
    assert process.poll() is None
  time.sleep(0.3)
  process.send_signal(signum)
  _, err = process.communicate(timeout=60)
  message = err.strip().splitlines()[-1]
  assert message.startswith("flaxzoo: interrupted at step ") and "rerun the same command to resume" in message
  step = int(message.split("interrupted at step ")[1].split(";")[0])
  assert step in steps_saved(tmp_path) and 0 < step < 3000000
  return process.returncode, step


def test_sigterm_saves_the_step_reached_and_exits_nonzero(uninterrupted, tmp_path, data_dir):
  code, step = interrupt_training(tmp_path, data_dir, signal.SIGTERM)
  assert code == 143
  assert not (tmp_path / "results.json").exists()
  result = run_cli("train", "brain_age_gm", *LONG, "--workdir", tmp_path, "--data-dir", data_dir)
  assert result.returncode == 0, result.stderr
  assert f"resuming from step {step}" in result.stderr
  assert params(tmp_path) == uninterrupted("long")


@pytest.mark.slow  # a training process signalled
def test_ctrl_c_saves_the_step_reached_and_exits_130(tmp_path, data_dir):
  assert interrupt_training(tmp_path, data_dir, signal.SIGINT)[0] == 130  # the shell's convention (SIGTERM: 143)


@pytest.mark.parametrize("first, second, expected", [
    ((EIGHT, []), ({}, []), 1),
    # (the other directions in the slow selection: three training processes each, 7-10 s)
    pytest.param((EIGHT, []), (EIGHT, ["--devices", "3"]), 3, marks=pytest.mark.slow),
    pytest.param(({}, []), (EIGHT, []), 8, marks=pytest.mark.slow),
], ids=["8-to-1", "8-to-3", "1-to-8"])
def test_resume_on_another_device_count(first, second, expected, tmp_path, data_dir):
  common = ["train", "brain_age_tissue", "--batch-size", "100", "--save-every", "500", "--data-dir", data_dir]
  (first_env, first_args), (second_env, second_args) = first, second
  assert run_cli(*common, *first_args, "--steps", "1000", "--workdir", tmp_path / "resumed",
                 env=first_env).returncode == 0
  result = run_cli(*common, *second_args, "--steps", "2000", "--workdir", tmp_path / "resumed", env=second_env)
  assert result.returncode == 0, result.stderr
  assert "resuming from step 1000" in result.stderr
  assert run_cli(*common, "--steps", "2000", "--workdir", tmp_path / "straight").returncode == 0
  resumed, straight = params(tmp_path / "resumed"), params(tmp_path / "straight")
  for key in straight:
    np.testing.assert_allclose(resumed[key], straight[key], atol=1e-5)
  devices = json.loads((tmp_path / "resumed" / "results.json").read_text())["devices"]["count"]
  assert devices == expected


@pytest.fixture(scope="module")
def kept_best(tmp_path_factory, data_dir):
  """A brain_age_gm workdir of 3000 steps, a checkpoint every 1000, the best by test MSE kept."""
  workdir = tmp_path_factory.mktemp("kept_best")
  result = run_cli("train", "brain_age_gm", "--steps", "3000", "--save-every", "1000", "--workdir", workdir,
                   "--data-dir", data_dir, "--keep-best", "test/mse")
  assert result.returncode == 0, result.stderr
  assert steps_saved(workdir) == [1000, 2000, 3000]
  return workdir


def test_eval_on_one_and_eight_devices_gives_the_same_metrics(kept_best, data_dir):
  one = run_cli("eval", "--workdir", kept_best, "--split", "all", "--devices", "1", "--data-dir", data_dir, env=EIGHT)
  assert one.returncode == 0, one.stderr
  first = json.loads((kept_best / "eval.json").read_text())
  eight = run_cli("eval", "--workdir", kept_best, "--split", "all", "--data-dir", data_dir, env=EIGHT)
  assert eight.returncode == 0, eight.stderr
  second = json.loads((kept_best / "eval.json").read_text())
  assert (first["devices"]["count"], second["devices"]["count"]) == (1, 8)
  assert first["step"] == second["step"] == 3000
  for split in ("train", "test"):
    for key in ("mse", "rmse", "mae", "r2"):  # label units (ages / 100)
      assert abs(first[split][key] - second[split][key]) <= 1e-6
    assert abs(first[split]["mae_years"] - second[split]["mae_years"]) <= 1e-4
  results = json.loads((kept_best / "results.json").read_text())
  assert abs(first["test"]["mse"] - results["test"]["mse"]) <= 1e-9
  assert "brain_age_gm at step 3000 on 8 device(s)" in eight.stdout


def test_eval_best_and_step(kept_best, data_dir):
  # Test MSE falls then rises on this run: the best by test/mse is not the last step.
  best = run_cli("eval", "--workdir", kept_best, "--best", "--data-dir", data_dir)
  assert best.returncode == 0, best.stderr
  metas = {s: json.loads((kept_best / "checkpoints" / str(s) / "meta" / "metadata").read_text())
           for s in steps_saved(kept_best)}
  expected = min(metas, key=lambda s: metas[s]["metrics"]["test"]["mse"])
  assert json.loads((kept_best / "eval.json").read_text())["step"] == expected
  assert run_cli("eval", "--workdir", kept_best, "--step", "2000", "--data-dir", data_dir).returncode == 0
  assert json.loads((kept_best / "eval.json").read_text())["step"] == 2000


def test_python_api_loads_a_trained_model_in_two_lines(kept_best, data_dir):
  from flaxzoo.experiments import load_trained

  trainer, meta = load_trained(kept_best, data_dir=data_dir)
  assert meta["step"] == 3000 and trainer.step == 3000
  model = trainer.model
  results = json.loads((kept_best / "results.json").read_text())
  np.testing.assert_array_equal(np.asarray(model.linear.kernel[...]), results["params"]["linear/kernel"])


def listing(path):
  return sorted(str(p.relative_to(path)) for p in pathlib.Path(path).rglob("*"))


def break_truncate(step_dir):
  for f in (step_dir / "state" / "d").iterdir():
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])


def break_delete(step_dir):
  for f in (step_dir / "state" / "d").iterdir():
    f.unlink()


def break_json(step_dir):
  (step_dir / "meta" / "metadata").write_text('{"config": {"name": "brain_age_gm", garbage')


def break_marker(step_dir):
  (step_dir / "commit_success.txt").unlink()


def break_model(step_dir, other):
  shutil.rmtree(step_dir)
  shutil.copytree(other, step_dir)
  meta = json.loads((step_dir / "meta" / "metadata").read_text())
  meta["config"]["features"] = "gm"  # the config says gm, the arrays are 3-feature
  (step_dir / "meta" / "metadata").write_text(json.dumps(meta))


@pytest.mark.parametrize("breaker, message", [
    (break_truncate, "is truncated or altered"),
    (break_delete, "is missing"),
    (break_json, "meta is not valid JSON"),
    (break_marker, "commit_success.txt is missing"),  # Orbax commits by rename; the seal names the file
    (break_model, "holds another model: params.linear.kernel.value: saved (3, 1), expected (1, 1)"),
], ids=["truncated-array", "deleted-array", "garbage-json", "no-commit-marker", "another-model"])
def test_broken_checkpoints_are_named_and_fallback_uses_the_previous_step(breaker, message, kept_best, tmp_path,
                                                                          data_dir):
  workdir = tmp_path / "run"
  shutil.copytree(kept_best, workdir)
  step_dir = workdir / "checkpoints" / "3000"
  if breaker is break_model:
    other = tmp_path / "other"
    assert run_cli("train", "brain_age_tissue", "--steps", "10", "--workdir", other,
                   "--data-dir", data_dir).returncode == 0
    breaker(step_dir, other / "checkpoints" / "10")
  else:
    breaker(step_dir)
  before = listing(workdir)

  for command in (["eval", "--step", "3000"], ["train", "brain_age_gm", "--steps", "4000", "--save-every", "1000"]):
    result = run_cli(*command, "--workdir", workdir, "--data-dir", data_dir)
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("flaxzoo: error: checkpoint step 3000") and message in line, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert listing(workdir) == before  # a failed run deletes nothing

  fallback = run_cli("eval", "--step", "3000", "--fallback", "--workdir", workdir, "--data-dir", data_dir)
  assert fallback.returncode == 0, fallback.stderr
  assert "warning: checkpoint step 3000" in fallback.stderr
  assert json.loads((workdir / "eval.json").read_text())["step"] == 2000


def test_resume_refuses_another_config_and_restart_moves_checkpoints_aside(kept_best, tmp_path, data_dir):
  workdir = tmp_path / "run"
  shutil.copytree(kept_best, workdir)
  result = run_cli("train", "brain_age_gm", "--lr", "0.1", "--batch-size", "50", "--workdir", workdir,
                   "--data-dir", data_dir)
  assert result.returncode == 2
  assert "holds a run of another config" in result.stderr
  assert "batch_size: checkpoint None, now 50" in result.stderr and "learning_rate: checkpoint 0.05, now 0.1" in result.stderr
  result = run_cli("train", "brain_age_gm", "--steps", "500", "--lr", "0.1", "--restart", "--workdir", workdir,
                   "--data-dir", data_dir)
  assert result.returncode == 0, result.stderr
  aside = [p for p in workdir.iterdir() if p.name.startswith("checkpoints.old-")]
  assert len(aside) == 1 and sorted(int(p.name) for p in aside[0].iterdir() if p.name.isdigit()) == [1000, 2000, 3000]
  assert steps_saved(workdir) == [500]


def test_training_longer_resumes_and_nothing_to_do_only_evaluates(kept_best, tmp_path, data_dir):
  workdir = tmp_path / "run"
  shutil.copytree(kept_best, workdir)
  result = run_cli("train", "brain_age_gm", "--steps", "3000", "--workdir", workdir, "--data-dir", data_dir)
  assert result.returncode == 0, result.stderr
  assert "nothing to train" in result.stderr
  assert json.loads((workdir / "results.json").read_text())["step"] == 3000


def test_a_config_from_another_version_is_a_clear_error(kept_best, tmp_path, data_dir):
  workdir = tmp_path / "run"
  shutil.copytree(kept_best, workdir)
  for step_dir in (workdir / "checkpoints").iterdir():
    meta_file = step_dir / "meta" / "metadata"
    meta = json.loads(meta_file.read_text())
    meta["config"]["dropout"] = 0.1  # a field this flaxzoo does not know
    meta_file.write_text(json.dumps(meta))
  result = run_cli("eval", "--workdir", workdir, "--data-dir", data_dir)
  assert result.returncode == 2
  assert "the checkpoint's config does not fit this flaxzoo" in result.stderr and "dropout" in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1, result.stderr
