"""What flaxzoo believes of a table and a workdir, and what it leaves when it is stopped.

An output is created exclusively or replaced atomically, and a writer that loses the race is told; a signal
while a file is held reaches its handler at release, SIGTERM and SIGINT leave no temporary file; a table is
read by its own names and a workdir by what training recorded (not the data as it is now, nor a table a crafted
config names). What flaxzoo believes when it reads an export back: tests/test_trust.py.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import one_line_error, run_cli

from flaxzoo.checkpoints.files import hold_signals, open_atomic


def test_an_output_is_created_exclusively_and_a_writer_that_loses_the_race_is_told(tmp_path):
  target = tmp_path / "out.csv"
  with pytest.raises(FileExistsError), open_atomic(target, exclusive=True) as f:
    f.write(b"mine")
    target.write_text("theirs")  # another run created it meanwhile
  assert target.read_text() == "theirs" and sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]
  with open_atomic(target) as f:  # --force: replaced atomically
    f.write(b"mine")
  assert target.read_text() == "mine"


class Stop(Exception):
  pass


def test_a_signal_while_held_reaches_its_handler_at_release_and_a_temporary_file_never_outlives_it(tmp_path):
  """`hold_signals` (around making a temporary file and the `try` that removes it): a SIGTERM in between is
  noted, then raised by its handler at the release, inside the `try`; `open_atomic` leaves nothing then."""
  def stop(signum, frame):
    raise Stop(signum)

  previous = signal.signal(signal.SIGTERM, stop)
  try:
    release = hold_signals()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.05)  # (delivered: only noted)
    with pytest.raises(Stop):
      release()
    assert signal.getsignal(signal.SIGTERM) is stop
    with pytest.raises(Stop), open_atomic(tmp_path / "out.csv") as f:
      f.write(b"half")
      os.kill(os.getpid(), signal.SIGTERM)
      time.sleep(0.05)
    assert list(tmp_path.iterdir()) == []
  finally:
    signal.signal(signal.SIGTERM, previous)


def big_table(path: pathlib.Path, rows: int) -> None:
  rng = np.random.default_rng(0)
  gm, wm, csf = rng.uniform(500, 800, rows), rng.uniform(350, 500, rows), rng.uniform(300, 600, rows)
  body = "\n".join(f"{a:.3f},{b:.3f},{c:.3f},{a + b + c:.3f}" for a, b, c in zip(gm, wm, csf))
  path.write_text("GM Vol,WM Vol,CSF Vol,Total Vol\n" + body + "\n")


@pytest.mark.slow  # processes started and signalled
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_predict_leaves_no_temporary_file_and_exits_128_plus_it(tmp_path, signum, code):
  table = tmp_path / "big.csv"
  big_table(table, 300_000)
  out = tmp_path / "out.csv"
  process = subprocess.Popen([sys.executable, "-m", "flaxzoo.experiments.cli", "predict", "brain_age_tissue",
                              "--input", table, "--output", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
  time.sleep(2.5)
  process.send_signal(signum)
  _, stderr = process.communicate(timeout=120)
  assert "Traceback" not in stderr, stderr
  names = sorted(p.name for p in tmp_path.iterdir())
  if process.returncode == 0:  # it had finished: the whole output
    assert names == ["big.csv", "out.csv"] and len(out.read_text().splitlines()) == 300_001
  else:
    assert process.returncode == code, stderr
    assert names == ["big.csv"], names


def table_of(path: pathlib.Path, rows: int = 60, seed: int = 0, rare: bool = False) -> pathlib.Path:
  rng = np.random.default_rng(seed)
  a, b = rng.normal(size=rows), rng.normal(size=rows)
  labels = np.where(a + b > 0, "yes", "no").astype(object)
  if rare:
    labels[0] = "maybe"  # one row of a third class: a fold's training rows lack it
  path.write_text("a,b,y\n" + "".join(f"{u:.4f},{v:.4f},{t}\n" for u, v, t in zip(a, b, labels)))
  return path


def test_a_feature_named_twice_is_one_line(tmp_path):
  table = table_of(tmp_path / "t.csv")
  result = run_cli("train", "linear", "--dataset", f"csv:{table}", "--label", "y", "--features", "a,a",
                   "--workdir", tmp_path / "run")
  one_line_error(result, "--features names the column 'a' twice")


def test_resume_refuses_data_whose_contents_changed(tmp_path):
  table = table_of(tmp_path / "t.csv")
  run = ["train", "linear", "--dataset", f"csv:{table}", "--label", "y", "--workdir", tmp_path / "run"]
  assert run_cli(*run, "--steps", "50").returncode == 0
  table_of(table, seed=1)  # the same file name and shape, other rows
  one_line_error(run_cli(*run, "--steps", "100"), "the data changed since the checkpoint of step 50")
  sweep = ["sweep", "linear", "--dataset", f"csv:{table}", "--label", "y", "--folds", "2",
           "--workdir", tmp_path / "sweep"]
  assert run_cli(*sweep, "--steps", "20").returncode == 0
  table_of(table, seed=2)
  one_line_error(run_cli(*sweep, "--steps", "40"), "the data changed since the checkpoint of step 20")


def test_a_sweep_fold_without_a_class_is_warned_about(tmp_path):
  table = table_of(tmp_path / "t.csv", rare=True)
  result = run_cli("sweep", "linear", "--dataset", f"csv:{table}", "--label", "y", "--folds", "3", "--steps", "10",
                   "--workdir", tmp_path / "sweep")
  assert result.returncode == 0, result.stderr
  assert "training rows hold no row of class 'maybe'" in result.stderr


def test_predict_on_a_workdir_reads_what_training_recorded_not_the_data_as_it_is_now(tmp_path):
  table = table_of(tmp_path / "t.csv")
  workdir = tmp_path / "run"
  assert run_cli("train", "linear", "--dataset", "csv:t.csv", "--label", "y", "--workdir", workdir,
                 cwd=tmp_path).returncode == 0
  new = tmp_path / "new.csv"
  new.write_text("a,b\n0.5,-0.2\n-1.0,2.0\n")
  before = run_cli("predict", workdir, "--input", new)
  assert before.returncode == 0, before.stderr
  table_of(table, seed=3)  # the training file edited after training
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  after = run_cli("predict", workdir, "--input", new, cwd=elsewhere)  # and a relative data path that is not there
  assert after.returncode == 0, after.stderr
  assert after.stdout == before.stdout
  one_line_error(run_cli("eval", "--workdir", workdir, cwd=tmp_path), "the data changed since the checkpoint")


@pytest.mark.slow  # processes started and signalled
def test_two_predicts_on_one_output_one_wins_the_other_is_told(tmp_path):
  table = tmp_path / "big.csv"
  big_table(table, 100_000)
  out = tmp_path / "out.csv"
  command = [sys.executable, "-m", "flaxzoo.experiments.cli", "predict", "brain_age_tissue", "--input", str(table),
             "--output", str(out)]
  processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
  results = [(p.communicate(timeout=120)[1], p.returncode)[::-1] for p in processes]
  codes = sorted(code for code, _ in results)
  assert codes == [0, 2], results
  loser = next(err for code, err in results if code == 2)
  assert "Traceback" not in loser and ("was created meanwhile" in loser or "exists; pass --force" in loser), loser
  assert len(out.read_text().splitlines()) == 100_001  # the winner's, whole
  assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv", "out.csv"]  # no temporary file left


@pytest.mark.slow  # processes started and signalled
def test_sigterm_during_a_large_sweeps_set_up_exits_143_without_a_traceback(tmp_path):
  table = table_of(tmp_path / "t.csv", rows=200)
  grid = ",".join(f"{v:.6g}" for v in np.logspace(-6, 0, 1000))
  process = subprocess.Popen(
      [sys.executable, "-m", "flaxzoo.experiments.cli", "sweep", "linear", "--dataset", f"csv:{table}", "--label", "y",
       "--l2", grid, "--folds", "5", "--steps", "200000", "--workdir", str(tmp_path / "sweep")],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  time.sleep(3.0)
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=120)
  assert process.returncode == 143, stderr
  assert "Traceback" not in stderr, stderr


def test_a_crafted_config_naming_another_table_is_never_read_by_predict_and_not_echoed_by_eval(tmp_path):
  table = table_of(tmp_path / "t.csv")
  workdir = tmp_path / "run"
  assert run_cli("train", "linear", "--dataset", f"csv:{table}", "--label", "y", "--workdir", workdir).returncode == 0
  secret = tmp_path / "secret.csv"
  secret.write_text("password,hunter2\n1,2\n")
  for metadata in (workdir / "checkpoints").glob("*/meta/metadata"):  # the config made to name the secret
    meta = json.loads(metadata.read_text())
    meta["config"]["dataset"] = f"csv:{secret}"
    metadata.write_text(json.dumps(meta))
  new = tmp_path / "new.csv"
  new.write_text("a,b\n0.5,-0.2\n")
  result = run_cli("predict", workdir, "--input", new)
  assert result.returncode == 0 and "hunter2" not in result.stdout + result.stderr, result.stderr
  result = run_cli("eval", "--workdir", workdir)
  one_line_error(result, "the data changed since the checkpoint")
  assert "hunter2" not in result.stderr and "password" not in result.stderr


def test_a_workdir_whose_meta_lost_the_model_is_one_line(tmp_path):
  table = table_of(tmp_path / "t.csv")
  workdir = tmp_path / "run"
  assert run_cli("train", "linear", "--dataset", f"csv:{table}", "--label", "y", "--workdir", workdir).returncode == 0
  for metadata in (workdir / "checkpoints").glob("*/meta/metadata"):
    meta = json.loads(metadata.read_text())
    del meta["model"]["args"]["in_features"]
    metadata.write_text(json.dumps(meta))
  new = tmp_path / "new.csv"
  new.write_text("a,b\n0.5,-0.2\n")
  one_line_error(run_cli("predict", workdir, "--input", new), "its meta does not say the model")
