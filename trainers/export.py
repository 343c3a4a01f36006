"""Exporting a trained run as a pretrained checkpoint: params + card.json + README.md."""

from __future__ import annotations

import pathlib
import shlex
import shutil
import sys
from typing import Any

import jax
import numpy as np
from flax import nnx

from flaxzoo.datasets.preprocessing import TissueFractions
from flaxzoo.trainers.config import ConfigError
from flaxzoo.trainers.experiment import library_versions, load_trained, write_json_atomic
from flaxzoo.trainers.progress import track

SMITH_2019 = "Smith et al. 2019, Estimation of brain age delta from brain imaging, NeuroImage 200:528-539"


def brain_age_metrics(predicted: np.ndarray, age: np.ndarray, bias: dict[str, float]) -> dict[str, float]:
  """Errors in years, R2, Pearson r and the mean brain-age gap, raw and bias-corrected."""
  predicted, age = np.asarray(predicted, np.float64), np.asarray(age, np.float64)
  gap = predicted - age
  corrected = gap - (bias["slope"] * age + bias["intercept"])
  return {
      "count": int(len(age)),
      "mae_years": float(np.mean(np.abs(gap))),
      "rmse_years": float(np.sqrt(np.mean(gap**2))),
      "r2": float(1 - np.sum(gap**2) / np.sum((age - age.mean()) ** 2)),
      "pearson_r": float(np.corrcoef(predicted, age)[0, 1]),
      "mean_gap_years": float(np.mean(gap)),
      "mean_corrected_gap_years": float(np.mean(corrected)),
      "mae_corrected_years": float(np.mean(np.abs(corrected))),
  }


def _bias_fit(predicted, age) -> dict[str, float]:
  """The linear trend of the gap in age over the training split (Smith et al. 2019)."""
  slope, intercept = np.polyfit(np.asarray(age, np.float64), np.asarray(predicted, np.float64) - age, 1)
  return {"slope": float(slope), "intercept": float(intercept), "fit_on": "train", "reference": SMITH_2019}


def build_card(name: str, trainer, meta: dict[str, Any], data_dir=None) -> dict[str, Any]:
  """The card of a trained model: computed from the model and the data, never typed in.

  `meta` is `load_trained`'s (its `data` holds the run's splits and fitted preprocessing).
  """
  config, data = meta["config"], meta["data"]
  preprocessing = data.preprocessing
  card = {
      "name": name,
      "format": "flaxzoo-card/1",
      "task": data.task,
      "model": meta["model"],
      "preprocessing": preprocessing.to_dict(),
      "dataset": {**meta["dataset"], "splits": {s: len(y) for s, (_, y) in data.splits.items()}},
      "recipe": {"experiment": config["name"], "step": meta["step"], "config": config,
                 "command": _command(config)},
      "parameters": int(sum(np.size(leaf) for leaf in jax.tree.leaves(trainer.params))),
      "versions": library_versions(),
  }
  if data.task == "classification":
    card["classes"] = list(data.class_names)
  if config["dataset"] == "brain_age":
    from flaxzoo.datasets import get_builder

    card["dataset"]["version"] = str(get_builder("brain_age", data_dir).version)
    card["dataset"]["split"] = "reference: permutation(split(PRNGKey(13))[0], 652), legacy threefry; 587 train / 65 test"
  if data.task == "classification" or not isinstance(preprocessing, TissueFractions):
    card["metrics"] = {split: trainer.evaluate(xy) for split, xy in track(data.splits.items(), "evaluating")}
    return card
  raw = data.raw
  predicted = {split: preprocessing.postprocess(trainer.predict(preprocessing.features_of(raw[split])))[:, 0]
               for split in raw}
  bias = _bias_fit(predicted["train"], raw["train"]["age"])
  card["metrics"] = {
      split: {**trainer.evaluate(data.splits[split]), **brain_age_metrics(predicted[split], raw[split]["age"], bias)}
      for split in track(raw, "evaluating")
  }
  card["bias_correction"] = bias
  # How far the weights are from the exact optimum of their own training objective.
  x_train, y_train = data.splits["train"]
  design = np.c_[x_train.astype(np.float64), np.ones(len(x_train))]
  coef = np.linalg.lstsq(design, y_train.astype(np.float64), rcond=None)[0]
  optimum_mse = float(np.mean((design @ coef - y_train) ** 2))
  card["least_squares"] = {
      "train_mse_optimum": optimum_mse,
      "train_mse_excess": card["metrics"]["train"]["mse"] / optimum_mse - 1,
      "note": "the closed-form least-squares optimum (np.linalg.lstsq) of the training split",
  }
  return card


def _command(config: dict[str, Any]) -> str:
  from flaxzoo.trainers.config import get_experiment

  words = ["flaxzoo", "train", config["name"]]
  try:
    defaults = get_experiment(config["name"]).to_dict()
  except ValueError:
    defaults = {}
  for key in ("dataset", "label", "features", "task", "optimizer", "l2", "steps"):
    if key == "steps" or config.get(key) != defaults.get(key):
      words += [f"--{key.replace('_', '-')}", str(config[key])]
  return " ".join(shlex.quote(w) for w in words)


def card_from_workdir(workdir):
  """`(model, card data)` of a training workdir's latest checkpoint."""
  trainer, meta = load_trained(workdir)
  return trainer.model, build_card(pathlib.Path(workdir).name, trainer, meta)


def _readme(card: dict[str, Any]) -> str:
  if "bias_correction" not in card:
    return _generic_readme(card)
  test, train = card["metrics"]["test"], card["metrics"]["train"]
  rows = "\n".join(
      f"| {split} | {m['count']} | {m['mae_years']:.3f} | {m['rmse_years']:.3f} | {m['r2']:.5f} | {m['pearson_r']:.4f}"
      f" | {m['mean_gap_years']:+.3f} | {m['mean_corrected_gap_years']:+.3f} |"
      for split, m in (("train", train), ("test", test))
  )
  pre = card["preprocessing"]["params"]
  bias = card["bias_correction"]
  return f"""# {card['name']}

Predicts a person's age (years) from brain tissue volumes measured on MRI: a
`{card['model']['name']}` ({card['parameters']} parameters) on the `{pre['features']}` features of
`{card['dataset']['name']}` (tissue volume / total volume, rounded to {pre['volume_decimals']} decimals; the
output × {pre['label_scale']:g} is the age in years).

| split | people | MAE (y) | RMSE (y) | R2 | Pearson r | mean gap (y) | mean corrected gap (y) |
|---|---|---|---|---|---|---|---|
{rows}

Brain-age gap = predicted − age. The corrected gap subtracts the gap's linear
trend in age fitted on the training split ({bias['slope']:+.4f} × age
{bias['intercept']:+.3f}; {bias['reference']}).

Recipe: `{card['recipe']['command']}` (step {card['recipe']['step']}; the full config is in card.json).
Training MSE {train['mse']:.6f}: {100 * card['least_squares']['train_mse_excess']:.3f}% above the exact
least-squares optimum of the training split ({card['least_squares']['train_mse_optimum']:.6f}).
Dataset sha256: `{card['dataset']['sha256']}`. Generated from card.json by `flaxzoo export`.

```python
from flaxzoo.zoo import load_pretrained, predict
model, card = load_pretrained("{card['name']}")
ages = predict(model, card, table)["predicted_age"]   # table: gm, wm, csf, total (cm^3)
```
"""


def _generic_readme(card: dict[str, Any]) -> str:
  metrics = card["metrics"]
  columns = [c for c in ("accuracy", "balanced_accuracy", "log_loss", "roc_auc", "mse", "mae", "r2")
             if c in metrics["test"]]
  rows = "\n".join(f"| {split} | {m['count']} | " + " | ".join(f"{m[c]:.4f}" for c in columns) + " |"
                   for split, m in metrics.items())
  pre = card["preprocessing"]
  what = (f"classes {', '.join(card['classes'])}" if card["task"] == "classification" else "a number")
  standardised = "standardised with the training split's mean and std" if pre["params"].get("mean") else "as they are"
  confusion = ""
  if card["task"] == "classification":
    confusion = (f"\nTest confusion matrix (rows: true class, columns: predicted; {', '.join(card['classes'])}):"
                 f" `{metrics['test']['confusion']}`.\n")
  return f"""# {card['name']}

A `{card['model']['name']}` ({card['parameters']} parameters) trained on `{card['dataset']['name']}`
({card['task']}: predicts {what}; features {standardised}).

| split | examples | {' | '.join(columns)} |
|---|---|{'---|' * len(columns)}
{rows}
{confusion}
Recipe: `{card['recipe']['command']}` (step {card['recipe']['step']}; the full config is in card.json).
Generated from card.json by `flaxzoo export`.

```python
from flaxzoo.zoo import load_pretrained, predict
model, card = load_pretrained("{card['name']}")
result = predict(model, card, table)
```
"""


def export(workdir, name: str, out="checkpoints", *, step: int | None = None, force: bool = False,
           data_dir=None) -> pathlib.Path:
  """Writes `<out>/<name>/`: `params/` (Orbax, parameters only), `card.json`, `README.md`."""
  if not name or "/" in name or ".." in name or name.startswith("."):
    raise ConfigError(f"--name must be a plain folder name, got {name!r}")
  target = pathlib.Path(out) / name
  if target.exists() and not force:
    raise ConfigError(f"{target} exists; pass --force to replace it")
  trainer, meta = load_trained(workdir, step, data_dir=data_dir)
  card = build_card(name, trainer, meta, data_dir)
  card["recipe"]["exported_by"] = " ".join(shlex.quote(a) for a in ["flaxzoo", *sys.argv[1:]])
  staging = target.with_name(f".{name}.staging")
  shutil.rmtree(staging, ignore_errors=True)
  staging.mkdir(parents=True)
  import orbax.checkpoint as ocp

  params = jax.tree.map(np.asarray, nnx.split(trainer.model, nnx.Param, ...)[1])
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save((staging / "params").absolute(), params)
  write_json_atomic(staging / "card.json", card)
  (staging / "README.md").write_text(_readme(card))
  if target.exists():
    shutil.rmtree(target)
  staging.rename(target)
  return target
