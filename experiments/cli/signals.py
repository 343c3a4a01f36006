"""Signals in the `flaxzoo` command: SIGTERM unwinds as `Terminated`, and training stops at its next save point
on the first SIGINT or SIGTERM (`_StopFlag`)."""

from __future__ import annotations

import sys
import time


class Terminated(KeyboardInterrupt):
  """SIGTERM in a command that is not training: unwinds as KeyboardInterrupt does (temporary files and
  staging folders are removed on the way), then the command exits 143. A KeyboardInterrupt, so that an asyncio
  event loop passes it on: one raised in a loop's callback (Orbax's restore runs a loop) was logged and dropped
  with the callback's work, and the loop then waited forever (an export stopped in its restore hung)."""


# The signals' exceptions raised during the command (`main` clears it): one that a library caught and logged
# (tensorflow_datasets' import, stopped while it defined a class) still ends the command as its signal.
_raised: list[KeyboardInterrupt] = []


def _raise_terminated(signum, frame):
  _raised.append(Terminated())
  raise _raised[-1]


def signal_exit(error: KeyboardInterrupt) -> tuple[str, int]:
  """`(line, exit status)` of a command that SIGTERM (`Terminated`) or SIGINT stopped."""
  if isinstance(error, Terminated):
    return "flaxzoo: terminated (SIGTERM); nothing half-written is left", 143
  return "flaxzoo: interrupted", 130


_pending: list[type[BaseException]] = []


def _signal_again(unraisable) -> None:
  """`sys.unraisablehook`: a signal's exception raised where Python ignores exceptions (a garbage-collector
  callback, a `__del__`) is not lost: it is raised again 10 ms later (SIGALRM), in ordinary code."""
  import signal

  kind = unraisable.exc_type
  if kind is not None and issubclass(kind, KeyboardInterrupt):  # (Terminated too)
    _pending[:] = [kind]
    signal.setitimer(signal.ITIMER_REAL, 0.01)
    return
  sys.__unraisablehook__(unraisable)


def _raise_pending(signum, frame):
  if _pending:
    raise _pending.pop()()


class _StopFlag:
  """SIGTERM/SIGINT set a flag; training polls it, saves a checkpoint and stops (exit 128 + the signal)."""

  last = None  # the signal that stopped the run, for its exit status

  def __init__(self):
    import signal

    self.signal = None
    for signum in (signal.SIGTERM, signal.SIGINT):
      signal.signal(signum, self._handle)

  # The same signal again within this many seconds is the same request: `timeout` sends SIGTERM to the
  # command and then to its whole process group, and the second copy stopped the run before it saved.
  SAME_REQUEST_S = 1.0

  def _handle(self, signum, frame):

    if self.signal == signum and time.monotonic() - self.since < self.SAME_REQUEST_S:
      return
    if self.signal is not None:
      # A second signal: stop now, without waiting for the save in flight (Orbax commits a step by a
      # rename, so the last complete checkpoint stays) and without a traceback from its threads.
      import os

      print("flaxzoo: interrupted again: stopped at once; the last complete checkpoint is kept", file=sys.stderr,
            flush=True)
      os._exit(128 + signum)
    self.signal = _StopFlag.last = signum
    self.since = time.monotonic()

  def __call__(self) -> bool:
    return self.signal is not None


def _signal_in_chain(error: BaseException) -> BaseException | None:
  """The Terminated or KeyboardInterrupt that caused `error` (its causes and contexts), if one did; else the
  last Terminated raised during the command, if a library swallowed it on its way (`_raised`)."""
  seen = set()
  while error is not None and id(error) not in seen:
    if isinstance(error, KeyboardInterrupt):  # (Terminated too)
      return error
    seen.add(id(error))
    error = error.__cause__ or error.__context__
  return _raised[-1] if _raised else None
