"""Models of the zoo (Flax NNX) and their registry."""

from flaxzoo.zoo import models as _models  # Registers the models.
from flaxzoo.zoo.initializers import reference_init as reference_init
from flaxzoo.zoo.linear import LinearRegression as LinearRegression
from flaxzoo.zoo.logistic import LinearClassifier as LinearClassifier
from flaxzoo.zoo.pretrained import Card as Card
from flaxzoo.zoo.pretrained import list_pretrained as list_pretrained
from flaxzoo.zoo.pretrained import load_pretrained as load_pretrained
from flaxzoo.zoo.pretrained import predict as predict
from flaxzoo.zoo.pretrained import read_card as read_card
from flaxzoo.zoo.pretrained import read_card_summary as read_card_summary
from flaxzoo.zoo.registry import ModelSpec as ModelSpec
from flaxzoo.zoo.registry import UnknownNameError as UnknownNameError
from flaxzoo.zoo.registry import create_model as create_model
from flaxzoo.zoo.registry import get_model_spec as get_model_spec
from flaxzoo.zoo.registry import list_models as list_models
from flaxzoo.zoo.registry import register_model as register_model

del _models
