"""Any dataset as a classification (`--dataset csv:PATH --label COLUMN`): logistic or softmax by class count."""

from flaxzoo.experiments.config import Config


def get_config() -> Config:
  return Config(name="linear_classifier", task="classification")
