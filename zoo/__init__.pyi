"""The names `flaxzoo.zoo` re-exports (read by `lazy_loader.attach_stub` and by type checkers)."""

from .initializers import reference_init as reference_init
from .linear import LinearRegression as LinearRegression
from .logistic import LinearClassifier as LinearClassifier
from .models import ModelSpec as ModelSpec
from .models import StackedModels as StackedModels
from .models import create_model as create_model
from .models import create_models as create_models
from .models import get_model_spec as get_model_spec
from .models import list_models as list_models
from .models import register_model as register_model
from .registry import Registry as Registry
from .registry import UnknownNameError as UnknownNameError
