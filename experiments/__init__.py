"""The run layer: the config schema, named experiments, the runner, the workdir, run logs, plots, the CLI."""

from typing import TYPE_CHECKING

from flaxzoo.zoo.registry import lazy_exports

# Name -> module, imported on first use: `import flaxzoo.experiments` costs nothing
# until a name is used (the CLI's --help and list import no JAX).
_EXPORTS = {
    "Config": "flaxzoo.experiments.config",
    "ConfigError": "flaxzoo.experiments.errors",
    "Interrupted": "flaxzoo.experiments.errors",
    "MetricLogError": "flaxzoo.experiments.errors",
    "get_experiment": "flaxzoo.experiments.named",
    "list_experiments": "flaxzoo.experiments.named",
    "run_experiment": "flaxzoo.experiments.runner",
    "run_sweep": "flaxzoo.experiments.sweep",
    "evaluate_checkpoint": "flaxzoo.experiments.trained",
    "load_trained": "flaxzoo.experiments.trained",
}

if TYPE_CHECKING:
  from flaxzoo.experiments.config import Config as Config
  from flaxzoo.experiments.errors import ConfigError as ConfigError
  from flaxzoo.experiments.errors import Interrupted as Interrupted
  from flaxzoo.experiments.errors import MetricLogError as MetricLogError
  from flaxzoo.experiments.named import get_experiment as get_experiment
  from flaxzoo.experiments.named import list_experiments as list_experiments
  from flaxzoo.experiments.runner import run_experiment as run_experiment
  from flaxzoo.experiments.sweep import run_sweep as run_sweep
  from flaxzoo.experiments.trained import evaluate_checkpoint as evaluate_checkpoint
  from flaxzoo.experiments.trained import load_trained as load_trained


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
