"""Pretrained models: `load_pretrained(name_or_path) -> (model, card)`, offline.

A pretrained checkpoint is a folder `NAME/` with `card.json` (see `card`) and
`params/`, an Orbax checkpoint of the parameters only. The package ships some
in `flaxzoo/checkpoints/weights/`; `flaxzoo export` writes more. Loading reads
JSON and arrays only: nothing in a checkpoint can run code, and no network is
touched. A training workdir is loaded by `flaxzoo.experiments.load_trained`.
"""

from __future__ import annotations

import fnmatch
import importlib.resources
import os
import pathlib
from typing import TYPE_CHECKING

from flaxzoo.checkpoints.card import CARD, Card, read_card
from flaxzoo.checkpoints.errors import CheckpointError
from flaxzoo.zoo.registry import UnknownNameError

if TYPE_CHECKING:  # listing and reading cards import no JAX (flaxzoo list)
  from flax import nnx


def weights_dir() -> pathlib.Path:
  """Where the shipped weights are: package data, beside the code in their own folder."""
  return pathlib.Path(str(importlib.resources.files("flaxzoo.checkpoints"))) / "weights"


def list_pretrained(pattern: str | None = None) -> list[str]:
  """Names of the checkpoints shipped with the package, sorted, optionally filtered by a glob."""
  names = sorted(p.name for p in weights_dir().iterdir() if (p / CARD).is_file())
  return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def is_path(text: str) -> bool:
  """A name written as a path (a separator, `.` or `..` in it) is a folder, never a shipped name."""
  return os.sep in text or "/" in text or text.startswith(".")


def resolve(name_or_path) -> pathlib.Path:
  """The folder of a shipped name, or the folder a path names."""
  text = os.fspath(name_or_path)
  if isinstance(name_or_path, os.PathLike) or is_path(text):
    path = pathlib.Path(text)
    if not path.is_dir():
      raise UnknownNameError(f"{text}: no such checkpoint directory")
    return path
  known = list_pretrained()
  if text not in known:
    raise UnknownNameError(
        f"unknown pretrained model {text!r}; available: {', '.join(known)} (a folder: write it as ./{text})")
  return weights_dir() / text


def read_card_summary(name: str) -> str:
  """One line about a shipped checkpoint: its test metrics."""
  from flaxzoo.checkpoints.card import summary

  return summary(read_card(weights_dir() / name).data)


def load_pretrained(name_or_path, *, devices: int | None = None) -> tuple[nnx.Module, Card]:
  """A pretrained model and its card, from the package by name or from an export folder.

  Args:
    name_or_path: a name from `list_pretrained()`, or a folder written by
      `flaxzoo export` (a path: `./NAME`, `exports/NAME`, a `pathlib.Path`).
    devices: replicate the parameters over this many local devices (default:
      the first device only).

  Returns:
    `(model, card)`.
  """
  import jax
  import numpy as np
  import orbax.checkpoint as ocp
  from flax import nnx

  from flaxzoo.checkpoints.card import check_fits
  from flaxzoo.checkpoints.manager import all_finite, restore_dtypes, shape_mismatch
  from flaxzoo.checkpoints.manifest import check_manifest
  from flaxzoo.zoo.models import create_model

  path = resolve(name_or_path)
  if not (path / CARD).is_file() and (path / "checkpoints").is_dir():
    raise CheckpointError(f"{path} is a training workdir: load it with flaxzoo.experiments.load_trained,"
                          " or export it (flaxzoo export)")
  check_manifest(path)  # every file as exported (where the export has a manifest), and no links
  card = read_card(path)
  spec = card.data["model"]
  try:
    abstract = nnx.eval_shape(lambda: create_model(spec["name"], **spec["args"]))
  except (TypeError, ValueError, KeyError) as e:
    raise CheckpointError(f"{path / CARD}: the card's model cannot be built ({e})") from None
  graphdef, abstract_params, rest = nnx.split(abstract, nnx.Param, ...)
  sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract_params)
  params_dir = (path / "params").absolute()
  if not params_dir.is_dir():
    raise CheckpointError(f"{path}: no params/ folder beside {CARD}")
  _check_size(params_dir, target)
  with ocp.StandardCheckpointer() as checkpointer:
    stored = checkpointer.metadata(params_dir)
    mismatch = shape_mismatch(target, stored)
    if mismatch:
      raise CheckpointError(f"{path}: the card's model does not fit the arrays ({mismatch})")
    try:
      with jax.enable_x64(True):  # float64 parameters (a float64 fit's export) stay float64
        params = checkpointer.restore(params_dir, restore_dtypes(target, stored))
    except (ValueError, OSError) as e:  # tensorstore's DATA_LOSS and the like: files not as Orbax wrote them
      raise CheckpointError(f"{params_dir}: the arrays cannot be read ({str(e).splitlines()[0][:200]})") from None
  if not all_finite(params):
    raise CheckpointError(f"{params_dir}: the parameters are not all finite; not loaded")
  model = nnx.merge(graphdef, params, rest)
  in_features = spec["args"].get("in_features")
  from flaxzoo.checkpoints.prediction import in_precision

  with in_precision(model) as dtype:
    outputs = model(np.zeros((1, in_features), dtype)).shape[-1] if isinstance(in_features, int) else 1
  check_fits(card, in_features if isinstance(in_features, int) else None, int(outputs))
  return place(model, devices), card


# Orbax's files around the arrays (metadata, the tensorstore index) take at most this much beside them.
FILES_OVERHEAD = 1 << 20


def _check_size(params_dir: pathlib.Path, target) -> None:
  """What the card's model says bounds what is read (an export without a manifest too): only regular files,
  at most its arrays' float64 bytes twice over plus Orbax's own files; a file padded to 10 GB, a FIFO or a
  device is refused at once."""
  import jax
  import numpy as np

  needed = sum(int(np.prod(leaf.shape)) * 8 for leaf in jax.tree.leaves(target))
  held = 0
  for file in params_dir.rglob("*"):
    if file.is_dir():
      continue
    if not file.is_file():
      raise CheckpointError(f"{file}: not a regular file; not read")
    held += file.stat().st_size
  if held > 2 * needed + FILES_OVERHEAD:
    raise CheckpointError(f"{params_dir}: {held} bytes where the card's model has {needed} bytes of parameters;"
                          " not read")


def place(model: nnx.Module, devices: int | None) -> nnx.Module:
  """The model with its state replicated over the first `devices` local devices."""
  import jax
  import numpy as np
  from flax import nnx

  if not devices or devices == 1:
    return model
  if devices > len(jax.local_devices()):
    raise ValueError(f"devices={devices}: only {len(jax.local_devices())} available")
  mesh = jax.sharding.Mesh(np.asarray(jax.local_devices()[:devices]), ("data",))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  graphdef, state = nnx.split(model)
  return nnx.merge(graphdef, jax.device_put(state, replicated))
