"""`flaxzoo sweep`: sweep.json as specified, folds recomputable from their row ids, diverged settings never
best, resume after SIGKILL, refit; bad lists are one line."""

import json
import pathlib
import signal
import time

import numpy as np
import pytest
from conftest import run_cli
from test_checkpoints import start, steps_saved

from flaxzoo.datasets.sources import load_data
from flaxzoo.experiments.sweep import assign_folds, interval


def sweep_json(workdir) -> dict:
  return json.loads((pathlib.Path(workdir) / "sweep.json").read_text())


@pytest.fixture(scope="module")
def gm_sweep(tmp_path_factory, data_dir):
  workdir = tmp_path_factory.mktemp("gm_sweep")
  result = run_cli("sweep", "brain_age_gm", "--folds", "5", "--lr", "0.02,0.05", "--steps", "3000",
                   "--workdir", workdir, "--data-dir", data_dir)
  assert result.returncode == 0, result.stderr
  return workdir, result


def test_sweep_json_has_every_run_and_a_summary(gm_sweep):
  workdir, result = gm_sweep
  out = sweep_json(workdir)
  assert {"experiment", "grid", "metric", "runs", "summary", "best"} <= set(out)
  assert out["experiment"] == "brain_age_gm" and out["metric"] == "valid/mse" and out["folds"] == 5
  assert out["grid"] == {"learning_rate": [0.02, 0.05], "l2": [0.0], "seed": [13]}
  assert len(out["runs"]) == 10 and len(out["summary"]) == 2
  for run in out["runs"]:
    assert {"settings", "fold", "seed", "train_rows", "valid_rows", "train", "valid", "diverged"} <= set(run)
    assert not run["diverged"] and run["valid"]["count"] == len(run["valid_rows"])
  for row in out["summary"]:
    values = [r["valid"]["mae_years"] for r in out["runs"] if r["settings"] == row["settings"]]
    expected = interval(values)
    assert row["valid"]["mae_years"]["mean"] == pytest.approx(expected["mean"])
    assert row["valid"]["mae_years"]["std"] == pytest.approx(expected["std"])
    lo, hi = row["valid"]["mae_years"]["ci95"]
    assert [lo, hi] == pytest.approx(expected["ci95"])
    assert lo < row["valid"]["mae_years"]["mean"] < hi
  # 3000 steps at 0.05 get further than at 0.02 (the reference run's rate wins)
  assert out["best"]["settings"]["learning_rate"] == 0.05 and out["best"]["by"] == "valid/mse"
  assert "<- best" in result.stdout and "mae_years" in result.stdout


def test_folds_partition_the_training_rows_and_recompute_from_their_ids(gm_sweep, data_dir):
  out = sweep_json(gm_sweep[0])
  data = load_data("brain_age", features="gm", data_dir=data_dir)
  ids = data.rows_of("train")
  valid = [run["valid_rows"] for run in out["runs"] if run["settings"]["learning_rate"] == 0.02]
  assert sorted(sum(valid, [])) == sorted(ids.tolist())  # every training row held out exactly once
  assert not set(ids) & set(data.rows_of("test").tolist())  # the test split is never in a fold
  for run in out["runs"]:
    assert not set(run["train_rows"]) & set(run["valid_rows"])
    assert sorted(run["train_rows"] + run["valid_rows"]) == sorted(ids.tolist())
  # A held-out check: the validation MSE of one run, recomputed from its rows with a lone training
  run = out["runs"][7]
  x, y = data.splits["train"]
  position = {row: k for k, row in enumerate(ids.tolist())}
  train = np.asarray([position[r] for r in run["train_rows"]])
  valid = np.asarray([position[r] for r in run["valid_rows"]])
  import optax

  from flaxzoo.trainers import Trainer
  from flaxzoo.zoo import create_model

  trainer = Trainer(create_model("linear_regression", seed=13, init="reference", in_features=1),
                    optax.sgd(run["settings"]["learning_rate"]), "mse", parallel="none")
  trainer.fit((x[train], y[train]), steps=3000, final_metrics=False)
  assert trainer.evaluate((x[valid], y[valid]))["mse"] == pytest.approx(run["valid"]["mse"], rel=1e-5)


def test_stratified_folds_keep_the_class_shares():
  labels = np.repeat([0, 1, 2], [50, 30, 20])
  fold = assign_folds(labels, 5, seed=0, classification=True)
  for f in range(5):
    assert np.bincount(labels[fold == f], minlength=3).tolist() == [10, 6, 4]
  assert not np.array_equal(fold, assign_folds(labels, 5, seed=1, classification=True))


def test_a_diverged_setting_does_not_stop_the_sweep_and_is_never_best(tmp_path, data_dir):
  result = run_cli("sweep", "brain_age_gm", "--folds", "3", "--lr", "0.05,50", "--steps", "2000",
                   "--workdir", tmp_path, "--data-dir", data_dir)
  assert result.returncode == 0, result.stderr
  out = sweep_json(tmp_path)
  bad = [row for row in out["summary"] if row["settings"]["learning_rate"] == 50]
  assert bad[0]["diverged"] and bad[0]["valid"] is None
  assert all(r["diverged"] for r in out["runs"] if r["settings"]["learning_rate"] == 50)
  assert out["best"]["settings"]["learning_rate"] == 0.05
  assert "diverged" in result.stdout


LONG_SWEEP = ["sweep", "brain_age_group", "--folds", "3", "--lr", "0.5,1", "--steps", "60000", "--log-every",
              "3000", "--save-every", "12000"]


def kill_after_first_save(workdir, data_dir):
  process = start([*LONG_SWEEP, "--workdir", workdir, "--data-dir", data_dir])
  deadline = time.monotonic() + 120
  while not steps_saved(workdir) and process.poll() is None and time.monotonic() < deadline:
    time.sleep(0.005)
  process.kill()
  process.communicate()
  assert process.returncode == -signal.SIGKILL, "the sweep ended before it could be killed"
  assert 0 < max(steps_saved(workdir)) < 60000 and not (workdir / "sweep.json").exists()


@pytest.fixture(scope="module")
def whole_long_sweep(tmp_path_factory, data_dir):
  whole = tmp_path_factory.mktemp("whole")
  assert run_cli(*LONG_SWEEP, "--workdir", whole, "--data-dir", data_dir).returncode == 0
  return sweep_json(whole)


def test_a_sweep_killed_with_sigkill_resumes_to_the_same_sweep_json(whole_long_sweep, tmp_path, data_dir):
  killed = tmp_path / "killed"
  kill_after_first_save(killed, data_dir)
  result = run_cli(*LONG_SWEEP, "--workdir", killed, "--data-dir", data_dir)
  assert result.returncode == 0, result.stderr
  assert "resuming the sweep from step" in result.stderr
  assert sweep_json(killed) == whole_long_sweep


@pytest.mark.slow
def test_a_sweep_killed_on_one_device_resumes_on_eight(whole_long_sweep, tmp_path, data_dir):
  killed = tmp_path / "killed"
  kill_after_first_save(killed, data_dir)
  result = run_cli(*LONG_SWEEP, "--workdir", killed, "--data-dir", data_dir,
                   env={"XLA_FLAGS": "--xla_force_host_platform_device_count=8"})
  assert result.returncode == 0, result.stderr
  assert "resuming the sweep from step" in result.stderr and "8 cpu devices (mesh)" in result.stderr
  resumed = sweep_json(killed)
  assert len(resumed["runs"]) == len(whole_long_sweep["runs"]) == 6  # padded to 8 models on 8 devices, 6 saved
  for mine, theirs in zip(resumed["runs"], whole_long_sweep["runs"], strict=True):
    assert mine["valid_rows"] == theirs["valid_rows"]
    assert mine["valid"]["log_loss"] == pytest.approx(theirs["valid"]["log_loss"], rel=1e-5)


def test_refit_trains_the_best_setting_as_a_run(tmp_path, data_dir):
  result = run_cli("sweep", "brain_age_gm", "--folds", "3", "--lr", "0.01,0.05", "--steps", "1000", "--refit",
                   "--workdir", tmp_path, "--data-dir", data_dir)
  assert result.returncode == 0, result.stderr
  refit = json.loads((tmp_path / "best" / "results.json").read_text())
  assert refit["config"]["learning_rate"] == 0.05 and refit["step"] == 1000
  assert "test" in refit and "refit of the best setting" in result.stdout
  assert (tmp_path / "best" / "checkpoints").is_dir()


@pytest.mark.parametrize("args, message", [
    (["--lr", "0.1,,0.2"], "--lr: a comma-separated list"),
    (["--lr", "0.1,-1"], "--lr: must be > 0"),
    (["--seeds", "1,1"], "--seeds: a value is given twice"),
    (["--l2", "x"], "--l2: not a decimal number"),
    (["--folds", "1"], "--folds: must be between 2 and 1000"),
])
def test_bad_sweep_arguments_are_one_line(args, message, tmp_path):
  result = run_cli("sweep", "brain_age_gm", *args, "--workdir", tmp_path)
  assert result.returncode == 2
  assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_csv_sweep_names_the_files_rows_and_stratifies_its_folds(tmp_path):
  rng = np.random.default_rng(0)
  rows = 90
  a, b = rng.normal(size=rows), rng.normal(size=rows)
  label = np.where(a + b > 0.8, "high", np.where(a + b < -0.8, "low", "mid"))
  table = tmp_path / "data.csv"
  table.write_text("a,b,kind\n" + "".join(f"{x:.4f},{y:.4f},{k}\n" for x, y, k in zip(a, b, label, strict=True)))
  result = run_cli("sweep", "linear", "--dataset", f"csv:{table}", "--label", "kind", "--folds", "3", "--lr", "0.1,1",
                   "--steps", "200", "--workdir", tmp_path / "run")
  assert result.returncode == 0, result.stderr
  out = sweep_json(tmp_path / "run")
  assert out["task"] == "classification" and out["metric"] == "valid/log_loss" and len(out["runs"]) == 6
  data = load_data(f"csv:{table}", label="kind")
  train_ids, test_ids = data.rows_of("train").tolist(), data.rows_of("test").tolist()
  assert sorted(train_ids + test_ids) == list(range(rows))  # the file's own data rows
  folds = [r for r in out["runs"] if r["settings"]["learning_rate"] == 0.1]
  assert sorted(sum((r["valid_rows"] for r in folds), [])) == sorted(train_ids)
  for run in folds:  # stratified: each fold holds each class in proportion, within one row
    held = label[run["valid_rows"]]
    for kind in ("high", "low", "mid"):
      share = np.mean(label[train_ids] == kind) * len(run["valid_rows"])
      assert abs(np.sum(held == kind) - share) <= 1.5


def test_a_sweep_and_a_run_never_take_each_others_checkpoints(tmp_path, data_dir):
  run, sweep = tmp_path / "run", tmp_path / "sweep"
  assert run_cli("train", "brain_age_gm", "--steps", "10", "--workdir", run, "--data-dir", data_dir).returncode == 0
  assert run_cli("sweep", "brain_age_gm", "--steps", "10", "--folds", "2", "--workdir", sweep,
                 "--data-dir", data_dir).returncode == 0
  before = {p: p.read_bytes() for d in (run, sweep) for p in sorted(d.rglob("*")) if p.is_file()}
  into_run = run_cli("sweep", "brain_age_gm", "--steps", "10", "--workdir", run, "--data-dir", data_dir)
  into_sweep = run_cli("train", "brain_age_gm", "--steps", "10", "--workdir", sweep, "--data-dir", data_dir)
  assert into_run.returncode == into_sweep.returncode == 2
  assert "holds the checkpoints of a training run (flaxzoo train), not of a sweep" in into_run.stderr
  assert "holds the checkpoints of a sweep (flaxzoo sweep), not of a training run" in into_sweep.stderr
  assert len(into_run.stderr.strip().splitlines()) == len(into_sweep.stderr.strip().splitlines()) == 1
  after = {p: p.read_bytes() for d in (run, sweep) for p in sorted(d.rglob("*")) if p.is_file()
           if ".flaxzoo" not in p.parts}
  assert after == {p: b for p, b in before.items() if ".flaxzoo" not in p.parts}  # nothing written over or lost


def test_sigterm_through_timeout_saves_the_sweep_and_resumes(whole_long_sweep, tmp_path, data_dir):
  """`timeout` sends SIGTERM to the command and then to its whole process group: the second copy stopped the
  sweep "at once", before it saved. The same signal again within a second is the same request."""
  import subprocess
  import sys

  workdir = tmp_path / "sweep"
  command = [sys.executable, "-m", "flaxzoo.experiments.cli", *LONG_SWEEP, "--workdir", str(workdir),
             "--data-dir", str(data_dir)]
  process = subprocess.Popen(["timeout", "-s", "TERM", "600", *command], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
  deadline = time.monotonic() + 120
  while not steps_saved(workdir) and process.poll() is None and time.monotonic() < deadline:
    time.sleep(0.005)
  process.send_signal(signal.SIGTERM)  # to `timeout`, which passes it to the sweep and to the group
  _, err = process.communicate(timeout=120)
  assert process.returncode == 143, err
  assert "interrupted again" not in err
  step = int(err.strip().splitlines()[-1].split("interrupted at step ")[1].split(";")[0])
  assert step in steps_saved(workdir) and not (workdir / "sweep.json").exists()
  result = run_cli(*LONG_SWEEP, "--workdir", workdir, "--data-dir", data_dir)
  assert result.returncode == 0, result.stderr
  assert f"resuming the sweep from step {step}" in result.stderr
  assert sweep_json(workdir) == whole_long_sweep
