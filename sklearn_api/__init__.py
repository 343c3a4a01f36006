"""scikit-learn estimators of flaxzoo's models (`pip install 'flaxzoo[sklearn]'`).

The folder is `sklearn_api/` and installs as `flaxzoo.sklearn`: a top-level `sklearn/` would shadow
scikit-learn itself for anything run from the repository root.
"""

from typing import TYPE_CHECKING

from flaxzoo.zoo.registry import lazy_exports

_EXPORTS = {
    "ElasticNet": "flaxzoo.sklearn.elastic_net",
    "ElasticNetCV": "flaxzoo.sklearn.elastic_net",
    "GammaRegressor": "flaxzoo.sklearn.glm",
    "HuberRegressor": "flaxzoo.sklearn.robust",
    "Lasso": "flaxzoo.sklearn.elastic_net",
    "LinearClassifier": "flaxzoo.sklearn.estimators",
    "LinearClassifierCV": "flaxzoo.sklearn.cv",
    "LinearRegressionCV": "flaxzoo.sklearn.cv",
    "LinearRegression": "flaxzoo.sklearn.estimators",
    "PoissonRegressor": "flaxzoo.sklearn.glm",
    "QuantileRegressor": "flaxzoo.sklearn.robust",
    "TweedieRegressor": "flaxzoo.sklearn.glm",
    "CardFeatures": "flaxzoo.sklearn.pretrained",
    "from_pretrained": "flaxzoo.sklearn.pretrained",
    "load": "flaxzoo.sklearn.pretrained",
    "save": "flaxzoo.sklearn.saving",
}

if TYPE_CHECKING:
  from flaxzoo.sklearn.cv import LinearClassifierCV as LinearClassifierCV
  from flaxzoo.sklearn.cv import LinearRegressionCV as LinearRegressionCV
  from flaxzoo.sklearn.elastic_net import ElasticNet as ElasticNet
  from flaxzoo.sklearn.elastic_net import ElasticNetCV as ElasticNetCV
  from flaxzoo.sklearn.elastic_net import Lasso as Lasso
  from flaxzoo.sklearn.estimators import LinearClassifier as LinearClassifier
  from flaxzoo.sklearn.estimators import LinearRegression as LinearRegression
  from flaxzoo.sklearn.glm import GammaRegressor as GammaRegressor
  from flaxzoo.sklearn.glm import PoissonRegressor as PoissonRegressor
  from flaxzoo.sklearn.glm import TweedieRegressor as TweedieRegressor
  from flaxzoo.sklearn.pretrained import CardFeatures as CardFeatures
  from flaxzoo.sklearn.pretrained import from_pretrained as from_pretrained
  from flaxzoo.sklearn.pretrained import load as load
  from flaxzoo.sklearn.robust import HuberRegressor as HuberRegressor
  from flaxzoo.sklearn.robust import QuantileRegressor as QuantileRegressor
  from flaxzoo.sklearn.saving import save as save

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
