"""The brain-age gap (predicted − true age) and its bias correction (Smith et al. 2019)."""

from __future__ import annotations

import numpy as np

SMITH_2019 = "Smith et al. 2019, Estimation of brain age delta from brain imaging, NeuroImage 200:528-539"


def fit_bias(predicted, age) -> dict[str, float | str]:
  """The linear trend of the gap in age over the training split."""
  age = np.asarray(age, np.float64)
  slope, intercept = np.polyfit(age, np.asarray(predicted, np.float64) - age, 1)
  return {"slope": float(slope), "intercept": float(intercept), "fit_on": "train", "reference": SMITH_2019}


def corrected_gap(gap, age, bias) -> np.ndarray:
  """The gap minus its linear trend in age, `bias` from `fit_bias`."""
  return np.asarray(gap) - (bias["slope"] * np.asarray(age) + bias["intercept"])


def brain_age_metrics(predicted, age, bias) -> dict[str, float]:
  """Errors in years, R2, Pearson r and the mean brain-age gap, raw and bias-corrected."""
  predicted, age = np.asarray(predicted, np.float64), np.asarray(age, np.float64)
  gap = predicted - age
  corrected = corrected_gap(gap, age, bias)
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


def card_notes(age_train) -> dict:
  """The brain-age card's `model_card`: intended use, training cohort, limitations and licence."""
  age = np.asarray(age_train, np.float64)
  return {
      "intended_use": "research and teaching: a brain age and its gap per adult from gray-matter (and white-matter,"
                      " CSF) fractions of an MRI segmentation, for comparisons between groups; not a clinical"
                      " instrument for decisions about one person",
      "training_cohort": {"people": int(len(age)), "age_min": float(age.min()), "age_max": float(age.max()),
                          "age_mean": float(age.mean()),
                          "source": "the brain-age table of a public course repository (datasets/brain_age/README.md):"
                                    " 652 adults; scanner, site, sex and health are not recorded"},
      "outside_training_range": "a person whose model inputs lie outside the training split's range is flagged"
                                " (outside_training_range = yes) and still gets a point and an interval from the"
                                " same straight line: an extrapolation (ages below the cohort's, even negative,"
                                " have been seen); treat both as unreliable there",
      "limitations": [
          "one small cohort of unknown scanners, sites and demographics: the errors hold for people like it",
          "the interval assumes the linear trend and one residual variance at every age (its coverage per split is"
          " in prediction_interval.coverage)",
          "the raw gap shrinks toward the cohort's mean age (regression dilution): the corrected gap removes its"
          " linear trend in age (Smith et al. 2019); both are reported, raw and corrected",
      ],
      "licence": "the weights and code: Apache-2.0, flaxzoo's; the training table is the course repository's, which"
                 " states no licence of its own: check it before redistributing the data",
  }


def card_readme(card) -> str:
  """The README of a brain-age regression card (generated from card.json)."""
  from flaxzoo.datasets.preprocessing import uncertainty_lines

  test, train = card["metrics"]["test"], card["metrics"]["train"]
  rows = "\n".join(
      f"| {split} | {m['count']} | {m['mae_years']:.3f} | {m['rmse_years']:.3f} | {m['r2']:.5f} | {m['pearson_r']:.4f}"
      f" | {m['mean_gap_years']:+.3f} | {m['mean_corrected_gap_years']:+.3f} |"
      for split, m in (("train", train), ("test", test))
  )
  pre = card["preprocessing"]["params"]
  bias = card["bias_correction"]
  least_squares = ""
  if "least_squares" in card:
    least_squares = (
        f"\nTraining MSE {train['mse']:.6f}: {100 * card['least_squares']['train_mse_excess']:.3f}% above the exact"
        f"\nleast-squares optimum of the training split ({card['least_squares']['train_mse_optimum']:.6f}).")
  uncertainty = uncertainty_lines(card) + _interval_lines(card) + _model_card_lines(card)
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

{uncertainty}Recipe: `{card['recipe']['command']}` (step {card['recipe']['step']}; the full config is in
card.json).{least_squares}
Dataset sha256: `{card['dataset']['sha256']}`. Generated from card.json by `flaxzoo export`.

```python
from flaxzoo.checkpoints import load_pretrained, predict
model, card = load_pretrained("./{card['name']}")   # this folder (a path), from the one that holds it
ages = predict(model, card, table)["predicted_age"]   # table: gm, wm, csf, total (cm^3)
```
"""


def _interval_lines(card) -> str:
  entry = card.get("prediction_interval")
  if not entry:
    return ""
  coverage = ", ".join(f"{split} {100 * value:.1f}%" for split, value in entry["coverage"].items())
  return (f"Each prediction carries a {100 * entry['confidence']:.0f}% interval (`age_low`, `age_high`: least"
          f" squares' observation interval, Student t with {entry['df_resid']:g} degrees of freedom); the share of"
          f" people inside theirs: {coverage}.\n\n")


def _model_card_lines(card) -> str:
  notes = card.get("model_card")
  if not notes:
    return ""
  cohort = notes["training_cohort"]
  limits = "".join(f"- {line}\n" for line in notes["limitations"])
  return (f"Intended use: {notes['intended_use']}.\n\nTraining cohort: {cohort['people']} people aged"
          f" {cohort['age_min']:g} to {cohort['age_max']:g} (mean {cohort['age_mean']:.1f}); {cohort['source']}.\n\n"
          f"Outside the training range: {notes['outside_training_range']}.\n\nLimitations:\n{limits}\n"
          f"Licence: {notes['licence']}.\n\n")
