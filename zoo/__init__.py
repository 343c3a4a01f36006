"""Models of the zoo (Flax NNX) and their registry."""

from typing import TYPE_CHECKING

from flaxzoo.zoo.registry import lazy_exports

# Name -> module, imported on first use: `import flaxzoo.zoo` costs nothing
# until a name is used (the CLI's --help and list import no JAX).
_EXPORTS = {
    "reference_init": "flaxzoo.zoo.initializers",
    "LinearRegression": "flaxzoo.zoo.linear",
    "LinearClassifier": "flaxzoo.zoo.logistic",
    "ModelSpec": "flaxzoo.zoo.models",
    "StackedModels": "flaxzoo.zoo.models",
    "create_model": "flaxzoo.zoo.models",
    "create_models": "flaxzoo.zoo.models",
    "get_model_spec": "flaxzoo.zoo.models",
    "list_models": "flaxzoo.zoo.models",
    "register_model": "flaxzoo.zoo.models",
    "Registry": "flaxzoo.zoo.registry",
    "UnknownNameError": "flaxzoo.zoo.registry",
}

if TYPE_CHECKING:
  from flaxzoo.zoo.initializers import reference_init as reference_init
  from flaxzoo.zoo.linear import LinearRegression as LinearRegression
  from flaxzoo.zoo.logistic import LinearClassifier as LinearClassifier
  from flaxzoo.zoo.models import ModelSpec as ModelSpec
  from flaxzoo.zoo.models import StackedModels as StackedModels
  from flaxzoo.zoo.models import create_model as create_model
  from flaxzoo.zoo.models import create_models as create_models
  from flaxzoo.zoo.models import get_model_spec as get_model_spec
  from flaxzoo.zoo.models import list_models as list_models
  from flaxzoo.zoo.models import register_model as register_model
  from flaxzoo.zoo.registry import Registry as Registry
  from flaxzoo.zoo.registry import UnknownNameError as UnknownNameError


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
