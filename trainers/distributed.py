"""Several processes, one training run: `jax.distributed` on JAX's own runtime.

Every process calls `initialize` with its own `process_id`; process 0 also
hosts the coordinator at `coordinator` (`HOST:PORT`). Afterwards
`jax.devices()` lists every process's devices and a `mesh` Trainer spans them.
"""

from __future__ import annotations

import re
import socket
import time

import jax


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
    raise ValueError(f"coordinator must be HOST:PORT, got {coordinator!r}")
  if num_processes < 1:
    raise ValueError(f"num_processes must be >= 1, got {num_processes}")
  if not 0 <= process_id < num_processes:
    raise ValueError(f"process_id must be in [0, {num_processes}), got {process_id}")
  deadline = time.monotonic() + timeout_s
  if process_id != 0:
    _wait_for_coordinator(coordinator, deadline, f"process {process_id} of {num_processes}", timeout_s)
  try:
    jax.distributed.initialize(
        coordinator_address=coordinator,
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=max(1, round(deadline - time.monotonic())),
        heartbeat_timeout_seconds=timeout_s,
    )
  except Exception as e:  # noqa: BLE001 - JAX raises XlaRuntimeError / RuntimeError variants.
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise RuntimeError(
        f"process {process_id} of {num_processes} could not join the run at {coordinator}"
        f" within {timeout_s} s ({first_line[:200]})"
    ) from None


def _wait_for_coordinator(coordinator: str, deadline: float, who: str, timeout_s: int) -> None:
  """Returns once `coordinator` accepts a TCP connection, or raises one line at `deadline`.

  JAX's own connect outlives a short `initialization_timeout` by several seconds
  (about 6 s past a 1 s timeout here) and then aborts from C++; a refused
  connection is known at once, so it is retried here until the deadline.
  """
  host, port = coordinator.rsplit(":", 1)
  reason = "no answer"
  while True:
    left = deadline - time.monotonic()
    try:
      with socket.create_connection((host.strip("[]"), int(port)), timeout=max(0.05, min(1.0, left))):
        return
    except OSError as e:
      reason = e.strerror or type(e).__name__
    if time.monotonic() + 0.05 >= deadline:
      raise RuntimeError(f"{who}: could not reach the coordinator at {coordinator} within {timeout_s} s ({reason})")
    time.sleep(0.05)
