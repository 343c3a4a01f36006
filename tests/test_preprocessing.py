"""The reference preprocessing on known rows, and its serialisation."""

import json

import numpy as np
import pytest

from flaxzoo.datasets import TissueFractions, preprocessing_from_dict, read_volume_table
from flaxzoo.datasets.brain_age.brain_age_dataset_builder import RAW_FILE


def test_values_on_the_first_rows_match_hand_computation():
  table = read_volume_table(RAW_FILE)
  # Row 0: 716.28 / 1635.472 = 0.43797 -> 0.438; 425.44 / 1635.472 = 0.26013 -> 0.26;
  # 493.752 / 1635.472 = 0.30190 -> 0.302; age 24 -> 0.24.
  x, y = TissueFractions("tissue")(table)
  assert x.dtype == np.float32 and y.dtype == np.float32
  assert x.shape == (652, 3) and y.shape == (652,)
  np.testing.assert_array_equal(x[0], np.float32([0.438, 0.26, 0.302]))
  assert y[0] == np.float32(0.24)
  # Row 651 (last): 542.256 / 1571.064 = 0.34515 -> 0.345; age 86 -> 0.86.
  x, y = TissueFractions("gm")(table)
  assert x.shape == (652, 1)
  assert x[-1, 0] == np.float32(0.345) and y[-1] == np.float32(0.86)


def test_rounding_is_to_three_and_two_decimals():
  table = {"gm": np.array([1.0]), "wm": np.array([1.0]), "csf": np.array([1.0]),
           "total": np.array([3.0]), "age": np.array([33.333])}
  x, y = TissueFractions("tissue")(table)
  np.testing.assert_array_equal(x, np.float32([[0.333, 0.333, 0.333]]))
  assert y[0] == np.float32(0.33)


def test_round_trips_through_json():
  for features in ("gm", "tissue"):
    pre = TissueFractions(features)
    spec = json.loads(json.dumps(pre.to_dict()))
    assert spec["name"] == "tissue_fractions" and spec["params"]["features"] == features
    assert preprocessing_from_dict(spec) == pre


def test_postprocess_returns_years():
  np.testing.assert_allclose(TissueFractions().postprocess(np.float32([0.5, 0.24])), [50.0, 24.0], rtol=1e-6)


def test_unknown_feature_set_and_preprocessing_name():
  with pytest.raises(ValueError, match="unknown feature set 'wm'; known: gm, tissue"):
    TissueFractions("wm")
  with pytest.raises(ValueError, match="unknown preprocessing 'zscore'"):
    preprocessing_from_dict({"name": "zscore", "params": {}})
