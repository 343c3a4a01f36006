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
from flaxzoo.checkpoints.files import write_json_atomic

MANIFEST = "manifest.json"
FORMAT = "flaxzoo-manifest/1"


def file_digests(folder: pathlib.Path, skip: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
  """`{relative path: {"size", "sha256"}}` of every regular file under `folder` whose name is not in `skip`
  (nor a temporary `.tmp` file)."""
  digests = {}
  for path in sorted(folder.rglob("*")):
    if path.is_file() and path.name not in skip and not path.name.endswith(".tmp"):
      data = path.read_bytes()
      digests[path.relative_to(folder).as_posix()] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
  return digests


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
    manifest = json.loads(file.read_text())
    expected = manifest["files"]
    if manifest.get("format") != FORMAT or not isinstance(expected, dict):
      raise ValueError(f"format {manifest.get('format')!r}, expected {FORMAT}")
  except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
    raise CheckpointError(f"{file}: not a valid manifest ({e})") from None
  actual = file_digests(folder, skip=(MANIFEST,))
  for name in sorted(set(expected) | set(actual)):
    if name not in actual:
      raise CheckpointError(f"{folder / name}: listed in {MANIFEST} but missing")
    if name not in expected:
      raise CheckpointError(f"{folder / name}: not listed in {MANIFEST} (added after the export)")
    if expected[name] != actual[name]:
      raise CheckpointError(f"{folder / name}: its contents differ from {MANIFEST} (changed or swapped)")
  return True
