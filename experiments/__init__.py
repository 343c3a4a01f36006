"""The run layer: the config schema, named experiments, the runner, the workdir, run logs, plots, the CLI."""

from flaxzoo.experiments.config import Config as Config
from flaxzoo.experiments.errors import ConfigError as ConfigError
from flaxzoo.experiments.errors import Interrupted as Interrupted
from flaxzoo.experiments.errors import MetricLogError as MetricLogError
from flaxzoo.experiments.named import get_experiment as get_experiment
from flaxzoo.experiments.named import list_experiments as list_experiments
from flaxzoo.experiments.runner import run_experiment as run_experiment
from flaxzoo.experiments.trained import evaluate_checkpoint as evaluate_checkpoint
from flaxzoo.experiments.trained import load_trained as load_trained
