"""A run's checkpoints as `flaxzoo train` and `flaxzoo sweep` share them: resume, save, save when due, stop.

>>> session = RunSession(workdir, "run", log, keep=3, restart=False)
>>> resumed = session.resume(target, fallback=False)   # (step, state, meta), or None: a new run
>>> session.save(step, state, lambda: meta, metrics)   # at most once a step
>>> raise session.interrupted(step)                    # after the last save
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Callable
from typing import Any

from flaxzoo.checkpoints.manager import Checkpointer
from flaxzoo.experiments.errors import Interrupted
from flaxzoo.experiments.workdir import check_kind, move_aside

# Without --save-every, a checkpoint is saved at the first logged step this many seconds after the
# previous one, and at the end (a run of a few seconds saves once; SIGTERM/SIGINT save too).
SAVE_INTERVAL_S = 60.0


class RunSession:
  """The checkpoints of the run in `workdir` (`<workdir>/checkpoints`, Orbax), of `kind` `"run"` or `"sweep"`;
  `restart` moves earlier ones aside first (never deleted). Only a `writer` (process 0) moves or logs."""

  def __init__(self, workdir, kind: str, log: Callable[[str], None], *, keep: int | None, keep_best: str | None = None,
               async_save: bool = True, restart: bool = False, writer: bool = True, last_step: int | None = None):
    self.workdir, self.kind, self.log, self.writer = pathlib.Path(workdir), kind, log, writer
    self.directory = self.workdir / "checkpoints"
    self._options = {"keep": keep, "keep_best": keep_best, "async_save": async_save}
    if restart and self.directory.exists() and writer:
      log(f"--restart: moved the earlier checkpoints to {move_aside(self.directory)}")
    self.checkpointer = Checkpointer(self.directory, **self._options)
    self.last = {"time": time.monotonic(), "step": last_step}

  def resume(self, target, fallback: bool = False) -> tuple[int, Any, dict[str, Any]] | None:
    """`(step, state, meta)` of the latest complete checkpoint restored into `target` (an abstract state on
    this run's devices; `fallback`: the latest earlier one that restores), None where there is none. Later
    broken steps are moved aside (kept for inspection, out of Orbax's way): training saves them again."""
    checkpointer = self.checkpointer
    latest = checkpointer.latest_step()
    if latest is None:
      return None
    check_kind(self.workdir, checkpointer.restore_meta(latest), self.kind)
    step, (state, meta) = checkpointer.restore_with_fallback(latest, lambda s: checkpointer.restore(s, target),
                                                             fallback, self.log)
    broken = [s for s in checkpointer.steps() if s > step]
    if broken and self.writer:
      aside = self.directory.with_name(f"checkpoints.broken-{time.strftime('%Y%m%d-%H%M%S')}")
      aside.mkdir(exist_ok=True)
      for s in broken:
        (self.directory / str(s)).rename(aside / str(s))
      self.log(f"warning: moved the unusable checkpoint steps {broken} to {aside}")
      checkpointer.close()
      self.checkpointer = Checkpointer(self.directory, **self._options)
    return step, state, meta

  def saved(self, step: int) -> bool:
    """Whether `step` is saved already."""
    return self.last["step"] == step

  def save(self, step: int, state, meta: Callable[[], dict[str, Any]], metrics=None) -> None:
    """Saves `state` at `step` with `meta()` (built only when a save happens), once a step."""
    if self.saved(step):
      return
    self.checkpointer.save(step, state, meta(), metrics)
    self.last.update(time=time.monotonic(), step=step)

  def due(self) -> bool:
    """Whether `SAVE_INTERVAL_S` have passed since the last save (or the start)."""
    return time.monotonic() - self.last["time"] >= SAVE_INTERVAL_S

  def interrupted(self, step: int) -> Interrupted:
    """What to raise once the run stopped on request at `step` and saved it."""
    return Interrupted(step, self.directory / str(step))

  def close(self) -> None:
    self.checkpointer.close()
