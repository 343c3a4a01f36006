"""Exporting trained parameters as a pretrained checkpoint: `params/` + `card.json` + `README.md` +
`manifest.json` (every file's size and sha256, checked when the export is loaded).

The export is built in a staging folder of flaxzoo's own beside the target (`.NAME.flaxzoo-export-*`,
a name no user folder has), then put in place by one rename; `force` replaces an earlier export by an
atomic exchange of the two folders (Linux `renameat2(RENAME_EXCHANGE)`), so that at every instant `NAME/`
is one complete export, the old or the new. An interrupted export (SIGTERM, SIGINT, an error) removes its
staging folder; one killed outright (SIGKILL) leaves it, and the next export of that name removes it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import pathlib
import shutil
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from flax import nnx

from flaxzoo.checkpoints.card import CARD, readme
from flaxzoo.checkpoints.errors import CheckpointError
from flaxzoo.checkpoints.files import hold_signals, make_temp_folder, write_atomic, write_json_atomic
from flaxzoo.checkpoints.manager import all_finite
from flaxzoo.checkpoints.manifest import write_manifest

# In a staging folder while it is being built: who builds it (a pid).
BUILDING = ".flaxzoo-building.json"


def check_name(name: str) -> None:
  if not name or "/" in name or "\\" in name or ".." in name or name.startswith("."):
    raise ValueError(f"name must be a plain folder name, got {name!r}")


def staging_prefix(name: str) -> str:
  return f".{name}.flaxzoo-export-"


def export(model: nnx.Module, card: Mapping[str, Any], out, *, force: bool = False) -> pathlib.Path:
  """Writes `<out>/<card["name"]>/`: `params/` (Orbax, parameters only), `card.json`, `README.md`, `manifest.json`.

  `force` replaces an earlier export (a folder with a card.json), never any other folder or a link.
  """
  name = card["name"]
  check_name(name)
  out = pathlib.Path(out)
  target = out / name
  if target.is_symlink() or target.exists():
    if not force:
      raise CheckpointError(f"{target} exists; pass force=True to replace it")
    if target.is_symlink() or not target.is_dir() or not (target / CARD).is_file():
      raise CheckpointError(f"{target} exists and is not an earlier export (no {CARD}); not replacing it")
  params = jax.tree.map(np.asarray, nnx.split(model, nnx.Param, ...)[1])
  if not all_finite(params):
    raise CheckpointError(f"{name}: the parameters are not all finite (a diverged run); not exported")
  out.mkdir(parents=True, exist_ok=True)
  remove_leftovers(out, name)
  # Signals are held from before the staging folder exists until after it is gone: one arriving meanwhile
  # stops the export at the next step and passes on once the folder is removed. (Held only around making and
  # removing it, a SIGTERM at the start of the `finally` left a staging folder: CI saw it.)
  release = hold_signals()
  stopped = False
  try:
    staging = make_temp_folder(out, staging_prefix(name))
    try:
      _stop_if_signalled(release)
      import orbax.checkpoint as ocp

      write_json_atomic(staging / BUILDING, {"pid": os.getpid()})
      with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save((staging / "params").absolute(), params)
      _stop_if_signalled(release)
      write_json_atomic(staging / CARD, dict(card))
      write_atomic(staging / "README.md", readme(card))
      (staging / BUILDING).unlink()
      write_manifest(staging)
      _stop_if_signalled(release)
      if target.is_dir() and not target.is_symlink():
        _exchange(staging, target)  # staging now holds the earlier export
      else:
        staging.rename(target)  # fails if a folder appeared there meanwhile: nothing is replaced
    finally:
      shutil.rmtree(staging, ignore_errors=True)
  except _Stopped:
    stopped = True
  finally:
    release()  # passes a held signal on (the CLI's handler raises; the default action ends the process)
  if stopped:
    raise CheckpointError(f"{target}: the export was stopped by a signal; nothing was replaced")
  return target


class _Stopped(Exception):
  """A signal held during an export: it stops there, and the signal passes on after the clean-up."""


def _stop_if_signalled(release) -> None:
  if release.noted:
    raise _Stopped


def remove_leftovers(out: pathlib.Path, name: str) -> None:
  """Removes what earlier exports of `name` killed outright left: folders of flaxzoo's own staging names
  (`mkdtemp`'s, no user's), unless a process still running is building one."""
  import json

  for path in out.glob(f"{staging_prefix(name)}*"):
    if path.is_symlink() or not path.is_dir():
      continue
    try:
      os.kill(int(json.loads((path / BUILDING).read_text())["pid"]), 0)
      continue  # another export is building it now
    except PermissionError:
      continue  # a running process of another user's
    except (OSError, ValueError, KeyError, TypeError):
      pass  # no such file or no such process: a leftover
    shutil.rmtree(path, ignore_errors=True)


def _exchange(a: pathlib.Path, b: pathlib.Path) -> None:
  """Swaps folders `a` and `b` in one step (`renameat2(RENAME_EXCHANGE)`); where the system has no such
  call, by two renames (the one moment `b` is missing is the time between them)."""
  renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
  if renameat2 is not None:
    at_cwd, rename_exchange = -100, 2
    if renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), rename_exchange) == 0:
      return
    code = ctypes.get_errno()
    if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
      raise OSError(code, os.strerror(code), str(b))
  aside = a.with_name(a.name + "-old")
  b.rename(aside)
  try:
    a.rename(b)
  except BaseException:
    aside.rename(b)
    raise
  aside.rename(a)
