"""Writes `tests/glum_l1.json`: glum's L1 / elastic-net GLM optima, the truth `tests/test_l1.py` compares the
GLM regressors' `l1_ratio` with (scikit-learn has no L1 GLM; glum, in the `bench` extra, is not a test
dependency: it pulls pyarrow).

  pip install '.[bench]' && python tests/glum_reference.py
"""

import json
import pathlib

import numpy as np

CASES = [("poisson", 1.0), ("gamma", 2.0), ("tweedie", 1.5)]
PENALTIES = [(0.05, 1.0), (0.2, 0.5)]


def data():
  """Diabetes progression on its features scaled 1e-2..1e2 (raw-looking), uneven sample weights."""
  from sklearn.datasets import load_diabetes

  x, y = load_diabetes(return_X_y=True)
  return x * np.logspace(-2, 2, x.shape[1]), y, np.random.default_rng(0).uniform(0.2, 3.0, len(y))


def main() -> None:
  import glum

  x, y, weight = data()
  out = {"glum": glum.__version__, "cases": []}
  for family, power in CASES:
    for alpha, l1_ratio in PENALTIES:
      distribution = glum.TweedieDistribution(power) if family == "tweedie" else family
      model = glum.GeneralizedLinearRegressor(family=distribution, link="log", alpha=alpha, l1_ratio=l1_ratio,
                                              gradient_tol=1e-12, max_iter=10_000, scale_predictors=False)
      model.fit(x, y, sample_weight=weight)
      out["cases"].append({"family": family, "power": power, "alpha": alpha, "l1_ratio": l1_ratio,
                           "coef": model.coef_.tolist(), "intercept": float(model.intercept_)})
  (pathlib.Path(__file__).parent / "glum_l1.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
  main()
