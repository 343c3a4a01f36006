"""Any dataset (`--dataset csv:PATH --label COLUMN`, or `tfds:NAME`): the task inferred from the label.

The model and loss follow the task (linear_regression/mse; logistic or softmax
regression for 2 or more classes); features standardised on the train split.
"""

from flaxzoo.experiments.config import Config


def get_config() -> Config:
  return Config(name="linear")  # the schema's defaults are the generic ones
