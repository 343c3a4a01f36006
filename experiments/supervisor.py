"""A multi-process member run as a child of the `flaxzoo` CLI, so that a runtime abort is one line.

JAX's distributed runtime stops a process from C++ (an absl FATAL log line,
a C++ stack trace, SIGABRT) when the coordinator cannot be reached in time or
another process stops sending heartbeats. Python cannot catch that, so the
CLI runs a multi-process member as a child and turns such an end into one line.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

_WORKER_ENV = "FLAXZOO_DISTRIBUTED_WORKER"
_CPP_LOG_LINE = re.compile(r"^([FEWI])\d{4} [\d:.]+\s+\d+ \S+\] ")


def is_worker() -> bool:
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
  child = subprocess.Popen(
      [sys.executable, "-m", "flaxzoo.experiments.cli", *argv],
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
