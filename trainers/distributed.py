"""Several processes, one training run: `jax.distributed` on JAX's own runtime.

Every process calls `initialize` with its own `process_id`; process 0 also
hosts the coordinator at `coordinator` (`HOST:PORT`). Afterwards
`jax.devices()` lists every process's devices and a `mesh` Trainer spans them.
"""

from __future__ import annotations

import re

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
    raise RuntimeError(
        f"process {process_id} of {num_processes} could not join the run at {coordinator}"
        f" within {timeout_s} s ({first_line[:200]})"
    ) from None
