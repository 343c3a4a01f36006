"""Cross-validation folds as every CV estimator encodes them: each fold's training rows from the splitter's own
`(train, test)` pairs, as masks; and those as sums of disjoint parts (least squares then sums each part's rows
once, and every training set's Gram matrix is a sum of the parts')."""

from __future__ import annotations

import numpy as np


def split(cv, X, y, classifier: bool) -> list[tuple[np.ndarray, np.ndarray]]:
  """The splitter's `(train, test)` pairs: `cv` an int (KFold, StratifiedKFold for a classifier), a splitter or
  an iterable of splits; None: 5."""
  from sklearn.model_selection import check_cv

  return list(check_cv(cv if cv is not None else 5, y, classifier=classifier).split(X, y))


def training_masks(folds, n: int, refit: bool) -> np.ndarray:
  """`[F (+1), n]` bool: each fold's training rows as the splitter gives them; with `refit`, a last mask of every
  row (the model refitted on all of them)."""
  masks = np.zeros((len(folds) + refit, n), bool)
  for mask, (train, _) in zip(masks, folds):
    mask[train] = True
  if refit:
    masks[-1] = True
  return masks


def as_parts(masks: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """`(parts [G, n], mix [M, G])` with `mix @ parts = masks * weight`: the rows grouped by the training sets they
  are in (KFold and a refit: each fold's held-out rows, then the rows no fold holds out, in that order), a
  row in none of them in no part."""
  count, n = masks.shape
  if count <= 62:  # each row's membership as one integer, its first set the highest bit: sorted as the rows are
    bits = np.arange(count - 1, -1, -1, dtype=np.int64)
    codes, inverse = np.unique((1 << bits) @ masks.astype(np.int64), return_inverse=True)
    patterns = ((codes[:, None] >> bits) & 1).astype(bool)  # [G, M]: each part's training sets
  else:  # (np.unique of the rows themselves: 100k x 6 took 0.3 s)
    patterns, inverse = np.unique(masks.T, axis=0, return_inverse=True)
  parts = np.zeros((len(patterns), n))
  parts[np.ravel(inverse), np.arange(n)] = weight
  used = patterns.any(axis=1)
  return parts[used], patterns[used].T.astype(np.float64)
