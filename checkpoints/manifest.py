"""A folder's file manifest: every file's size and sha256, written last and checked before anything is read.

An export's `manifest.json` lists every file of the export but itself; `check_manifest` refuses a folder
whose files differ from it in any way (changed, swapped, missing, added), or which holds a symbolic link
anywhere (a link could point out of the folder). Checkpoint steps keep the same listing (`manager.SEAL`).
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Any

from flaxzoo.checkpoints.errors import CheckpointError
from flaxzoo.checkpoints.files import read_bounded, write_json_atomic

MANIFEST = "manifest.json"
FORMAT = "flaxzoo-manifest/1"


def _entries(folder: pathlib.Path, skip: tuple[str, ...]) -> dict[str, pathlib.Path]:
  """`{relative path: path}` of everything under `folder` but folders (a FIFO or a device included), whose
  name is not in `skip` (nor a temporary `.tmp` file)."""
  return {path.relative_to(folder).as_posix(): path for path in sorted(folder.rglob("*"))
          if not path.is_dir() and path.name not in skip and not path.name.endswith(".tmp")}


def _digest(path: pathlib.Path) -> dict[str, Any]:
  with open(path, "rb") as f:  # a block at a time: a checkpoint's arrays are not held in memory at once
    digest = hashlib.file_digest(f, "sha256")
  return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def file_digests(folder: pathlib.Path, skip: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
  """`{relative path: {"size", "sha256"}}` of every regular file under `folder` whose name is not in `skip`
  (nor a temporary `.tmp` file)."""
  return {name: _digest(path) for name, path in _entries(folder, skip).items() if path.is_file()}


def write_manifest(folder) -> None:
  """`folder/manifest.json`: the digests of every other file under `folder` (write it last)."""
  folder = pathlib.Path(folder)
  write_json_atomic(folder / MANIFEST, {"format": FORMAT, "files": file_digests(folder, skip=(MANIFEST,))})


def refuse_links(folder: pathlib.Path) -> None:
  """A CheckpointError naming the first symbolic link at or under `folder`."""
  if folder.is_symlink():
    raise CheckpointError(f"{folder} is a symbolic link; flaxzoo reads an export only from its own folder")
  for path in folder.rglob("*"):
    if path.is_symlink():
      raise CheckpointError(f"{path} is a symbolic link; flaxzoo reads an export only from its own files")


def check_manifest(folder) -> bool:
  """Checks `folder` against its manifest: True when it matches; False when there is no manifest (an export
  from before manifests); a CheckpointError naming the file and what differs otherwise."""
  folder = pathlib.Path(folder)
  refuse_links(folder)
  file = folder / MANIFEST
  if not file.exists():
    return False
  try:
    manifest = json.loads(read_bounded(file).decode())
    expected = manifest["files"]
    if manifest.get("format") != FORMAT or not isinstance(expected, dict):
      raise ValueError(f"format {manifest.get('format')!r}, expected {FORMAT}")
  except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
    raise CheckpointError(f"{file}: not a valid manifest ({e})") from None
  actual = _entries(folder, skip=(MANIFEST,))
  for name in sorted(set(expected) | set(actual)):
    if name not in actual:
      raise CheckpointError(f"{folder / name}: listed in {MANIFEST} but missing")
    if name not in expected:
      raise CheckpointError(f"{folder / name}: not listed in {MANIFEST} (added after the export)")
  # What the manifest says bounds what is read: each file's kind and size first (a FIFO would block, a file
  # padded to 10 GB would be read whole), then its digest.
  for name, path in actual.items():
    if not path.is_file():
      raise CheckpointError(f"{path}: not a regular file; not read")
    if not isinstance(expected[name], dict) or path.stat().st_size != expected[name].get("size"):
      raise CheckpointError(f"{path}: its contents differ from {MANIFEST} (its size, {path.stat().st_size} bytes);"
                            " not read")
  for name, path in actual.items():
    if expected[name] != _digest(path):
      raise CheckpointError(f"{folder / name}: its contents differ from {MANIFEST} (changed or swapped)")
  return True
