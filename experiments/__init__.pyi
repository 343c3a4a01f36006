"""The names `flaxzoo.experiments` re-exports (read by `lazy_loader.attach_stub` and by type checkers)."""

from .config import Config as Config
from .errors import ConfigError as ConfigError
from .errors import Interrupted as Interrupted
from .errors import MetricLogError as MetricLogError
from .named import get_experiment as get_experiment
from .named import list_experiments as list_experiments
from .runner import run_experiment as run_experiment
from .sweep import run_sweep as run_sweep
from .trained import evaluate_checkpoint as evaluate_checkpoint
from .trained import load_trained as load_trained
