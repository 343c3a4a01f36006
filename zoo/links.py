"""A model's outputs as what it predicts, written once for every path (the estimators, `Trainer`, a card's
`predict` on a workdir, an export or a sweep's best, the plots): the inverse link of a regression and the
probabilities and decision of a classifier. NumPy in float64; a model's outputs in, answers out.
"""

from __future__ import annotations

import numpy as np

# A regression model's link: its outputs are `link(mean)`.
LINKS = ("identity", "log")


def link_of(model) -> str:
  """The link a zoo model declares (`GeneralizedLinear.link` is `"log"`), else `"identity"`."""
  return getattr(model, "link", "identity")


def inverse_link(link: str, outputs) -> np.ndarray:
  """The predicted means of a regression's `outputs [n, k]` (float64): `exp` for the log link."""
  if link not in LINKS:
    raise ValueError(f"link must be one of {', '.join(LINKS)}, got {link!r}")
  outputs = np.asarray(outputs)
  if link == "log":
    with np.errstate(over="ignore"):  # an overflow is an infinite mean, refused where it is shown
      return np.exp(outputs.astype(np.float64))
  return outputs


def probabilities(outputs) -> np.ndarray:
  """Class probabilities `[n, classes]` (float64) of a classifier's logits: one logit `[n, 1]` (or `[n]`) is
  the second class's (logistic), several are a softmax's."""
  scores = np.asarray(outputs, np.float64)
  scores = scores.reshape(len(scores), -1)
  if scores.shape[1] == 1:
    # The logistic function without overflow: exp of a non-positive number only.
    z = scores[:, 0]
    e = np.exp(-np.abs(z))
    p1 = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    return np.stack([1 - p1, p1], axis=1)
  shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
  return shifted / shifted.sum(axis=1, keepdims=True)


def decide(outputs) -> np.ndarray:
  """The predicted class index `[n]` of a classifier's logits: the second class where its one logit is > 0,
  else the largest logit (decided on the logits, not on rounded probabilities: a logit of 1e-20 is class 1)."""
  scores = np.asarray(outputs)
  scores = scores.reshape(len(scores), -1)
  return (scores[:, 0] > 0).astype(np.int64) if scores.shape[1] == 1 else np.argmax(scores, axis=1)
