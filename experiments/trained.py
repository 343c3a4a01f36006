"""A trained run's workdir, used again: restore it (`load_trained`), evaluate it, export it, predict with it."""

from __future__ import annotations

import dataclasses
import pathlib
import shlex
import sys
from typing import Any

import numpy as np

from flaxzoo.checkpoints.card import Card, build_card
from flaxzoo.checkpoints.errors import CheckpointError
from flaxzoo.checkpoints.exporting import check_name, export
from flaxzoo.checkpoints.manager import Checkpointer, parse_keep_best, with_fallback
from flaxzoo.experiments.build import build
from flaxzoo.experiments.config import Config
from flaxzoo.experiments.errors import ConfigError, MetricLogError
from flaxzoo.experiments.metric_log import read_metrics
from flaxzoo.experiments.progress import track
from flaxzoo.experiments.runner import command_of, restore_target
from flaxzoo.experiments.workdir import check_same_data, write_json_atomic


def _open_checkpoints(workdir, keep_best: str | None = None) -> Checkpointer:
  directory = pathlib.Path(workdir) / "checkpoints"
  if not directory.is_dir():
    raise CheckpointError(f"{workdir}: no checkpoints (expected {directory})")
  return Checkpointer(directory, keep=None, keep_best=keep_best)


def _best_step(workdir, checkpointer: Checkpointer) -> int:
  """The best step by the run's `--keep-best` metric (default test/mse), as Orbax ranks the saved metrics."""
  spec = checkpointer.restore_meta(checkpointer.latest_step()).get("keep_best") or "test/mse"
  try:
    parse_keep_best(spec if isinstance(spec, str) else repr(spec))
  except ValueError as e:
    raise CheckpointError(f"{checkpointer.directory}: the run's keep_best is not usable ({e})") from None
  ranked = _open_checkpoints(workdir, spec)
  try:
    best = ranked.best_step()
  finally:
    ranked.close()
  if best is None:
    raise CheckpointError(f"{checkpointer.directory}: no checkpoint records {spec}")
  return best


def _choose_step(workdir, checkpointer: Checkpointer, step: int | None, best: bool) -> int:
  steps = checkpointer.steps()
  if not steps:
    raise CheckpointError(f"{checkpointer.directory}: no complete checkpoint")
  if step is not None:
    if step not in steps:
      raise CheckpointError(f"checkpoint step {step}: no such step in {checkpointer.directory} (steps: {steps})")
    return step
  return _best_step(workdir, checkpointer) if best else steps[-1]


def load_trained(workdir, step: int | None = None, *, best: bool = False, data_dir=None, parallel: str = "none",
                 devices: int | None = None, fallback: bool = False, log=None):
  """A trained run's Trainer from `<workdir>/checkpoints`, and the checkpoint's meta.

  >>> trainer, meta = load_trained("runs/brain_age_gm")
  >>> trainer.model  # an nnx.Module with the trained parameters

  `meta` is the checkpoint's JSON plus `step`, `splits` and `data` (the run's `LoadedData`).
  """
  log = log or (lambda message: None)
  checkpointer = _open_checkpoints(workdir)
  try:
    chosen = _choose_step(workdir, checkpointer, step, best)
    first, recorded = with_fallback(checkpointer.steps(), chosen, checkpointer.restore_meta, fallback, log,
                                    checkpointer.directory)
    try:
      config = Config(**{**recorded["config"], "parallel": parallel, "devices": devices})
    except (TypeError, ConfigError) as e:  # a config written by another flaxzoo version, or edited
      raise CheckpointError(f"{checkpointer.directory}: the checkpoint's config does not fit this flaxzoo"
                            f" ({e})") from None
    _check_data_file(workdir, config, recorded, first)
    built = build(config, data_dir, log)
    trainer = built.trainer
    target = restore_target(trainer)
    chosen, (state, meta) = checkpointer.restore_with_fallback(
        chosen, lambda s: checkpointer.restore(s, target), fallback, log)
    # The data is re-read only to re-evaluate on it, and only as it was when trained.
    check_same_data(workdir, meta, built.data.record, chosen)
    trainer.state = state
  finally:
    checkpointer.close()
  splits = {split: built.data.split_data(split) for split in built.data.splits}  # (with `--offset`'s column)
  return trainer, {**meta, "step": chosen, "splits": splits, "data": built.data, "model": built.model,
                   "config_object": config}


def _check_data_file(workdir, config: Config, meta: dict[str, Any], step: int) -> None:
  """A table the config names is hashed before it is parsed: one whose sha256 is not the recorded one is
  refused unread (its contents never reach an error message)."""
  import hashlib

  from flaxzoo.datasets.tables import read_bytes

  dataset = config.dataset or ""
  if not dataset.startswith("csv:"):
    return
  digest = hashlib.sha256(read_bytes(dataset[4:])).hexdigest()  # unreadable: read_bytes's one-line DataError
  check_same_data(workdir, meta, {"sha256": digest}, step)


def evaluate_checkpoint(workdir, step: int | None = None, *, best: bool = False, split: str = "test",
                        data_dir=None, parallel: str = "auto", devices: int | None = None,
                        fallback: bool = False, log=None) -> dict[str, Any]:
  """Restores a checkpoint onto this run's devices, evaluates it, writes `<workdir>/eval.json`."""
  import jax

  trainer, meta = load_trained(workdir, step, best=best, data_dir=data_dir, parallel=parallel, devices=devices,
                               fallback=fallback, log=log)
  splits = meta["splits"]
  names = ["train", "test"] if split == "all" else [split]
  for name in names:
    if name not in splits:
      raise ConfigError(f"unknown split {name!r}; known: {', '.join(splits)}, all")
  results = {
      "experiment": meta["config"]["name"],
      "step": meta["step"],
      "workdir": str(workdir),
      **{name: trainer.evaluate(splits[name]) for name in track(names, "evaluating")},
      "devices": {"mode": trainer.placement.mode, "count": len(trainer.placement.devices)},
  }
  if jax.process_index() == 0:
    write_json_atomic(pathlib.Path(workdir) / "eval.json", results)
  return results


def card_of_run(name: str, trainer, meta: dict[str, Any], cv_folds: int | None = None) -> dict[str, Any]:
  """The card of a restored run (`load_trained`'s output): the recipe is the run's own command; with
  `cv_folds`, also the recipe's cross-validated metrics (at the run's step; `sweep.cross_validate`)."""
  config: Config = meta["config_object"]
  recipe = {"experiment": config.name, "step": meta["step"], "config": dataclasses.asdict(config),
            "command": command_of(config)}
  cross_validation = None
  if cv_folds:
    from flaxzoo.experiments.sweep import cross_validate

    cross_validation = cross_validate(config.replace(steps=meta["step"]), cv_folds, data=meta["data"])
  card = build_card(name, trainer, meta["data"], model=meta["model"], recipe=recipe,
                    evaluate=lambda split, _: trainer.evaluate(meta["splits"][split]),
                    cross_validation=cross_validation)
  if config.offset:  # `predict` adds the table's own column
    card["offset"] = {"column": config.offset}
  from flaxzoo.experiments.coefficients import run_coefficients

  try:  # an exact fit's coefficient table, in the raw columns' units (as its results.json)
    coefficients = run_coefficients(trainer, meta["data"], config.batch_size)
  except ValueError:
    coefficients = None
  if coefficients:
    card["coefficients"] = coefficients
  return card


def export_run(workdir, name: str, out="exports", *, step: int | None = None, force: bool = False,
               data_dir=None, cv_folds: int | None = None) -> pathlib.Path:
  """`flaxzoo export`: `<out>/<name>/` from a trained workdir (see `flaxzoo.checkpoints.exporting`)."""
  try:
    check_name(name)
  except ValueError as e:
    raise ConfigError(f"--name: {e}") from None
  target = pathlib.Path(out) / name
  if (target.exists() or target.is_symlink()) and not force:
    raise ConfigError(f"{target} exists; pass --force to replace it")
  trainer, meta = load_trained(workdir, step, data_dir=data_dir)
  card = card_of_run(name, trainer, meta, cv_folds)
  card["recipe"]["exported_by"] = " ".join(shlex.quote(a) for a in ["flaxzoo", *sys.argv[1:]])
  return export(trainer.model, card, out, force=force)


def load_model(name_or_path, *, data_dir=None) -> tuple[Any, Card]:
  """`(model, card)` of a shipped name, an export folder or a training workdir (its latest checkpoint).

  A workdir's checkpoint records what predicting needs (model, fitted preprocessing, classes, input range,
  bias correction): predicting never reads the training data, nor any file its config names. A checkpoint
  from before those records is refused with the way on (`flaxzoo export`, which re-evaluates on the data).
  """
  from flaxzoo.checkpoints.pretrained import load_pretrained, resolve

  path = resolve(name_or_path)
  if not (path / "card.json").is_file() and (path / "checkpoints").is_dir():
    model, card = _recorded_model(path)
    if model is None:
      raise CheckpointError(f"{path}: its checkpoint predates what predicting reads (the fitted preprocessing,"
                            " recorded by newer checkpoints); export it (flaxzoo export --workdir ...) and predict"
                            " with the export, or train again")
    return model, card
  return load_pretrained(path)


def _recorded_model(workdir: pathlib.Path) -> tuple[Any, Card | None]:
  """`(model, card)` from the latest checkpoint and what its meta records, no data read; `(None, None)` for a
  checkpoint without those records."""
  import jax
  from flax import nnx

  from flaxzoo.checkpoints.card import FORMAT, check_fits
  from flaxzoo.checkpoints.manager import abstract_like, all_finite
  from flaxzoo.zoo.models import create_model

  checkpointer = _open_checkpoints(workdir)
  try:
    step = _choose_step(workdir, checkpointer, None, False)
    meta = checkpointer.restore_meta(step)
    if not isinstance(meta.get("card"), dict) or not isinstance(meta.get("model"), dict):
      return None, None
    spec = meta["model"]
    if not isinstance(meta.get("preprocessing"), dict) or not isinstance(spec.get("args"), dict) \
        or not isinstance(spec["args"].get("in_features"), int):
      raise CheckpointError(f"{checkpointer.directory / str(step)}: its meta does not say the model and its"
                            " preprocessing (model.args.in_features, preprocessing)")
    try:
      model = create_model(spec["name"], **spec["args"])
    except (TypeError, ValueError, KeyError) as e:
      raise CheckpointError(f"{checkpointer.directory / str(step)}: its model cannot be built ({e})") from None
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    # The whole state as stored (its optimizer's too), the parameters as this model's.
    stored = checkpointer.stored_state(step)
    target = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding), stored)
    target["params"] = abstract_like(params, sharding)
    state, _ = checkpointer.restore(step, target)
  finally:
    checkpointer.close()
  if not all_finite(state["params"]):
    raise CheckpointError(f"{workdir}: the parameters of step {step} are not all finite; not used")
  model = nnx.merge(graphdef, state["params"], rest)
  data = {"name": workdir.name, "format": FORMAT, "task": meta.get("task", "regression"), "model": spec,
          "preprocessing": meta["preprocessing"], "metrics": meta.get("metrics") or {}, **meta["card"],
          "recipe": {"experiment": meta.get("experiment"), "step": step, "command": meta.get("command")}}
  if data["task"] == "classification":
    data["classes"] = list(meta.get("classes") or [])
  from flaxzoo.zoo.links import link_of

  if link_of(model) != "identity":  # a GLM's outputs are log means (checkpoints before the meta said so too)
    data["link"] = link_of(model)
  card = Card(data, workdir)
  outputs = model(np.zeros((1, spec["args"]["in_features"]), np.float32)).shape[-1]
  check_fits(card, spec["args"]["in_features"], int(outputs))
  return model, card


def plot_workdir(workdir, out_dir=None, data_dir=None, log=None) -> list[pathlib.Path]:
  """`flaxzoo plot`: the plots of a training workdir (its metrics.jsonl and latest checkpoint)."""
  workdir = pathlib.Path(workdir)
  records = read_metrics(workdir)
  if not records:
    raise MetricLogError(f"{workdir / 'metrics.jsonl'}: no records yet")
  trainer, meta = load_trained(workdir, data_dir=data_dir, log=log)
  from flaxzoo.experiments.plots import draw, plot_inputs

  inputs = plot_inputs(trainer, meta["data"], meta["config"]["name"], meta["step"])
  return draw(records, inputs, out_dir or workdir / "plots")
