"""Orbax checkpoints of a training run: `<workdir>/checkpoints/<step>/{state, meta}`.

`state` is the whole `TrainState` (params, optimizer state, step, rng) as
Orbax arrays; `meta` is JSON: the experiment's config, the metrics at that
step and library versions. Orbax writes each step to a temporary directory
and renames it when complete, so a run killed mid-save leaves the last
complete step; a step directory without Orbax's `commit_success.txt` is
never read. Nothing in a checkpoint is executed (no pickle).

Restoring goes through an abstract target (shapes, dtypes, the restoring
run's sharding), so a checkpoint saved on 8 devices restores on 1 and the
reverse.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from typing import Any, Callable

import jax
import numpy as np

from flaxzoo.trainers.config import ConfigError

COMMIT_MARKER = "commit_success.txt"
SEAL = "flaxzoo_files.json"
_HIGHER_IS_BETTER = ("r2", "accuracy", "auc", "balanced_accuracy")


class CheckpointError(ValueError):
  """A checkpoint cannot be used; the message names the step and what is wrong."""


def parse_keep_best(spec: str | None) -> tuple[str, str] | None:
  """`"test/mse"` → `("test/mse", "min")`; `"test/r2"` → max; `"NAME:min|max"` explicit."""
  if spec is None:
    return None
  name, _, mode = spec.partition(":")
  if not mode:
    mode = "max" if name.rsplit("/", 1)[-1] in _HIGHER_IS_BETTER else "min"
  if mode not in ("min", "max") or "/" not in name:
    raise ConfigError(f"--keep-best must be SPLIT/METRIC[:min|max], e.g. test/mse, got {spec!r}")
  return name, mode


def _flat_metrics(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
  return {f"{split}/{key}": float(value) for split, values in metrics.items() for key, value in values.items()
          if isinstance(value, (int, float))}  # not the confusion matrix


class Checkpointer:
  """Saves and restores `TrainState`s with an Orbax `CheckpointManager`.

  Args:
    directory: `<workdir>/checkpoints`.
    keep: how many recent checkpoints to keep (None: all).
    keep_best: keep the best by this metric (`"test/mse"`, `"test/r2:max"`)
      instead of the most recent.
    async_save: write in the background; `close()` waits for it.
  """

  def __init__(self, directory, *, keep: int | None = 3, keep_best: str | None = None, async_save: bool = True):
    import orbax.checkpoint as ocp  # ~0.8 s to import: only when checkpointing.

    self._ocp = ocp
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
    steps = self.steps()
    return steps[-1] if steps else None

  def save(self, step: int, state, meta: dict[str, Any], metrics: dict[str, dict[str, float]] | None = None) -> None:
    """Saves `state` (host-global view) and `meta` (JSON) as step `step`."""
    ocp = self._ocp
    flat = _flat_metrics(metrics or {})
    if self.keep_best and self.keep_best[0] not in flat:
      raise ConfigError(f"--keep-best {self.keep_best[0]}: no such metric; known: {', '.join(sorted(flat))}")
    self._manager.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
        metrics=flat if self.keep_best else None,
        force=True,
    )
    # Orbax finishes the previous background save before it starts this one.
    self._seal(exclude=step)

  def close(self) -> None:
    """Waits for a background save to finish: exiting before that loses it."""
    self._manager.wait_until_finished()
    self._seal()
    self._manager.close()

  # A list of every file of a finished step with its size and sha256, written
  # beside Orbax's files: a truncated, deleted or altered array file is then
  # named before Orbax reads it (TensorStore's own errors on such files are
  # long and come with tracebacks printed from its threads).

  def _seal(self, exclude: int | None = None) -> None:
    if jax.process_index() != 0:
      return
    for step in self.steps():
      listing = self._step_dir(step) / SEAL
      if step == exclude or listing.exists() or not (self._step_dir(step) / COMMIT_MARKER).exists():
        continue
      tmp = listing.with_suffix(".tmp")
      tmp.write_text(json.dumps(_file_digests(self._step_dir(step)), indent=1))
      os.replace(tmp, listing)

  def _verify_files(self, step: int) -> None:
    listing = self._step_dir(step) / SEAL
    if not listing.exists():
      return  # Killed between Orbax's commit and the listing: nothing to check against.
    try:
      expected = json.loads(listing.read_text())
    except (OSError, json.JSONDecodeError) as e:
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

  def _step_dir(self, step: int) -> pathlib.Path:
    return self.directory / str(step)

  def restore_meta(self, step: int) -> dict[str, Any]:
    self._check_complete(step)
    path = self._step_dir(step) / "meta" / "metadata"  # where ocp.args.JsonSave writes
    if not path.is_file():
      raise CheckpointError(f"checkpoint step {step} ({self._step_dir(step)}): its meta item is missing")
    try:
      meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
      raise CheckpointError(f"checkpoint step {step} ({path}): meta is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
      raise CheckpointError(f"checkpoint step {step} ({path}): meta has no config")
    return meta

  def _check_complete(self, step: int) -> None:
    directory = self._step_dir(step)
    if not directory.is_dir():
      raise CheckpointError(f"checkpoint step {step}: no such step in {self.directory} (steps: {self.steps()})")
    if not (directory / COMMIT_MARKER).exists():
      raise CheckpointError(f"checkpoint step {step} ({directory}): incomplete, no {COMMIT_MARKER}")

  def restore(self, step: int, abstract_state) -> tuple[Any, dict[str, Any]]:
    """Restores step `step` into `abstract_state`'s shapes, dtypes and shardings.

    Raises:
      CheckpointError: naming the step: incomplete, unreadable or truncated
        arrays, bad JSON, or arrays of other shapes (another model).
    """
    meta = self.restore_meta(step)
    self._verify_files(step)  # before Orbax opens any array file
    ocp = self._ocp
    expected = {_dotted(path): tuple(leaf.shape)
                for path, leaf in jax.tree_util.tree_flatten_with_path(abstract_state)[0]}
    try:
      stored = self._manager.item_metadata(step)["state"]
      stored_shapes = {leaf.name: tuple(leaf.shape) for leaf in jax.tree.leaves(
          stored, is_leaf=lambda x: hasattr(x, "shape") and hasattr(x, "name"))}
    except Exception:  # noqa: BLE001 - unreadable metadata is reported by the restore below.
      stored_shapes = {}
    mismatched = [f"{k}: saved {stored_shapes.get(k, 'nothing')}, expected {v}"
                  for k, v in expected.items() if stored_shapes and stored_shapes.get(k) != v]
    if mismatched:
      raise CheckpointError(
          f"checkpoint step {step} ({self._step_dir(step)}) holds another model: {mismatched[0]}"
      )
    try:
      restored = self._manager.restore(
          step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
      )
      state = jax.block_until_ready(restored["state"])
    except Exception as e:  # noqa: BLE001 - Orbax/TensorStore raise many types for bad files.
      text = " ".join(str(e).split())[:240] or type(e).__name__
      raise CheckpointError(f"checkpoint step {step} ({self._step_dir(step)}): cannot read the state ({text})") from None
    return state, meta

  def restore_with_fallback(self, step: int, abstract_state, fallback: bool, warn: Callable[[str], None]):
    """`restore(step)`; with `fallback`, tries earlier complete steps on a CheckpointError."""
    candidates = [s for s in self.steps() if s <= step][::-1] if fallback else [step]
    if fallback and step not in candidates:
      candidates.insert(0, step)
    first_error = None
    for candidate in candidates:
      try:
        result = self.restore(candidate, abstract_state)
      except CheckpointError as e:
        if not fallback:
          raise
        first_error = first_error or e
        warn(f"warning: {e}; trying an earlier step")
        continue
      return candidate, result
    raise first_error or CheckpointError(f"no usable checkpoint in {self.directory}")


def _file_digests(step_dir: pathlib.Path) -> dict[str, dict[str, Any]]:
  digests = {}
  for path in sorted(step_dir.rglob("*")):
    if path.is_file() and path.name != SEAL and not path.name.endswith(".tmp"):
      data = path.read_bytes()
      digests[str(path.relative_to(step_dir))] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
  return digests


def _dotted(path) -> str:
  """A pytree path as Orbax names arrays: `params.linear.bias.value`."""
  parts = []
  for key in path:
    parts.append(str(getattr(key, "name", getattr(key, "key", getattr(key, "idx", key)))))
  return ".".join(parts)


def abstract_like(tree, sharding) -> Any:
  """`ShapeDtypeStruct`s of `tree`'s leaves, placed with `sharding` (the restoring run's)."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype if not hasattr(x, "dtype") else x.dtype,
                                                     sharding=sharding), tree)
