"""A run's folder, owned: made by flaxzoo (a marker), used by one run at a time (a lock), and never
a file flaxzoo did not write overwritten, moved or deleted.

- The marker `.flaxzoo/workdir.json` says flaxzoo made the folder. A run starts
  only in a new or empty folder, or in one with the marker; a folder holding
  anything else is refused with one line.
- The lock `.flaxzoo/lock` (an OS lock, `filelock`: it dies with the process)
  is held for the whole run; `.flaxzoo/owner.json` names the holder, so a second
  run on the same folder gets one line with its pid. The processes of one
  multi-process run are one run: only process 0 takes the lock.
- What a new run or `--restart` replaces (results.json, eval.json, plots/,
  metrics.jsonl, tb/, checkpoints/) is moved aside to `NAME.old-<time>`, never
  overwritten; files are written through a temporary file and a rename.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import socket
import sys
import time
from typing import Any

from flaxzoo.checkpoints.files import write_atomic as write_atomic
from flaxzoo.checkpoints.files import write_json_atomic as write_json_atomic
from flaxzoo.datasets.loading import ensure_writable
from flaxzoo.datasets.tables import DataError
from flaxzoo.experiments.errors import ConfigError

STATE_DIR = ".flaxzoo"
MARKER = "workdir.json"
FORMAT = "flaxzoo-workdir/1"
# What a run writes at the top of its workdir, and what a new run moves aside.
OUTPUTS = ("results.json", "eval.json", "plots")
OWN_NAMES = ("checkpoints", "metrics.jsonl", "tb", STATE_DIR, "sweep.json", "best") + OUTPUTS


def prepare_workdir(workdir) -> pathlib.Path:
  """Creates `workdir` and checks that it can be written to, before any work."""
  try:
    return ensure_writable(workdir, "workdir")
  except DataError as e:
    raise ConfigError(str(e)) from None


# What `claim` and `WorkdirLock` put in a workdir's state folder before a run writes anything.
_STATE_FILES = (MARKER, "lock", "owner.json")


@contextlib.contextmanager
def removed_if_unused(workdir):
  """Runs the body; where it fails and `workdir` did not exist before, removes it again if all it holds is
  the state `claim` and the lock wrote (a run refused before its first output left an empty workdir)."""
  workdir = pathlib.Path(workdir)
  existed = workdir.exists() or workdir.is_symlink()
  try:
    yield
  except BaseException:
    if not existed and not workdir.is_symlink() and workdir.is_dir():
      entries = [p.name for p in workdir.iterdir()]
      state = workdir / STATE_DIR
      if entries == [STATE_DIR] and not state.is_symlink() and all(
          p.name in _STATE_FILES and p.is_file() and not p.is_symlink() for p in state.iterdir()):
        shutil.rmtree(workdir, ignore_errors=True)
    raise


def move_aside(path: pathlib.Path, label: str = "old") -> pathlib.Path:
  """Renames `path` to `<name>.<label>-<time>[-n]` beside it (never deletes); returns the new path."""
  stamp = time.strftime("%Y%m%d-%H%M%S")
  target = path.with_name(f"{path.name}.{label}-{stamp}")
  n = 1
  while target.exists() or target.is_symlink():
    target = path.with_name(f"{path.name}.{label}-{stamp}-{n}")
    n += 1
  path.rename(target)
  return target


def _is_own(name: str) -> bool:
  base = name.split(".old-")[0].split(".broken-")[0]
  return base in OWN_NAMES or name.startswith(".flaxzoo-write-test")


def check_no_links(workdir: pathlib.Path, names=OWN_NAMES) -> None:
  """flaxzoo reads and writes its own files of a workdir, never through a symbolic link."""
  for name in names:
    if (workdir / name).is_symlink():
      raise ConfigError(f"{workdir / name} is a symbolic link; flaxzoo does not read or write a workdir"
                        " through links (replace it with the folder or file itself)")
  checkpoints = workdir / "checkpoints"
  if checkpoints.is_dir():
    for entry in checkpoints.iterdir():
      if entry.is_symlink():
        raise ConfigError(f"{entry} is a symbolic link; flaxzoo does not read or write a workdir through links")


def claim(workdir) -> pathlib.Path:
  """Makes `workdir` flaxzoo's (a new or empty folder), or checks that it is; refuses any other folder."""
  workdir = prepare_workdir(workdir)
  state = workdir / STATE_DIR
  marker = state / MARKER
  if state.is_symlink() or marker.is_symlink():
    raise ConfigError(f"{state} is a symbolic link; not a workdir flaxzoo made")
  deadline = time.monotonic() + 2
  while state.is_dir() and not marker.is_file() and time.monotonic() < deadline:
    time.sleep(0.02)  # another run is claiming this folder right now: its marker follows at once
  if marker.is_file():
    try:
      data = json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
      data = None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
      raise ConfigError(f"{marker}: not a flaxzoo workdir marker; choose another --workdir")
  else:
    foreign = sorted(p.name for p in workdir.iterdir() if not p.name.startswith(".flaxzoo-write-test"))
    if foreign:
      shown = ", ".join(foreign[:3]) + (", …" if len(foreign) > 3 else "")
      raise ConfigError(f"{workdir} is not empty and flaxzoo did not make it (it holds {shown}); flaxzoo"
                        " never writes over files it did not write: choose a new or empty --workdir")
    state.mkdir(exist_ok=True)
    write_json_atomic(marker, {"format": FORMAT, "created": time.time()})
  check_no_links(workdir)
  return workdir


class WorkdirLock:
  """The exclusive lock of a workdir for one run's life (`with WorkdirLock(workdir): ...`)."""

  def __init__(self, workdir, role: str = "run", wait_s: float = 0):
    import filelock

    self.workdir = pathlib.Path(workdir)
    self.role, self.wait_s = role, wait_s
    self._owner = self.workdir / STATE_DIR / "owner.json"
    self._lock = filelock.FileLock(self.workdir / STATE_DIR / "lock", timeout=0)

  def __enter__(self) -> WorkdirLock:
    import filelock

    try:
      self._lock.acquire(timeout=self.wait_s)
    except filelock.Timeout:
      holder = self._holder()
      try:  # the previous run's plots, drawn in the background, take a moment: wait for them
        if holder.get("role") != "plots":
          raise filelock.Timeout(self._lock.lock_file)
        self._lock.acquire(timeout=60)
      except filelock.Timeout:
        who = f"pid {holder['pid']} on {holder['host']}" if "pid" in holder else "its pid is not recorded"
        raise ConfigError(f"{self.workdir} is in use by another flaxzoo run ({who}); wait for it to end, or"
                          " choose another --workdir") from None
    write_json_atomic(self._owner, {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                                    "role": self.role, "command": ["flaxzoo", *sys.argv[1:]]})
    return self

  def _holder(self) -> dict:
    deadline = time.monotonic() + 2  # the holder writes its record just after it takes the lock
    while True:
      try:
        owner = json.loads(self._owner.read_text())
        return {"pid": int(owner["pid"]), "host": str(owner["host"]), "role": owner.get("role")}
      except (OSError, ValueError, KeyError, TypeError, RecursionError):
        if time.monotonic() > deadline:
          return {}
        time.sleep(0.02)

  def __exit__(self, *exc) -> None:
    self._owner.unlink(missing_ok=True)
    self._lock.release()


def check_kind(workdir: pathlib.Path, meta: dict, kind: str) -> None:
  """ConfigError unless the checkpoint `meta` of `workdir` is of a `kind` ("run" or "sweep") run."""
  found = "sweep" if "sweep" in meta else "run"
  if found != kind:
    what = {"run": "a training run (flaxzoo train)", "sweep": "a sweep (flaxzoo sweep)"}
    raise ConfigError(f"{workdir} holds the checkpoints of {what[found]}, not of {what[kind]}; choose another"
                      " --workdir")


def set_aside_outputs(workdir: pathlib.Path, log) -> None:
  """A new run's outputs replace an earlier run's: those are moved aside, never overwritten."""
  for name in OUTPUTS:
    path = workdir / name
    if path.exists():
      log(f"moved the earlier {name} to {move_aside(path)}")


def check_same_data(workdir, meta: dict[str, Any], record: dict[str, Any], step: int) -> None:
  """A run resumes only on the data it was trained on, by content: the data file's sha256 now must be the
  one its checkpoint recorded (a run trained partly on each file would name only the second)."""
  saved, now = (meta.get("dataset") or {}).get("sha256"), record.get("sha256")
  if saved and now and saved != now:
    raise ConfigError(f"{workdir}: the data changed since the checkpoint of step {step} (sha256 {saved[:12]}…"
                      f" then, {now[:12]}… now): not the data this run trained on; restore it, or train on the"
                      " new data from the start (--restart, or another --workdir)")
