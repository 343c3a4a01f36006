"""Pictures of a run, written as PNGs with matplotlib's Agg backend (no screen).

- `loss.png`: the training objective at each logged step and the train and
  test loss (MSE or log loss) of the parameters, log scale.
- regression: `predicted_vs_true.png` in the label's own unit (years for
  brain age), with the identity line; where the data names its residual
  (brain age: the brain-age gap), also `<name>.png`: the residual (predicted −
  true) against the true value with its linear trend fitted on the training
  split, and the residual after subtracting that trend (for brain age the
  bias correction of Smith et al. 2019).
- classification: `roc.png` (binary: the ROC curve; more classes: one
  against the rest) and `confusion.png` (test split).
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

FIGSIZE, DPI = (6.4, 4.8), 100  # 640 x 480 pixels


def _pyplot():
  import matplotlib

  matplotlib.use("Agg", force=True)
  import matplotlib.pyplot as plt

  return plt


def _save(fig, path: pathlib.Path) -> pathlib.Path:
  # Fixed margins: tight_layout measures every text box and costs ~0.2 s a figure. A log axis's ticks are
  # written short (`0.46`, `3.61e8`; its minor ticks were `4.6 x 10^-1`, wider than the margin, and the label was
  # clipped); a linear axis's numbers beyond 4 digits are scaled, the power written above it (`1e5`).
  from matplotlib.ticker import FuncFormatter, ScalarFormatter

  def short(value, _):
    mantissa, _, exponent = f"{value:.3g}".partition("e")
    return f"{mantissa}e{int(exponent)}" if exponent else mantissa

  for ax in fig.axes:
    if ax.get_yscale() == "log":
      ax.yaxis.set_major_formatter(FuncFormatter(short))
      ax.yaxis.set_minor_formatter(FuncFormatter(short))
    elif isinstance(ax.yaxis.get_major_formatter(), ScalarFormatter):
      ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4))
  fig.subplots_adjust(left=0.12, right=0.97, bottom=0.11, top=0.88 if fig._suptitle else 0.92, wspace=0.08)
  tmp = path.with_name(f".{path.name}.tmp")
  fig.savefig(tmp, dpi=DPI, format="png")
  _pyplot().close(fig)
  os.replace(tmp, path)  # a reader (or a kill) never sees half a PNG
  return path


def plot_loss(records: Sequence[dict[str, Any]], title: str, path: pathlib.Path,
              mse_unit: str = "label units²") -> pathlib.Path:
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=FIGSIZE)
  steps = [r["step"] for r in records]
  key = "log_loss" if "log_loss" in (records[-1].get("test") or {}) else "mse"
  ax.plot(steps, [r["loss"] for r in records], label="training objective (logged)", color="0.6", lw=1)
  for split, color in (("train", "tab:blue"), ("test", "tab:orange")):
    points = [(r["step"], r[split][key]) for r in records if key in (r.get(split) or {})]
    if points:
      ax.plot(*zip(*points), label=f"{split} {key}", color=color, marker="o", ms=3)
  ax.set_yscale("log")
  ax.set_xlabel("step")
  ax.set_ylabel(f"MSE ({mse_unit})" if key == "mse" else "log loss (nats)")
  ax.set_title(title)
  ax.legend()
  ax.grid(alpha=0.3, which="both")
  return _save(fig, path)


def plot_predicted_vs_true(true: dict[str, np.ndarray], predicted: dict[str, np.ndarray], unit: str, title: str,
                           path: pathlib.Path) -> pathlib.Path:
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=FIGSIZE)
  for split, style in (("train", dict(color="tab:blue", alpha=0.35, s=10)), ("test", dict(color="tab:orange", s=18))):
    ax.scatter(true[split], predicted[split], label=f"{split} ({len(true[split])})", **style)
  everything = np.concatenate([*true.values(), *predicted.values()])
  lo, hi = float(everything.min()), float(everything.max())
  ax.plot([lo, hi], [lo, hi], color="k", lw=1, label="identity")
  ax.set_xlabel(f"true ({unit})")
  ax.set_ylabel(f"predicted ({unit})")
  ax.set_title(title)
  ax.legend()
  ax.grid(alpha=0.3)
  return _save(fig, path)


def plot_residual(true: dict[str, np.ndarray], predicted: dict[str, np.ndarray], name: str, unit: str, title: str,
                  path: pathlib.Path) -> pathlib.Path:
  """The residual `name` (predicted − true) against the true value, raw and with its train-split trend removed."""
  plt = _pyplot()
  fig, (raw_ax, corrected_ax) = plt.subplots(1, 2, figsize=FIGSIZE, sharey=True)
  age = true
  gap = {s: predicted[s] - age[s] for s in age}
  slope, intercept = np.polyfit(age["train"], gap["train"], 1)
  line = np.linspace(min(a.min() for a in age.values()), max(a.max() for a in age.values()), 2)
  for split, style in (("train", dict(color="tab:blue", alpha=0.35, s=8)), ("test", dict(color="tab:orange", s=14))):
    raw_ax.scatter(age[split], gap[split], label=split, **style)
    corrected_ax.scatter(age[split], gap[split] - (slope * age[split] + intercept), label=split, **style)
  raw_ax.plot(line, slope * line + intercept, color="k", lw=1.5,
              label=f"fit on train: {slope:+.3f}·true {intercept:+.1f}")
  corrected_ax.axhline(0, color="k", lw=1)
  raw_ax.set_title(name)
  corrected_ax.set_title(f"bias-corrected {name.split()[-1]}")
  for ax in (raw_ax, corrected_ax):
    ax.set_xlabel(f"true ({unit})")
    ax.grid(alpha=0.3)
  raw_ax.set_ylabel(f"predicted − true ({unit})")
  raw_ax.legend(fontsize=8)
  fig.suptitle(title)
  return _save(fig, path)


def _roc_points(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  order = np.argsort(-scores, kind="stable")
  scores, positive = scores[order], positive[order].astype(np.float64)
  distinct = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # last index of each score
  tp, fp = np.cumsum(positive)[distinct], np.cumsum(1 - positive)[distinct]
  return np.r_[0, fp / max(fp[-1], 1)], np.r_[0, tp / max(tp[-1], 1)]


def plot_roc(scores: dict[str, np.ndarray], labels: dict[str, np.ndarray], classes: Sequence[str], title: str,
             path: pathlib.Path) -> pathlib.Path:
  """scores `[n]` (binary) or `[n, classes]`; labels `[n]` class indices."""
  from flaxzoo.trainers.metrics import roc_auc

  plt = _pyplot()
  fig, ax = plt.subplots(figsize=FIGSIZE)
  for split, ls in (("train", "--"), ("test", "-")):
    s, y = scores[split], labels[split]
    curves = [(classes[1], s, y == 1)] if s.ndim == 1 else [(c, s[:, k], y == k) for k, c in enumerate(classes)]
    for name, score, positive in curves:
      fpr, tpr = _roc_points(score, positive)
      ax.plot(fpr, tpr, ls=ls, label=f"{split}, {name} (AUC {roc_auc(score, positive):.3f})")
  ax.plot([0, 1], [0, 1], color="0.6", lw=1)
  ax.set_xlabel("false positive rate")
  ax.set_ylabel("true positive rate")
  ax.set_title(title)
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  return _save(fig, path)


def plot_confusion(confusion: Sequence[Sequence[int]], classes: Sequence[str], title: str,
                   path: pathlib.Path) -> pathlib.Path:
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=FIGSIZE)
  matrix = np.asarray(confusion)
  ax.imshow(matrix, cmap="Blues")
  for (i, j), count in np.ndenumerate(matrix):
    ax.text(j, i, str(count), ha="center", va="center",
            color="white" if count > matrix.max() / 2 else "black")
  ax.set_xticks(range(len(classes)), classes)
  ax.set_yticks(range(len(classes)), classes)
  ax.set_xlabel("predicted class")
  ax.set_ylabel("true class")
  ax.set_title(title)
  return _save(fig, path)


def plot_inputs(trainer, data, experiment: str, step: int) -> dict[str, Any]:
  """What the plots of a trained run show, as plain arrays and text (`draw` needs no JAX).

  `data` is the run's `LoadedData`; `trainer` holds the trained parameters.
  """
  pre = data.preprocessing
  unit = pre.label_unit or "label units"
  inputs = {
      "title": f"{experiment}, step {step}", "task": data.task, "unit": unit, "label": getattr(pre, "label", "label"),
      "mse_unit": f"(label / {pre.label_scale:g} {unit})²" if pre.label_scale else "label units²",
      "residual_name": pre.residual_name, "has_unit": pre.label_unit is not None,
  }
  splits = data.splits
  if data.task == "regression":
    inputs["true"] = {s: pre.natural_labels(data.raw[s]) for s in splits}
    inputs["predicted"] = {s: pre.postprocess(trainer.predict_means(x))[:, 0] for s, (x, _) in splits.items()}
  else:
    inputs["classes"] = list(data.class_names)
    outputs = {s: trainer.predict(x) for s, (x, _) in splits.items()}
    inputs["scores"] = {s: (o[:, 0] if o.shape[1] == 1 else o) for s, o in outputs.items()}
    inputs["labels"] = {s: np.asarray(y) for s, (_, y) in splits.items()}
    inputs["confusion"] = trainer.evaluate(splits["test"])["confusion"]
  return inputs


def draw(records, inputs: dict[str, Any], out_dir) -> list[pathlib.Path]:
  """The PNGs of `plot_inputs` and the run's metric `records` into `out_dir`. Returns the files."""
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  title, unit = inputs["title"], inputs["unit"]
  files = [plot_loss(records, f"{title}: loss", out / "loss.png", inputs["mse_unit"])]
  if inputs["task"] == "regression":
    true, predicted = inputs["true"], inputs["predicted"]
    files.append(plot_predicted_vs_true(true, predicted, unit if inputs["has_unit"] else inputs["label"],
                                        f"{title}: predicted {inputs['label']}", out / "predicted_vs_true.png"))
    if inputs["residual_name"]:
      name = inputs["residual_name"]
      files.append(plot_residual(true, predicted, name, unit, f"{title}: {name}",
                                 out / f"{name.replace('-', '_').replace(' ', '_')}.png"))
  else:
    classes = inputs["classes"]
    files.append(plot_roc(inputs["scores"], inputs["labels"], classes, f"{title}: ROC", out / "roc.png"))
    files.append(plot_confusion(inputs["confusion"], classes, f"{title}: test confusion matrix",
                                out / "confusion.png"))
  return files


def save_inputs(inputs: dict[str, Any], path: pathlib.Path) -> None:
  """`plot_inputs` as one .npz (arrays) with its text as JSON inside: read back by `load_inputs`."""
  arrays, text = {}, {}
  for key, value in inputs.items():
    if isinstance(value, dict):
      for split, array in value.items():
        arrays[f"{key}/{split}"] = np.asarray(array)
    else:
      text[key] = value
  arrays["text"] = np.asarray(json.dumps(text))
  with open(path, "wb") as f:
    np.savez(f, **arrays)


def load_inputs(path: pathlib.Path) -> dict[str, Any]:
  with np.load(path, allow_pickle=False) as stored:  # numbers and text only: nothing that runs
    inputs = json.loads(str(stored["text"]))
    for name in stored.files:
      if "/" in name:
        key, split = name.split("/", 1)
        inputs.setdefault(key, {})[split] = stored[name]
  return inputs
