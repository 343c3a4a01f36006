"""Age >= 60 from standardised GM/WM/CSF fractions: binary logistic regression (test accuracy 0.8154)."""

from flaxzoo.experiments.config import Config


def get_config() -> Config:
  return Config(
      name="brain_age_group", dataset="brain_age", features="tissue", label="age_group",
      model="logistic_regression", loss="logistic", init="default", standardize=True,
      optimizer="sgd", learning_rate=1.0, steps=5000, seed=13, log_every=500,
  )
