"""The brain_age raw table and its reference train/test split (light: no TFDS import)."""

from __future__ import annotations

import pathlib

import numpy as np

RAW_FILE = pathlib.Path(__file__).with_name("brain_data.tsv")
RAW_SHA256 = "2145cce715e1cd033bd493d152844977df1fed7db7887e09e70b3547797a27b7"
VERSION = "1.0.0"  # the TFDS builder's version
SPLIT_SEED = 13
TEST_FRACTION = 0.1


def reference_split(num_rows: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
  """Row indices of the reference train and test splits, in reference order.

  `k1, _ = split(PRNGKey(seed))` with the legacy (non-partitionable) threefry,
  then `permutation(k1, num_rows)`: the first 90% are train, the rest test.
  Permuting indices gives the same order as permuting the rows themselves.
  """
  import jax  # Deferred: the builder module is imported by light-weight callers too.

  with jax.threefry_partitionable(False):
    k1, _ = jax.random.split(jax.random.PRNGKey(seed))
    order = np.asarray(jax.random.permutation(k1, num_rows))
  num_test = int(num_rows * TEST_FRACTION)
  return order[: num_rows - num_test], order[num_rows - num_test :]


def describe_split(num_rows: int = 652) -> str:
  num_test = int(num_rows * TEST_FRACTION)
  return (f"reference: permutation(split(PRNGKey({SPLIT_SEED}))[0], {num_rows}), legacy threefry;"
          f" {num_rows - num_test} train / {num_test} test")
