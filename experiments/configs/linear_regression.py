"""Any dataset as a regression (`--dataset csv:PATH --label COLUMN`)."""

from flaxzoo.experiments.config import Config


def get_config() -> Config:
  return Config(name="linear_regression", task="regression")
