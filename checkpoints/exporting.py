"""Exporting trained parameters as a pretrained checkpoint: `params/` + `card.json` + `README.md`."""

from __future__ import annotations

import pathlib
import shutil
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from flax import nnx

from flaxzoo.checkpoints.card import CARD, readme
from flaxzoo.checkpoints.errors import CheckpointError
from flaxzoo.checkpoints.files import write_atomic, write_json_atomic
from flaxzoo.checkpoints.manager import all_finite


def check_name(name: str) -> None:
  if not name or "/" in name or "\\" in name or ".." in name or name.startswith("."):
    raise ValueError(f"name must be a plain folder name, got {name!r}")


def export(model: nnx.Module, card: Mapping[str, Any], out, *, force: bool = False) -> pathlib.Path:
  """Writes `<out>/<card["name"]>/`: `params/` (Orbax, parameters only), `card.json`, `README.md`.

  Everything is written to a staging folder beside the target and renamed into
  place, so a failed export leaves nothing half-written. `force` replaces an
  earlier export (a folder with a card.json), never any other folder or a link.
  """
  name = card["name"]
  check_name(name)
  target = pathlib.Path(out) / name
  if target.is_symlink() or target.exists():
    if not force:
      raise CheckpointError(f"{target} exists; pass force=True to replace it")
    if target.is_symlink() or not target.is_dir() or not (target / CARD).is_file():
      raise CheckpointError(f"{target} exists and is not an earlier export (no {CARD}); not replacing it")
  staging = target.with_name(f".{name}.staging")
  if staging.exists():
    shutil.rmtree(staging)  # our own leftover from an export that was killed
  staging.mkdir(parents=True)
  try:
    import orbax.checkpoint as ocp

    params = jax.tree.map(np.asarray, nnx.split(model, nnx.Param, ...)[1])
    if not all_finite(params):
      raise CheckpointError(f"{name}: the parameters are not all finite (a diverged run); not exported")
    with ocp.StandardCheckpointer() as checkpointer:
      checkpointer.save((staging / "params").absolute(), params)
    write_json_atomic(staging / CARD, dict(card))
    write_atomic(staging / "README.md", readme(card))
    if target.exists():
      shutil.rmtree(target)
    staging.rename(target)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return target
