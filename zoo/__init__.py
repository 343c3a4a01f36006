"""Models of the zoo (Flax NNX) and their registry."""

from flaxzoo.zoo.initializers import reference_init as reference_init
from flaxzoo.zoo.linear import LinearRegression as LinearRegression
from flaxzoo.zoo.logistic import LinearClassifier as LinearClassifier
from flaxzoo.zoo.models import ModelSpec as ModelSpec
from flaxzoo.zoo.models import create_model as create_model
from flaxzoo.zoo.models import get_model_spec as get_model_spec
from flaxzoo.zoo.models import list_models as list_models
from flaxzoo.zoo.models import register_model as register_model
from flaxzoo.zoo.registry import Registry as Registry
from flaxzoo.zoo.registry import UnknownNameError as UnknownNameError
