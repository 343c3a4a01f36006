"""The names `flaxzoo.sklearn` re-exports (read by `lazy_loader.attach_stub` and by type checkers)."""

from .classifier import LinearClassifier as LinearClassifier
from .cv import LinearClassifierCV as LinearClassifierCV
from .cv import LinearRegressionCV as LinearRegressionCV
from .elastic_net import ElasticNet as ElasticNet
from .elastic_net import ElasticNetCV as ElasticNetCV
from .elastic_net import Lasso as Lasso
from .estimators import LinearRegression as LinearRegression
from .glm import GammaRegressor as GammaRegressor
from .glm import PoissonRegressor as PoissonRegressor
from .glm import TweedieRegressor as TweedieRegressor
from .pretrained import CardFeatures as CardFeatures
from .pretrained import from_pretrained as from_pretrained
from .pretrained import load as load
from .robust import HuberRegressor as HuberRegressor
from .robust import QuantileRegressor as QuantileRegressor
from .saving import save as save
