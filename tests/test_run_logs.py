"""Watching a run: metrics.jsonl and TensorBoard across a kill and a resume,
plots, progress output on a terminal and off it, --quiet."""

import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import run_cli
from test_checkpoints import kill_after_save

from flaxzoo.experiments.metric_log import read_metrics, scalars

# ~1 µs a step: 30 logged steps, a checkpoint every 500000.
LONG = ["brain_age_gm", "--steps", "3000000", "--save-every", "500000", "--log-every", "100000", "--keep", "10"]


def tensorboard_scalars(logdir):
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

  events = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
  events.Reload()
  return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_metrics_after_a_kill_and_a_resume_have_each_step_once_and_match_tensorboard(tmp_path, data_dir):
  reference = tmp_path / "reference"
  assert run_cli("train", *LONG, "--workdir", reference, "--data-dir", data_dir).returncode == 0
  run = tmp_path / "run"
  resumed_from = kill_after_save(LONG, run, 1500000, data_dir)
  logged_before_kill = [r["step"] for r in read_metrics(run)]
  assert logged_before_kill[-1] >= resumed_from  # a kill leaves records past the checkpoint
  result = run_cli("train", *LONG, "--workdir", run, "--data-dir", data_dir)
  assert result.returncode == 0, result.stderr
  assert f"resuming from step {resumed_from}" in result.stderr

  records, expected = read_metrics(run), read_metrics(reference)
  assert [r["step"] for r in records] == list(range(100000, 3000001, 100000))
  for got, want in zip(records, expected):  # the same values as the run that was never killed
    assert got["loss"] == want["loss"] and got["test"] == want["test"] and got["train"] == want["train"]
    assert got["learning_rate"] == 0.05 and got["time"] > 0
  # TensorBoard shows the same scalars, once per step (the resumed writer purged the rest).
  events = tensorboard_scalars(run / "tb")
  assert set(events) == set(scalars(records[0]))
  for tag, points in events.items():
    want = [(r["step"], scalars(r)[tag]) for r in records]
    assert [s for s, _ in points] == [s for s, _ in want], tag
    np.testing.assert_allclose([v for _, v in points], [v for _, v in want], rtol=1e-6, err_msg=tag)


def png_size(path):
  data = path.read_bytes()
  assert data[:8] == b"\x89PNG\r\n\x1a\n"
  return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("experiment, pictures", [
    ("brain_age_tissue", ["loss", "predicted_vs_true", "brain_age_gap"]),
    ("brain_age_group", ["loss", "roc", "confusion"]),
])
def test_plot_writes_the_pictures_of_the_task(experiment, pictures, tmp_path, data_dir):
  workdir = tmp_path / "run"
  trained = run_cli("train", experiment, "--steps", "2000", "--log-every", "200", "--workdir", workdir,
                    "--data-dir", data_dir)
  assert trained.returncode == 0, trained.stderr
  assert not (workdir / "plots").exists()
  out = tmp_path / "pictures"
  result = run_cli("plot", "--workdir", workdir, "--out", out, "--data-dir", data_dir)
  assert result.returncode == 0, result.stderr
  assert sorted(p.stem for p in out.iterdir()) == sorted(pictures)
  for picture in pictures:
    path = out / f"{picture}.png"
    assert path.stat().st_size > 10_000 and png_size(path) == (640, 480), picture


PLOTS = ["brain_age_gap.png", "loss.png", "predicted_vs_true.png"]


def test_train_plots_by_default_in_the_background(tmp_path, data_dir):
  result = run_cli("train", "brain_age_gm", "--steps", "1000", "--log-every", "500", "--workdir", tmp_path,
                   "--data-dir", data_dir, plots=True)
  assert result.returncode == 0, result.stderr
  assert f"plots: being drawn into {tmp_path / 'plots'} in the background" in result.stderr
  done = tmp_path / ".flaxzoo" / "plots.log"  # the worker's last word
  deadline = time.monotonic() + 120
  while not done.exists():
    assert time.monotonic() < deadline, "no plots after 120 s"
    time.sleep(0.1)
  assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == PLOTS, done.read_text()
  assert not (tmp_path / ".flaxzoo" / "plot_inputs.npz").exists()
  # A run right after it waits for the worker's lock instead of failing.
  again = run_cli("train", "brain_age_gm", "--steps", "1500", "--log-every", "500", "--workdir", tmp_path,
                  "--data-dir", data_dir, "--wait-for-plots", plots=True)
  assert again.returncode == 0, again.stderr
  assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == PLOTS


def test_plot_of_a_workdir_without_metrics_is_a_clear_error(tmp_path):
  result = run_cli("plot", "--workdir", tmp_path)
  assert result.returncode == 2
  assert result.stderr == f"flaxzoo: error: {tmp_path}/metrics.jsonl: no such file (metrics are written by `flaxzoo train`)\n"


TABLE = re.compile(r"^(brain_age_gm after \d+ steps:|  split .*|  (train|test) .*|results: .*)$")


def test_quiet_prints_only_the_final_table(tmp_path, data_dir):
  result = run_cli("train", "brain_age_gm", "--steps", "3000", "--workdir", tmp_path, "--data-dir", data_dir,
                   "--quiet")
  assert result.returncode == 0 and result.stderr == ""
  lines = result.stdout.splitlines()
  assert len(lines) == 5 and all(TABLE.match(line) for line in lines), lines


def test_output_off_a_terminal_is_plain_lines(tmp_path, data_dir):
  result = run_cli("train", "brain_age_gm", "--steps", "3000", "--log-every", "100", "--workdir", tmp_path,
                   "--data-dir", data_dir)
  assert result.returncode == 0
  text = result.stdout + result.stderr
  assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", text)  # no \r, no escape sequences
  progress = [line for line in result.stderr.splitlines() if "steps/s" in line]
  assert progress and progress[-1].startswith("brain_age_gm: step 3000/3000 (100%), loss ")
  assert len(progress) <= 11  # every 10%, not every logged step


def test_a_terminal_gets_a_progress_bar(tmp_path, data_dir):
  main, child = pty.openpty()
  process = subprocess.Popen(
      [sys.executable, "-m", "flaxzoo.experiments.cli", "train", "brain_age_gm", "--steps", "3000", "--workdir",
       str(tmp_path), "--data-dir", str(data_dir), "--no-plots"],
      stdin=child, stdout=child, stderr=child, env={**os.environ, "COLUMNS": "120"})
  os.close(child)
  output = b""
  while True:
    ready, _, _ = select.select([main], [], [], 120)
    if not ready:
      process.send_signal(signal.SIGKILL)
      break
    try:
      chunk = os.read(main, 4096)
    except OSError:  # the child closed the terminal
      break
    if not chunk:
      break
    output += chunk
  assert process.wait(timeout=60) == 0
  text = output.decode(errors="replace")
  assert "\r" in text and "3000/3000" in text and "steps/s" in text and "loss=" in text
  assert "brain_age_gm after 3000 steps:" in text


def test_event_files_are_valid_tfrecords_that_tensorboard_reads(tmp_path):
  from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

  from flaxzoo.experiments.tensorboard_events import EventFile, crc32c

  assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
  events = EventFile(tmp_path, ".test", restart_step=7)
  events.add_scalars(7, {"loss": 0.25, "test/r2": -1.5}, wall_time=1234.5)
  events.add_scalars(2**40, {"loss": 3.0})
  events.close()
  read = list(LegacyEventFileLoader(events.path).Load())  # as written, not migrated
  assert read[0].file_version == "brain.Event:2"
  assert read[1].step == 7 and read[1].session_log.status == 1  # START: a restart at step 7
  assert read[2].step == 7 and read[2].wall_time == 1234.5
  assert {v.tag: v.simple_value for v in read[2].summary.value} == {"loss": 0.25, "test/r2": -1.5}
  assert read[3].step == 2**40 and read[3].summary.value[0].simple_value == 3.0
