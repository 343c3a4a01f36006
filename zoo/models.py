"""The registered models of the zoo."""

from flaxzoo.zoo.linear import LinearRegression
from flaxzoo.zoo.logistic import LinearClassifier
from flaxzoo.zoo.registry import register_model

register_model(
    "linear_regression", LinearRegression,
    "least-squares linear regression, [batch, d] -> [batch, out]",
    in_features=1, out_features=1,
)
register_model(
    "logistic_regression", LinearClassifier,
    "binary logistic regression, one logit",
    in_features=1, num_classes=2,
)
register_model(
    "softmax_regression", LinearClassifier,
    "multinomial (softmax) regression, num_classes logits",
    in_features=1, num_classes=3,
)
