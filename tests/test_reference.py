"""The reference brain-age table (DESIGN.md), reproduced by the named experiments."""

import json

import numpy as np
import pytest

from flaxzoo.experiments import get_experiment, run_experiment

# train MSE, train R2, train MAE (years), test MSE, test R2, test MAE (years)
REFERENCE = {
    "brain_age_gm": (0.009137, 0.73446, 7.661, 0.010567, 0.69809, 8.086),
    "brain_age_tissue": (0.009145, 0.73424, 7.650, 0.010390, 0.70316, 8.024),
}


def assert_matches_reference(results, name):
  train_mse, train_r2, train_mae, test_mse, test_r2, test_mae = REFERENCE[name]
  assert results["experiment"] == name and results["step"] == 15000
  for split, mse, r2, mae in (("train", train_mse, train_r2, train_mae), ("test", test_mse, test_r2, test_mae)):
    m = results[split]
    assert abs(m["mse"] - mse) <= 1e-5, (split, m["mse"])
    assert abs(m["r2"] - r2) <= 2e-4, (split, m["r2"])
    assert abs(m["mae_years"] - mae) <= 0.01, (split, m["mae_years"])


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_experiment_reproduces_the_reference_table(name, data_dir, tmp_path):
  results = run_experiment(get_experiment(name), workdir=tmp_path, data_dir=data_dir)
  assert_matches_reference(results, name)
  assert_matches_reference(json.loads((tmp_path / "results.json").read_text()), name)
  if name == "brain_age_gm":
    np.testing.assert_allclose(results["params"]["linear/kernel"], [[-2.8227]], atol=1e-4)
    np.testing.assert_allclose(results["params"]["linear/bias"], [1.7371], atol=1e-4)
