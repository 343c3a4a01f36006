"""The brain-age reference (DESIGN.md): GM fraction → age / 100; 15000 full-batch GD steps, lr 0.05, MSE, seed 13.

  flaxzoo train brain_age_gm    # ~3 s; train MSE 0.009137, test R2 0.69809, test MAE 8.086 years
"""

from flaxzoo.experiments.config import Config


def get_config() -> Config:
  return Config(
      name="brain_age_gm", dataset="brain_age", features="gm", model="linear_regression", loss="mse",
      init="reference",  # the reference run's weights: w = -0.47798702, b = 1.2634865 for one feature
      optimizer="sgd", learning_rate=0.05, steps=15000, seed=13, log_every=1000,
      standardize=False,  # the reference feeds the rounded fractions as they are
  )
