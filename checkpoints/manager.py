"""Orbax checkpoints of a training run: `<workdir>/checkpoints/<step>/{state, meta, metrics}`.

`state` is the whole `TrainState` (params, optimizer state, step, rng) as
Orbax arrays; `meta` is JSON: the run's config, the model, the metrics at that
step and library versions; `metrics` the flat metrics Orbax ranks steps by.
Orbax owns what it owns: which steps are complete (it writes each step to a
temporary directory and renames it when done, so a run killed mid-save leaves
the last complete step), the latest and the best step, what to keep. flaxzoo
adds a seal: the size and sha256 of every file of a finished step, so that a
truncated, deleted or altered file is named before Orbax reads it.
Nothing in a checkpoint is executed (no pickle).

Restoring goes through an abstract target (shapes, dtypes, the restoring
run's sharding), so a checkpoint saved on 8 devices restores on 1 and the
reverse.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import pathlib
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from flaxzoo.checkpoints.errors import CheckpointError
from flaxzoo.checkpoints.files import write_atomic
from flaxzoo.checkpoints.manifest import file_digests

SEAL = "flaxzoo_files.json"
_HIGHER_IS_BETTER = ("r2", "accuracy", "auc", "roc_auc", "balanced_accuracy")


def parse_keep_best(spec: str | None) -> tuple[str, str] | None:
  """`"test/mse"` → `("test/mse", "min")`; `"test/r2"` → max; `"NAME:min|max"` explicit."""
  if spec is None:
    return None
  name, _, mode = spec.partition(":")
  if not mode:
    mode = "max" if name.rsplit("/", 1)[-1] in _HIGHER_IS_BETTER else "min"
  if mode not in ("min", "max") or "/" not in name:
    raise ValueError(f"keep_best must be SPLIT/METRIC[:min|max], e.g. test/mse, got {spec!r}")
  return name, mode


def flat_metrics(metrics: dict[str, dict[str, Any]]) -> dict[str, float]:
  """`{"test": {"mse": ...}}` → `{"test/mse": ...}`, numbers only (not the confusion matrix)."""
  return {f"{split}/{key}": float(value) for split, values in metrics.items() for key, value in values.items()
          if isinstance(value, (int, float)) and math.isfinite(value)}


class Checkpointer:
  """Saves and restores `TrainState`s with an Orbax `CheckpointManager`.

  Args:
    directory: `<workdir>/checkpoints`.
    keep: how many checkpoints to keep (None: all).
    keep_best: rank steps by this metric (`"test/mse"`, `"test/r2:max"`):
      keep the best instead of the most recent, and `best_step()`.
    async_save: write in the background; `close()` waits for it.
  """

  def __init__(self, directory, *, keep: int | None = 3, keep_best: str | None = None, async_save: bool = True):
    import orbax.checkpoint as ocp  # ~0.8 s to import: only when checkpointing.

    self._ocp = ocp
    self._failed = False
    self.directory = pathlib.Path(directory).absolute()
    best = parse_keep_best(keep_best)
    self.keep_best = best
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        best_fn=(lambda metrics: metrics[best[0]]) if best else None,
        best_mode=best[1] if best else "max",
        keep_checkpoints_without_metrics=not best,
        enable_async_checkpointing=async_save,
        create=True,
    )
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=options,
        item_handlers={"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()},
    )

  def steps(self) -> list[int]:
    """Complete steps, oldest first."""
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def best_step(self) -> int | None:
    """The best step by `keep_best` (Orbax's ranking of the saved metrics); the latest without it."""
    return self._manager.best_step()

  def save(self, step: int, state, meta: dict[str, Any], metrics: dict[str, dict[str, Any]] | None = None) -> None:
    """Saves `state` (host-global view), `meta` (JSON) and `metrics` as step `step`."""
    ocp = self._ocp
    flat = flat_metrics(metrics or {})
    known = {f"{split}/{key}" for split, values in (metrics or {}).items() for key in values}
    if self.keep_best and self.keep_best[0] not in known:
      raise ValueError(f"keep_best {self.keep_best[0]}: no such metric; known: {', '.join(sorted(known))}")
    if self.keep_best and self.keep_best[0] not in flat:
      flat = None  # not finite at this step: a step without a rank (Orbax drops those first)
    with self._writing(step):
      self._manager.save(
          step,
          args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
          metrics=flat,
          force=True,
      )
      # Orbax finishes the previous background save before it starts this one.
      self._seal(exclude=step)

  def close(self) -> None:
    """Waits for a background save to finish: exiting before that loses it.

    After a failed write there is nothing to wait for: Orbax's threads are left to the process's end
    (waiting on them after a full disk only adds their own error reports).
    """
    if self._failed:
      return
    try:
      with self._writing(None):
        self._manager.wait_until_finished()
        self._seal()
    finally:
      self._manager.close()

  @contextlib.contextmanager
  def _writing(self, step: int | None):
    """A failed write (out of space, read-only, …) as one OSError naming the folder; the complete steps stay."""
    try:
      yield
    except Exception as e:  # noqa: BLE001 - Orbax, TensorStore and the OS each raise their own kinds.
      self._failed = True
      text = " ".join(f"{type(x).__name__}: {x}" for x in _chain(e))
      reason = next((x.strerror for x in _chain(e) if isinstance(x, OSError) and x.strerror), None)
      if reason is None and "RESOURCE_EXHAUSTED" in text:
        reason = os.strerror(errno.ENOSPC)
      if reason is None:
        raise
      which = f"checkpoint step {step}" if step is not None else "a checkpoint"
      raise OSError(errno.EIO, f"{reason} while writing {which} (the complete steps are kept; free space and"
                                " rerun the same command to resume)", str(self.directory)) from None

  def _step_dir(self, step: int) -> pathlib.Path:
    return self.directory / str(step)

  def _seal(self, exclude: int | None = None) -> None:
    if jax.process_index() != 0:
      return
    self._manager.reload()  # the steps Orbax has finished since the last save
    for step in self.steps():
      listing = self._step_dir(step) / SEAL
      if step != exclude and not listing.exists():
        write_atomic(listing, json.dumps(_file_digests(self._step_dir(step)), indent=1))

  def _verify_files(self, step: int) -> None:
    listing = self._step_dir(step) / SEAL
    if not listing.exists():
      return  # Killed between Orbax's commit and the listing: nothing to check against.
    try:
      expected = json.loads(listing.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
      raise CheckpointError(f"checkpoint step {step} ({listing}): unreadable file list ({e})") from None
    actual = _file_digests(self._step_dir(step))
    for name, digest in sorted(expected.items()):
      if name.startswith("meta/"):
        continue  # JSON, checked when parsed
      if name not in actual:
        raise CheckpointError(f"checkpoint step {step} ({self._step_dir(step)}): {name} is missing")
      if actual[name]["size"] != digest["size"]:
        raise CheckpointError(
            f"checkpoint step {step} ({self._step_dir(step)}): {name} is truncated or altered"
            f" ({actual[name]['size']} bytes, saved {digest['size']})"
        )
      if actual[name]["sha256"] != digest["sha256"]:
        raise CheckpointError(f"checkpoint step {step} ({self._step_dir(step)}): {name} was altered since it was saved")

  def _check_complete(self, step: int) -> None:
    if step not in self.steps():
      raise CheckpointError(f"checkpoint step {step}: no such complete step in {self.directory}"
                            f" (steps: {self.steps()})")

  def restore_meta(self, step: int) -> dict[str, Any]:
    """The JSON `meta` of step `step`, read by Orbax."""
    self._check_complete(step)
    ocp = self._ocp
    try:
      meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except FileNotFoundError:
      raise CheckpointError(f"checkpoint step {step} ({self._step_dir(step)}): its meta item is missing") from None
    except (ValueError, OSError, RecursionError) as e:  # JSONDecodeError is a ValueError
      text = " ".join(str(e).split())[:200]
      raise CheckpointError(f"checkpoint step {step} ({self._step_dir(step)}): meta is not valid JSON"
                            f" ({text})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
      raise CheckpointError(f"checkpoint step {step} ({self._step_dir(step)}): meta has no config")
    return meta

  def stored_state(self, step: int):
    """The tree of step `step`'s state as stored: `ArrayMetadata` leaves (shape, dtype)."""
    self._check_complete(step)
    try:
      return self._manager.item_metadata(step)["state"].tree
    except Exception as e:  # noqa: BLE001 - Orbax raises many types for unreadable metadata
      raise CheckpointError(f"checkpoint step {step} ({self._step_dir(step)}): unreadable metadata"
                            f" ({' '.join(str(e).split())[:200]})") from None

  def restore(self, step: int, abstract_state) -> tuple[Any, dict[str, Any]]:
    """Restores step `step` into `abstract_state`'s shapes, dtypes and shardings.

    Raises:
      CheckpointError: naming the step: incomplete, unreadable or truncated
        arrays, bad JSON, or arrays of other shapes (another model).
    """
    meta = self.restore_meta(step)
    self._verify_files(step)  # before Orbax opens any array file
    ocp = self._ocp
    try:
      stored = self._manager.item_metadata(step)["state"]
    except Exception:  # noqa: BLE001 - unreadable metadata is reported by the restore below.
      stored = None
    mismatch = shape_mismatch(abstract_state, stored)
    if mismatch:
      raise CheckpointError(f"checkpoint step {step} ({self._step_dir(step)}) holds another model: {mismatch}")
    try:
      restored = self._manager.restore(
          step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
      )
      state = jax.block_until_ready(restored["state"])
    except Exception as e:  # noqa: BLE001 - Orbax/TensorStore raise many types for bad files.
      text = " ".join(str(e).split())[:240] or type(e).__name__
      raise CheckpointError(f"checkpoint step {step} ({self._step_dir(step)}): cannot read the state"
                            f" ({text})") from None
    if not all_finite(getattr(state, "params", state)):
      raise CheckpointError(f"checkpoint step {step} ({self._step_dir(step)}): holds non-finite parameters"
                            " (a diverged run); not used")
    return state, meta

  def restore_with_fallback(self, step: int, restore_fn: Callable[[int], Any], fallback: bool,
                            warn: Callable[[str], None]) -> tuple[int, Any]:
    """`(step, restore_fn(step))`; with `fallback`, earlier complete steps in turn on a CheckpointError."""
    return with_fallback(self.steps(), step, restore_fn, fallback, warn, self.directory)


def with_fallback(steps: list[int], step: int, restore_fn: Callable[[int], Any], fallback: bool,
                  warn: Callable[[str], None], where) -> tuple[int, Any]:
  """The one fallback loop: `restore_fn(step)`, or with `fallback` the latest earlier step that restores."""
  candidates = [s for s in steps if s <= step][::-1] if fallback else [step]
  if fallback and step not in candidates:
    candidates.insert(0, step)
  first_error = None
  for candidate in candidates:
    try:
      return candidate, restore_fn(candidate)
    except CheckpointError as e:
      if not fallback:
        raise
      first_error = first_error or e
      warn(f"warning: {e}; trying an earlier step")
  raise first_error or CheckpointError(f"no usable checkpoint in {where}")


def _chain(error: BaseException):
  """`error` and the exceptions it came from."""
  seen = []
  while error is not None and error not in seen:
    seen.append(error)
    error = error.__cause__ or error.__context__
  return seen


def all_finite(tree) -> bool:
  """Whether every floating-point array of `tree` is finite (checked on the host)."""
  return all(np.all(np.isfinite(np.asarray(leaf))) for leaf in jax.tree.leaves(tree)
             if np.issubdtype(np.asarray(leaf).dtype, np.floating))


def shape_mismatch(expected_tree, stored_metadata) -> str | None:
  """The first array of `expected_tree` whose shape differs from Orbax's stored metadata, as text.

  The one shape check of restores (run checkpoints and exported params).
  """
  if stored_metadata is None:
    return None
  stored = {leaf.name: tuple(leaf.shape) for leaf in jax.tree.leaves(
      getattr(stored_metadata, "item_metadata", stored_metadata),
      is_leaf=lambda x: hasattr(x, "shape") and hasattr(x, "name"))}
  if not stored:
    return None
  for path, leaf in jax.tree_util.tree_flatten_with_path(expected_tree)[0]:
    key = _dotted(path)
    if stored.get(key) != tuple(leaf.shape):
      return f"{key}: saved {stored.get(key, 'nothing')}, expected {tuple(leaf.shape)}"
  return None


def stored_dtypes(stored_metadata) -> dict[str, Any]:
  """`{dotted name: dtype}` of the arrays Orbax's metadata describes (an export's float64 parameters are
  restored as float64)."""
  if stored_metadata is None:
    return {}
  return {leaf.name: np.dtype(leaf.dtype) for leaf in jax.tree.leaves(
      getattr(stored_metadata, "item_metadata", stored_metadata),
      is_leaf=lambda x: hasattr(x, "shape") and hasattr(x, "name")) if getattr(leaf, "dtype", None) is not None}


def restore_dtypes(target, stored_metadata):
  """`target`'s `ShapeDtypeStruct`s with the stored float64 dtype where an array was saved in float64 (a
  float64 fit keeps its precision); every other leaf as it was."""
  stored = stored_dtypes(stored_metadata)

  def leaf(path, x):
    dtype = stored.get(_dotted(path))
    if dtype == np.float64 and np.dtype(x.dtype) == np.float32:
      return jax.ShapeDtypeStruct(x.shape, np.float64, sharding=x.sharding)
    return x

  return jax.tree_util.tree_map_with_path(leaf, target)


def _file_digests(step_dir: pathlib.Path) -> dict[str, dict[str, Any]]:
  return file_digests(step_dir, skip=(SEAL,))


def _dotted(path) -> str:
  """A pytree path as Orbax names arrays: `params.linear.bias.value`."""
  return ".".join(str(getattr(key, "name", getattr(key, "key", getattr(key, "idx", key)))) for key in path)


def abstract_like(tree, sharding) -> Any:
  """`ShapeDtypeStruct`s of `tree`'s leaves, placed with `sharding` (the restoring run's)."""
  def abstract(x):
    return jax.ShapeDtypeStruct(np.shape(x), x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype, sharding=sharding)

  return jax.tree.map(abstract, tree)
