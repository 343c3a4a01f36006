"""The run layer: the config schema, named experiments, the runner, the workdir, run logs, plots, the CLI."""

from typing import TYPE_CHECKING

# Name -> module. Imported on first use, so that `import flaxzoo.experiments` costs nothing
# until a name is used (the CLI's --help and list import no JAX).
_EXPORTS = {
    "Config": "flaxzoo.experiments.config",
    "ConfigError": "flaxzoo.experiments.errors",
    "Interrupted": "flaxzoo.experiments.errors",
    "MetricLogError": "flaxzoo.experiments.errors",
    "get_experiment": "flaxzoo.experiments.named",
    "list_experiments": "flaxzoo.experiments.named",
    "run_experiment": "flaxzoo.experiments.runner",
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
  from flaxzoo.experiments.trained import evaluate_checkpoint as evaluate_checkpoint
  from flaxzoo.experiments.trained import load_trained as load_trained


def __getattr__(name: str):
  if name in _EXPORTS:
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
  return sorted(_EXPORTS)


__all__ = sorted(_EXPORTS)
