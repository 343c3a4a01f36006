"""Data-parallel training: the same parameters on 1 device or N, with pmap or a Mesh,
and on two processes over loopback. Devices are simulated CPUs, set up in each
test's own subprocess before jax is imported there."""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import parallel_worker
import pytest
from conftest import cli_args, run_cli
from test_reference import REFERENCE

WORKER = pathlib.Path(__file__).with_name("parallel_worker.py")
MODES = [("pmap", n) for n in (2, 3, 4, 8)] + [("mesh", n) for n in (2, 3, 4, 8)]


def run_worker(data_dir, runs, timeout=600):
  result = subprocess.run([sys.executable, str(WORKER), str(data_dir), json.dumps(runs)],
                          capture_output=True, text=True, timeout=timeout)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def assert_same_params(run, baseline, atol=1e-5):
  np.testing.assert_allclose(run["kernel"], baseline["kernel"], atol=atol, err_msg=str(run))
  np.testing.assert_allclose(run["bias"], baseline["bias"], atol=atol, err_msg=str(run))


def sweep(data_dir, steps, **extra):
  runs = []
  for features in ("gm", "tissue"):
    runs.append({"features": features, "steps": steps, "parallel": "none", **extra})
    runs += [{"features": features, "steps": steps, "parallel": mode, "devices": n, **extra} for mode, n in MODES]
  return run_worker(data_dir, runs)


def test_same_parameters_on_every_device_count_before_convergence(data_dir):
  results = sweep(data_dir, steps=200)
  for features in ("gm", "tissue"):
    baseline, *others = [r for r in results if r["features"] == features]
    assert baseline["mode"] == "none" and baseline["num_devices"] == 1
    assert len(others) == len(MODES)
    for run in others:
      assert (run["mode"], run["num_devices"]) == (run["parallel"], run["devices"])
      assert_same_params(run, baseline)
      # Evaluation on N devices: sums and counts across shards give the same metrics.
      for split in ("train", "test"):
        for key in ("mse", "r2", "mae_years"):
          np.testing.assert_allclose(run["metrics"][split][key], baseline["metrics"][split][key], rtol=1e-5)
      np.testing.assert_allclose(run["losses"], baseline["losses"], rtol=1e-5)
    # 200 steps is far from the optimum: this is not a converged comparison.
    assert baseline["metrics"]["train"]["mse"] > 2 * REFERENCE[f"brain_age_{features}"][0]


@pytest.mark.slow  # 34 runs of 15000 steps (70 s); the 200-step comparison above runs by default
def test_full_reference_jobs_match_on_every_device_count(data_dir):
  results = sweep(data_dir, steps=15000)
  for features in ("gm", "tissue"):
    baseline, *others = [r for r in results if r["features"] == features]
    train_mse, train_r2, _, test_mse, test_r2, test_mae = REFERENCE[f"brain_age_{features}"]
    for run in [baseline] + others:
      assert_same_params(run, baseline)
      m = run["metrics"]
      assert abs(m["train"]["mse"] - train_mse) <= 1e-5 and abs(m["train"]["r2"] - train_r2) <= 2e-4
      assert abs(m["test"]["mse"] - test_mse) <= 1e-5 and abs(m["test"]["r2"] - test_r2) <= 2e-4
      assert abs(m["test"]["mae_years"] - test_mae) <= 0.01


# (slow selection, 9-13 s: by default test_row_shuffling_is_the_same_on_a_mesh_of_any_size runs batches that do
# not divide 587 rows on 3 and 8 devices)
@pytest.mark.slow
def test_mini_batches_that_do_not_divide_by_the_device_count(data_dir):
  # 587 rows in batches of 100 (6 per epoch, the last of 87) on 3 and 8 devices,
  # and batches of 5, fewer examples than the 8 devices.
  runs = []
  for batch in (100, 5):
    runs.append({"features": "tissue", "steps": 150, "parallel": "none", "batch_size": batch, "log_every": 50})
    for mode in ("pmap", "mesh"):
      for n in (3, 8):
        runs.append({"features": "tissue", "steps": 150, "parallel": mode, "devices": n,
                     "batch_size": batch, "log_every": 50})
  results = run_worker(data_dir, runs)
  for batch in (100, 5):
    baseline, *others = [r for r in results if r["batch_size"] == batch]
    for run in others:
      assert_same_params(run, baseline)
      np.testing.assert_allclose(run["losses"], baseline["losses"], rtol=1e-5)
  full = run_worker(data_dir, [{"features": "tissue", "steps": 150, "parallel": "none"}])[0]
  assert np.abs(np.subtract(full["kernel"], results[0]["kernel"])).max() > 1e-4  # batches mattered


def test_row_shuffling_is_the_same_on_a_mesh_of_any_size(data_dir):
  runs = [{"features": "tissue", "steps": 120, "parallel": "none", "batch_size": 100, "shuffle": "rows",
           "log_every": 40}]
  runs += [{**runs[0], "parallel": "mesh", "devices": n} for n in (3, 8)]
  baseline, *others, blocks = run_worker(data_dir, runs + [{**runs[0], "shuffle": "blocks"}])
  for run in others:
    assert_same_params(run, baseline)
  assert np.abs(np.subtract(blocks["kernel"], baseline["kernel"])).max() > 1e-5  # another order


def test_logistic_l2_and_classification_metrics_match_on_every_device_count(data_dir):
  # 587 train / 65 test rows: padded on 3, 4 and 8 devices. Before convergence (300 steps).
  runs = [{"features": "tissue", "label": "age_group", "l2": 0.01, "steps": 300, "parallel": "none",
           "log_every": 100}]
  runs += [{**runs[0], "parallel": mode, "devices": n} for mode, n in (("pmap", 3), ("mesh", 4), ("mesh", 8))]
  baseline, *others = run_worker(data_dir, runs)
  for run in others:
    assert_same_params(run, baseline)
    np.testing.assert_allclose(run["losses"], baseline["losses"], rtol=1e-5)
    for split in ("train", "test"):
      got, want = run["metrics"][split], baseline["metrics"][split]
      assert got["confusion"] == want["confusion"] and got["count"] == want["count"]
      for key in ("accuracy", "balanced_accuracy", "log_loss", "roc_auc"):
        assert got[key] == pytest.approx(want[key], rel=1e-5), (run, key)
  assert sum(map(sum, baseline["metrics"]["test"]["confusion"])) == 65


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start(args, env):
  return subprocess.Popen([sys.executable, "-m", "flaxzoo.experiments.cli", *cli_args(args)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, **env}, start_new_session=True)


def finish(processes, budget_s):
  """Waits for all; past the budget every process group gets SIGKILL (JAX catches SIGTERM)."""
  deadline = time.monotonic() + budget_s
  outputs = []
  for p in processes:
    try:
      out, err = p.communicate(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
      for q in processes:
        if q.poll() is None:
          os.killpg(q.pid, signal.SIGKILL)
      pytest.fail(f"multi-process run still going after {budget_s} s; killed")
    outputs.append((p.returncode, out, err))
  return outputs


TWO_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}


def test_two_processes_on_loopback_end_with_the_single_process_parameters(data_dir, tmp_path):
  coordinator = f"127.0.0.1:{free_port()}"
  common = ["train", "brain_age_gm", "--steps", 2000, "--data-dir", data_dir, "--timeout", 60,
            "--coordinator", coordinator, "--num-processes", 2]
  # One workdir for both, as on a shared filesystem: Orbax writes checkpoints collectively.
  processes = [start(common + ["--process-id", i, "--workdir", tmp_path / "run"], TWO_DEVICES) for i in (0, 1)]
  (rc0, out0, err0), (rc1, out1, err1) = finish(processes, budget_s=240)
  assert rc0 == 0, err0[-2000:]
  assert rc1 == 0, err1[-2000:]
  assert "4 cpu devices over 2 processes (mesh)" in err0
  assert "results:" in out0 and "results:" not in out1  # only process 0 reports
  results = json.loads((tmp_path / "run" / "results.json").read_text())
  assert 2000 in [int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir()]
  assert results["devices"] == {"mode": "mesh", "count": 4, "processes": 2, "platform": "cpu"}
  single = parallel_worker.train(data_dir, {"features": "gm", "steps": 2000, "parallel": "none"})  # (one device)
  np.testing.assert_allclose(np.ravel(results["params"]["linear/kernel"]), single["kernel"], atol=1e-5)
  np.testing.assert_allclose(results["params"]["linear/bias"], single["bias"], atol=1e-5)
  assert abs(results["train"]["mse"] - single["metrics"]["train"]["mse"]) < 1e-7


def test_a_killed_process_stops_the_other_with_a_clear_error(data_dir, tmp_path):
  coordinator = f"127.0.0.1:{free_port()}"
  common = ["train", "brain_age_gm", "--steps", 50_000_000, "--log-every", 10_000_000, "--data-dir", data_dir,
            "--timeout", 5, "--coordinator", coordinator, "--num-processes", 2, "--workdir", tmp_path]
  survivor = start(common + ["--process-id", 0], TWO_DEVICES)
  victim = start(common + ["--process-id", 1], TWO_DEVICES)
  # Wait until training has started (process 0 says where it runs), then SIGKILL process 1.
  started = time.monotonic()
  line = ""
  while "over 2 processes" not in line and time.monotonic() - started < 120:
    line = survivor.stderr.readline()
  assert "over 2 processes" in line
  time.sleep(1)
  os.killpg(victim.pid, signal.SIGKILL)
  killed_at = time.monotonic()
  (rc, _, err), = finish([survivor], budget_s=90)
  victim.communicate()
  assert rc != 0
  assert time.monotonic() - killed_at < 60
  last = err.strip().splitlines()[-1]
  assert last.startswith("flaxzoo: error: process 0 of 2: another process stopped answering"), err[-2000:]
  assert "Check failure stack trace" not in err
  assert not (tmp_path / "results.json").exists()


def test_unreachable_coordinator_is_a_clear_error_in_bounded_time(tmp_path, data_dir):
  started = time.monotonic()
  (rc, _, err), = finish([start(["train", "brain_age_gm", "--steps", 10, "--data-dir", data_dir,
                                 "--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", 2,
                                 "--process-id", 1, "--timeout", 1, "--workdir", tmp_path], TWO_DEVICES)],
                         budget_s=90)
  assert rc != 0
  # Start-up plus the 1 s asked, not JAX's own connect (6 s past its timeout): refused connections are retried.
  assert time.monotonic() - started < 30
  assert err.strip().splitlines()[-1].startswith("flaxzoo: error: process 1 of 2: could not reach the coordinator at 127.0.0.1:")
  assert "within 1 s (Connection refused)" in err  # refused by the port itself, not JAX's deadline
  assert "Check failure stack trace" not in err


def test_a_member_waits_for_a_coordinator_that_opens_its_port_late():
  from flaxzoo.trainers import distributed

  with socket.socket() as server:
    server.bind(("127.0.0.1", 0))
    address = f"127.0.0.1:{server.getsockname()[1]}"
    threading.Timer(0.5, server.listen).start()  # (refused until then)
    started = time.monotonic()
    distributed._wait_for_coordinator(address, started + 30, "process 1 of 2", 30)
    assert 0.4 < time.monotonic() - started < 30
  with pytest.raises(RuntimeError, match=r"^process 1 of 2: could not reach the coordinator at .* within 1 s \("):
    distributed._wait_for_coordinator(address, time.monotonic() + 1, "process 1 of 2", 1)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--devices", "9"], "devices=9: only 8 cpu device(s) available"),
        (["--devices", "0"], "argument --devices: must be between 1 and 2147483647, got 0"),
        (["--devices", "-2"], "argument --devices: must be between 1 and 2147483647, got -2"),
        (["--parallel", "tpu"], "argument --parallel: invalid choice: 'tpu'"),
        (["--coordinator", "127.0.0.1:1"], "needs --coordinator, --num-processes and --process-id together"),
        (["--coordinator", "nohost", "--num-processes", "2", "--process-id", "0"], "--coordinator must be HOST:PORT, got 'nohost'"),
        (["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "2"], "--process-id must be in [0, 2), got 2"),
    ],
    ids=["too-many", "zero", "negative", "bad-mode", "partial-multi", "bad-address", "bad-process-id"],
)
def test_bad_parallel_arguments(args, message, data_dir, tmp_path):
  result = run_cli("train", "brain_age_gm", "--steps", "10", "--data-dir", data_dir, "--workdir", tmp_path, *args,
                   env={"XLA_FLAGS": "--xla_force_host_platform_device_count=8"})
  assert result.returncode == 2, result.stderr
  assert message in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_cli_runs_data_parallel_by_default_on_many_devices(data_dir, tmp_path):
  result = run_cli("train", "brain_age_tissue", "--steps", "300", "--batch-size", "50", "--data-dir", data_dir,
                   "--workdir", tmp_path, env={"XLA_FLAGS": "--xla_force_host_platform_device_count=3"})
  assert result.returncode == 0, result.stderr
  assert "on 3 cpu devices (mesh)" in result.stderr
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["devices"]["mode"] == "mesh" and results["devices"]["count"] == 3
