"""Several processes, one training run: `jax.distributed` on JAX's own runtime.

Every process runs the same command with its own `--process-id`; process 0
also hosts the coordinator at `--coordinator HOST:PORT`. Afterwards
`jax.devices()` lists every process's devices and a `mesh` Trainer spans them.
"""

from __future__ import annotations

import re

import jax

from flaxzoo.trainers.config import ConfigError


def initialize(coordinator: str, num_processes: int, process_id: int, timeout_s: int = 60) -> None:
  """Joins this process to a multi-process run, or fails with one clear line.

  Args:
    coordinator: `HOST:PORT` of process 0.
    num_processes: how many processes take part, >= 1.
    process_id: this process's index, in `[0, num_processes)`.
    timeout_s: how long to wait for every process to connect, and how long
      a process that stops answering (crashed, killed) goes unnoticed before
      the others are stopped with an error instead of waiting forever.
  """
  if not re.fullmatch(r"[\w.\-]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5}", coordinator or ""):
    raise ConfigError(f"--coordinator must be HOST:PORT, got {coordinator!r}")
  if num_processes < 1:
    raise ConfigError(f"--num-processes must be >= 1, got {num_processes}")
  if not 0 <= process_id < num_processes:
    raise ConfigError(f"--process-id must be in [0, {num_processes}), got {process_id}")
  try:
    jax.distributed.initialize(
        coordinator_address=coordinator,
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=timeout_s,
        heartbeat_timeout_seconds=timeout_s,
    )
  except Exception as e:  # noqa: BLE001 - JAX raises XlaRuntimeError / RuntimeError variants.
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise ConfigError(
        f"process {process_id} of {num_processes} could not join the run at {coordinator}"
        f" within {timeout_s} s ({first_line[:200]})"
    ) from None


def is_main_process() -> bool:
  """Only process 0 writes files and prints results."""
  return jax.process_index() == 0


# JAX's distributed runtime stops a process from C++ (an absl FATAL log line,
# a C++ stack trace, SIGABRT) when the coordinator cannot be reached in time or
# another process stops sending heartbeats. Python cannot catch that, so the
# CLI runs a multi-process member as a child and turns such an end into one line.
_WORKER_ENV = "FLAXZOO_DISTRIBUTED_WORKER"
_CPP_LOG_LINE = re.compile(r"^([FEWI])\d{4} [\d:.]+\s+\d+ \S+\] ")


def is_worker() -> bool:
  import os

  return os.environ.get(_WORKER_ENV) == "1"


def _summarise(fatal_text: str, coordinator: str, timeout_s: int) -> str:
  status = fatal_text.split("absl::Status:", 1)[-1]
  status = status.split("RPC:", 1)[0].split("*** Check failure", 1)[0]
  status = " ".join(status.split())
  if "RegisterTask" in fatal_text or ("DEADLINE_EXCEEDED" in status and "heartbeat" not in status):
    return f"could not reach the coordinator at {coordinator} within {timeout_s} s ({status[:160]})"
  if "unhealthy" in status or "heartbeat" in status:
    return f"another process stopped answering for {timeout_s} s (crashed or killed): {status[:200]}"
  return f"the JAX distributed runtime stopped this process: {status[:240]}"


def run_supervised(argv: list[str], coordinator: str, process_id: int, num_processes: int, timeout_s: int) -> int:
  """Runs `flaxzoo ARGV` as a child; a runtime abort becomes one `flaxzoo: error:` line.

  The child's stdout passes through; its stderr too, up to JAX's fatal line,
  whose status is summarised instead of the C++ stack trace. SIGINT and
  SIGTERM are passed on to the child.
  """
  import os
  import signal
  import subprocess
  import sys

  child = subprocess.Popen(
      [sys.executable, "-m", "flaxzoo.trainers.cli", *argv],
      stderr=subprocess.PIPE, text=True, errors="replace",
      env={**os.environ, _WORKER_ENV: "1", "PYTHONUNBUFFERED": "1"},
  )
  for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, lambda s, _: child.send_signal(s))
  fatal = []
  for line in child.stderr:
    record = _CPP_LOG_LINE.match(line)
    if fatal or (record and record.group(1) == "F"):
      fatal.append(line)  # The fatal record, then its C++ stack trace.
    else:
      sys.stderr.write(line)
      sys.stderr.flush()
  returncode = child.wait()
  if returncode != 0 and fatal:
    summary = _summarise("".join(fatal), coordinator, timeout_s)
    print(f"flaxzoo: error: process {process_id} of {num_processes}: {summary}", file=sys.stderr)
    return 1
  return returncode if returncode >= 0 else 128 - returncode
