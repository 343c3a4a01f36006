"""Nothing silent: a careless user's tries that could hang, end in a traceback instead of one line, or have
valid files rejected. Each ends in a correct result or one `flaxzoo: error:` line with a non-zero exit, and
leaves every earlier file as it was. Data lost or overwritten, and wrong results with exit 0:
tests/test_nothing_lost.py.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import PEOPLE, cli_args, one_line_error, run_cli, snapshot

# --- hangs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["predict", "train"])
def test_a_fifo_is_refused_at_once(where, tmp_path):
  fifo = tmp_path / "pipe.csv"
  os.mkfifo(fifo)
  args = (["predict", "brain_age_gm", "--input", fifo] if where == "predict"
          else ["train", "linear", "--dataset", f"csv:{fifo}", "--label", "y", "--workdir", tmp_path / "w"])
  result = run_cli(*args, fresh_process=True)  # a regression would hang: a process has a timeout
  one_line_error(result, f"{fifo}: is a FIFO, not a regular file")


def test_sigterm_in_an_event_loops_callback_ends_the_loop():
  """SIGTERM raises `Terminated` wherever the main thread is; Orbax's restore runs an asyncio loop there. Raised
  in one of its callbacks, it must end the loop: a loop that logged it and dropped the callback's work waited
  forever (an export stopped in its restore hung, CI 2026-12-07)."""
  import asyncio

  from flaxzoo.experiments.cli.signals import Terminated

  loop = asyncio.new_event_loop()
  done = loop.create_future()

  def interrupted():  # the handler raises before the callback's work (here: never done)
    raise Terminated()

  loop.call_soon(interrupted)
  loop.call_later(2.0, done.cancel)  # (a loop that dropped it ends here, CancelledError: the test fails)
  try:
    with pytest.raises(Terminated):
      loop.run_until_complete(done)
  finally:
    loop.close()


def test_devices_and_directories_are_refused(tmp_path):
  one_line_error(run_cli("predict", "brain_age_gm", "--input", "/dev/zero"), "/dev/zero: is a device")
  one_line_error(run_cli("predict", "brain_age_gm", "--input", tmp_path), "is a directory, not a table")


def test_a_row_longer_than_the_field_limit_is_one_line(tmp_path):
  table = tmp_path / "long.csv"
  table.write_text("GM Vol,WM Vol,CSF Vol,Total Vol\n" + "1" * 200_000 + ",1,1,4\n")
  one_line_error(run_cli("predict", "brain_age_gm", "--input", table), "line 2: cannot be read as a table row")


# --- tracebacks instead of one line --------------------------------------------------------------------


def test_predict_output_failures_are_one_line_and_leave_nothing(tmp_path):
  people = tmp_path / "people.csv"
  people.write_text(PEOPLE)
  one_line_error(run_cli("predict", "brain_age_gm", "--input", people, "--output", tmp_path / "missing" / "o.csv"),
                 "No such file or directory")
  folder = tmp_path / "adir"
  folder.mkdir()
  one_line_error(run_cli("predict", "brain_age_gm", "--input", people, "--output", folder, "--force"))
  assert list(folder.iterdir()) == [] and not list(tmp_path.glob(".adir*"))


def test_eval_when_eval_json_cannot_be_written(trained, tmp_path, data_dir):
  workdir = tmp_path / "run"
  shutil.copytree(trained, workdir)
  (workdir / "eval.json").mkdir()
  one_line_error(run_cli("eval", "--workdir", workdir, "--data-dir", data_dir), "eval.json")


@pytest.mark.parametrize("flag, value", [("--split-seed", "-1"), ("--seed", str(2**64)), ("--seed", "-5"),
                                         ("--steps", str(2**31))])
def test_integer_flags_are_range_checked_when_parsed(flag, value, tmp_path):
  result = run_cli("train", "linear", "--dataset", "csv:x.csv", "--label", "y", flag, value, "--workdir", tmp_path)
  one_line_error(result, f"argument {flag}: must be between")
  assert result.returncode == 2


def nested(depth: int) -> str:
  return "[" * depth + "]" * depth


def test_hostile_cards_meta_and_logs_are_one_line(trained, tmp_path, data_dir):
  from flaxzoo.checkpoints.pretrained import weights_dir

  people = tmp_path / "people.csv"
  people.write_text(PEOPLE)
  cases = {
      "nested": lambda card: nested(100_000),
      "unknown-keys": lambda card: json.dumps({**card, "model": {**card["model"], "args": {"in_features": 1,
                                                                                           "dropout": 0.5}}}),
      "wrong-types": lambda card: json.dumps({**card, "model": "linear_regression"}),
      "bad-preprocessing": lambda card: json.dumps({**card, "preprocessing": {"name": "tissue_fractions",
                                                                              "params": {"features": "legs"}}}),
  }
  for name, make in cases.items():
    folder = tmp_path / name
    shutil.copytree(weights_dir() / "brain_age_gm", folder)
    card = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(make(card))
    one_line_error(run_cli("predict", folder, "--input", people), str(folder))
  workdir = tmp_path / "run"
  shutil.copytree(trained, workdir)
  (workdir / "metrics.jsonl").write_text(nested(100_000) + "\n{}\n")
  one_line_error(run_cli("plot", "--workdir", workdir, "--data-dir", data_dir), "metrics.jsonl, line 1")
  (workdir / "checkpoints" / "2000" / "meta" / "metadata").write_text(nested(100_000))
  one_line_error(run_cli("eval", "--workdir", workdir, "--data-dir", data_dir), "checkpoint step 2000")


def test_links_inside_a_workdir_are_refused_and_not_followed(trained, tmp_path, data_dir):
  workdir = tmp_path / "run"
  shutil.copytree(trained, workdir)
  outside = tmp_path / "outside"
  shutil.copytree(workdir / "checkpoints" / "2000", outside / "2000")
  (workdir / "checkpoints" / "3000").symlink_to(outside / "2000")
  before = snapshot(outside)
  for _ in range(2):  # Orbax's clean-up failed on every rerun before
    result = run_cli("train", "brain_age_gm", "--steps", "4000", "--workdir", workdir, "--data-dir", data_dir)
    one_line_error(result, "is a symbolic link")
  assert snapshot(outside) == before


def test_disk_full_is_one_line_and_the_rerun_resumes_to_the_uninterrupted_result(tmp_path, data_dir):
  mount = tmp_path / "small"
  mount.mkdir()
  if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=120k", "tmpfs", str(mount)],
                    capture_output=True).returncode != 0:
    pytest.skip("mounting a tmpfs is not permitted here (needs root): the disk-full case cannot be made")
  try:
    # 4000 steps, a save every 500 (each ~4 kB): 120 kB fill up by the second or third save.
    args = ["train", "brain_age_gm", "--steps", "4000", "--log-every", "100", "--save-every", "500", "--keep", "50",
            "--data-dir", data_dir]
    full = run_cli(*args, "--workdir", mount / "run", fresh_process=True)
    one_line_error(full, str(mount / "run"), "No space left on device while writing")
    kept = sorted(int(p.name) for p in (mount / "run" / "checkpoints").iterdir() if p.name.isdigit())
    assert kept and kept[-1] < 4000
    subprocess.run(["mount", "-o", "remount,size=20m", str(mount)], check=True)
    resumed = run_cli(*args, "--workdir", mount / "run")  # (a plain resume: in this process)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from step {kept[-1]}" in resumed.stderr
    whole = run_cli(*args, "--workdir", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    params = [json.loads((w / "results.json").read_text())["params"] for w in (mount / "run", tmp_path / "whole")]
    assert params[0] == params[1]
  finally:
    subprocess.run(["umount", str(mount)], capture_output=True)


def test_a_sigterm_that_a_library_swallowed_still_ends_the_command_as_sigterm():
  """SIGTERM during tensorflow_datasets' import (a class being defined): the import logged the signal's
  exception and went on half-done, and the command ended in an AttributeError's traceback, exit 1."""
  from flaxzoo.experiments.cli import signals

  signals._raised.clear()
  assert signals._signal_in_chain(AttributeError("module has no attribute 'core'")) is None
  with contextlib.suppress(signals.Terminated):  # (what the library did: logged it and went on)
    signals._raise_terminated(signal.SIGTERM, None)
  later = signals._signal_in_chain(AttributeError("module has no attribute 'core'"))
  assert signals.signal_exit(later) == ("flaxzoo: terminated (SIGTERM); nothing half-written is left", 143)
  signals._raised.clear()


def test_a_second_sigterm_ends_the_run_without_a_traceback(tmp_path, data_dir):
  workdir = tmp_path / "run"
  process = subprocess.Popen(
      [sys.executable, "-m", "flaxzoo.experiments.cli",
       *cli_args(["train", "brain_age_gm", "--steps", "3000000", "--save-every", "100000", "--workdir", workdir,
                  "--data-dir", data_dir])],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  deadline = time.monotonic() + 120
  while not (workdir / "checkpoints").exists() or not any(p.name.isdigit() for p in (workdir / "checkpoints").iterdir()):
    assert time.monotonic() < deadline and process.poll() is None
    time.sleep(0.05)
  process.send_signal(signal.SIGTERM)
  time.sleep(0.01)
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=120)
  assert process.returncode in (143, 128 + signal.SIGTERM), stderr
  assert "Traceback" not in stderr and "save_finalize" not in stderr, stderr
  # Whatever the second signal cut short, the complete steps restore: a rerun resumes.
  result = run_cli("eval", "--workdir", workdir, "--data-dir", data_dir)
  assert result.returncode == 0, result.stderr


# --- valid files rejected ------------------------------------------------------------------------------


def test_excel_csv_with_bom_crlf_quotes_blank_age_and_trailing_delimiter_is_read(tmp_path):
  table = tmp_path / "excel.csv"
  table.write_bytes(("\ufeff\"id\",\"GM Vol\",\"WM Vol\",\"CSF Vol\",\"Total Vol\",\"Age\",\r\n"
                     "\"sub 1, left\",716.28,425.44,493.752,1635.472,24,\r\n"
                     "sub-2,542.256,395.496,633.312,1571.064,,\r\n").encode())
  result = run_cli("predict", "brain_age_tissue", "--input", table)
  assert result.returncode == 0, result.stderr
  rows = [line for line in result.stdout.splitlines()]
  assert rows[0].startswith("id,predicted_age,age,brain_age_gap")
  assert rows[1].startswith('"sub 1, left",') and rows[2].startswith("sub-2,")
  assert rows[2].split(",")[2:5] == ["", "", ""]  # no age: no gap, and no error
  plain = tmp_path / "plain.tsv"
  plain.write_text("GM Vol\tWM Vol\tCSF Vol\tTotal Vol\n716.28\t425.44\t493.752\t1635.472\n")
  assert run_cli("predict", "brain_age_tissue", "--input", plain).stdout.splitlines()[1].split(",")[1] == \
      rows[1].split(",")[2]


def test_a_closed_pipe_ends_quietly(tmp_path):
  people = tmp_path / "people.csv"
  rows = "\n".join(f"{700 + i % 50},425.44,493.752,1700" for i in range(20_000))
  people.write_text(f"GM Vol,WM Vol,CSF Vol,Total Vol\n{rows}\n")  # ~0.8 MB of predictions: more than a pipe holds
  reader = subprocess.Popen([sys.executable, "-m", "flaxzoo.experiments.cli", "predict", "brain_age_gm", "--input",
                             str(people)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  assert reader.stdout.readline().startswith(b"id,predicted_age")
  reader.stdout.close()  # `flaxzoo predict ... | head -1`
  _, stderr = reader.communicate(timeout=120)
  assert reader.returncode == 141 and stderr == b"", stderr
