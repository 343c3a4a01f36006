"""Writes `claims.csv`: a synthetic table of insurance claim counts for the count-regression example.

  python datasets/claims/generate.py    # seed 0: the shipped file, byte for byte

5000 policies; the number of claims in a year is Poisson with log-mean `-1.6 + 0.5 young + 0.08 (power - 8) +
0.12 (log_density - 5) + 0.9 (bonus_malus - 1)` (young: a driver under 25), the kind of table (after
scikit-learn's French motor example) where least squares predicts negative counts and a Poisson GLM does
not. No real policyholder is in it.
"""

import pathlib

import numpy as np


def main(path: pathlib.Path | None = None) -> None:
  """Writes the table to `path` (default: `claims.csv` beside this file)."""
  rng = np.random.default_rng(0)
  n = 5000
  driver_age = rng.integers(18, 90, n)
  vehicle_power = rng.integers(4, 16, n)
  log_density = np.round(rng.uniform(0.0, 10.0, n), 3)
  bonus_malus = np.round(np.clip(rng.gamma(8.0, 1 / 8, n) + 0.5, 0.5, 2.3), 2)
  log_mean = (-1.6 + 0.5 * (driver_age < 25) + 0.08 * (vehicle_power - 8) + 0.12 * (log_density - 5)
              + 0.9 * (bonus_malus - 1))
  claims = rng.poisson(np.exp(log_mean))
  lines = ["driver_age,vehicle_power,log_density,bonus_malus,claims"]
  lines += [f"{a},{p},{d:.3f},{b:.2f},{c}" for a, p, d, b, c in zip(driver_age, vehicle_power, log_density,
                                                                        bonus_malus, claims)]
  (path or pathlib.Path(__file__).parent / "claims.csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
  main()
