"""flaxzoo.sklearn: scikit-learn's own conformance checks, and the same answers as scikit-learn's estimators."""

import jax
import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from flaxzoo.sklearn import (
  ElasticNet,
  ElasticNetCV,
  GammaRegressor,
  HuberRegressor,
  Lasso,
  LinearClassifier,
  LinearClassifierCV,
  LinearRegression,
  LinearRegressionCV,
  PoissonRegressor,
  QuantileRegressor,
  TweedieRegressor,
)


@pytest.fixture(autouse=True)
def standard_promotion():
  """The estimators run as a user's code does: JAX's standard dtype promotion (optax needs it)."""
  with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
    yield


# None: the exact solvers fit in float64, so weights equal repeated rows to ~1e-12 (check_sample_weight_equivalence)
# and C = 1 by default gives a finite optimum on the checks' separable data.
EXPECTED_FAILURES = {}


# ~120 checks an estimator, each fitting on data of its own shape: in the slow selection (CI runs it).
@pytest.mark.slow
@parametrize_with_checks([LinearRegression(), LinearClassifier(), LinearRegressionCV(), LinearClassifierCV(Cs=3),
                          PoissonRegressor(), GammaRegressor(), TweedieRegressor(power=1.5), TweedieRegressor(),
                          ElasticNet(), Lasso(), ElasticNetCV(), LinearClassifier(C=0.5, l1_ratio=0.5),
                          PoissonRegressor(alpha=0.1, l1_ratio=1.0), HuberRegressor(), QuantileRegressor(alpha=0.01)],
                         expected_failed_checks=lambda e: EXPECTED_FAILURES.get(type(e).__name__, {}))
def test_scikit_learn_conformance(estimator, check):
  check(estimator)


@pytest.mark.parametrize("estimator", [LinearRegression(), LinearClassifier(C=1.0)], ids=["regression", "classifier"])
def test_weights_equal_repeated_rows(estimator):
  from sklearn.base import clone

  rng = np.random.default_rng(0)
  x = rng.normal(size=(40, 4))
  y = x @ [1.0, -2.0, 0.5, 0.0] + rng.normal(0, 0.1, 40) if isinstance(estimator, LinearRegression) else \
      rng.integers(0, 3, 40)
  weights = rng.integers(0, 4, 40)
  weighted = clone(estimator).fit(x, y, sample_weight=weights)
  repeated = clone(estimator).fit(np.repeat(x, weights, axis=0), np.repeat(y, weights))
  np.testing.assert_allclose(weighted.coef_, repeated.coef_, atol=1e-5)
  np.testing.assert_allclose(weighted.intercept_, repeated.intercept_, atol=1e-5)


def test_regression_equals_scikit_learn_on_diabetes():
  from sklearn.datasets import load_diabetes
  from sklearn.linear_model import LinearRegression as Reference

  x, y = load_diabetes(return_X_y=True)
  ours, reference = LinearRegression().fit(x, y), Reference().fit(x, y)
  np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-4)
  np.testing.assert_allclose(ours.intercept_, reference.intercept_, rtol=1e-4)
  assert abs(ours.score(x, y) - reference.score(x, y)) <= 1e-4
  # Several targets at once: each its own least-squares fit.
  two = np.c_[y, -3 * y + 7]
  np.testing.assert_allclose(LinearRegression().fit(x, two).predict(x), Reference().fit(x, two).predict(x),
                             rtol=1e-4, atol=1e-3)


@pytest.mark.slow  # four fits to convergence on two datasets (~20 s of compilation)
@pytest.mark.parametrize("C", [np.inf, 1.0])
@pytest.mark.parametrize("dataset", ["iris", "breast_cancer"])
def test_classification_equals_logistic_regression(dataset, C):
  from sklearn import datasets
  from sklearn.linear_model import LogisticRegression
  from sklearn.metrics import log_loss
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler

  x, y = getattr(datasets, f"load_{dataset}")(return_X_y=True)
  ours = make_pipeline(StandardScaler(), LinearClassifier(C=C, tol=1e-10)).fit(x, y)
  reference = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=100_000, tol=1e-12)).fit(x, y)
  ours_loss, reference_loss = log_loss(y, ours.predict_proba(x)), log_loss(y, reference.predict_proba(x))
  if np.inf == C and dataset == "breast_cancer":  # separable: the loss goes to 0 on both sides, not to an optimum
    assert ours_loss < 1e-3 and reference_loss < 1e-3
  else:
    assert abs(ours_loss - reference_loss) <= 1e-4 * reference_loss, (ours_loss, reference_loss)
  assert (ours.predict(x) == reference.predict(x)).all()


@pytest.mark.slow  # 13 fits on folds of their own shapes
def test_pipelines_cross_validation_and_grid_search():
  from sklearn.datasets import load_breast_cancer
  from sklearn.model_selection import GridSearchCV, cross_val_score
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler

  x, y = load_breast_cancer(return_X_y=True)
  pipeline = make_pipeline(StandardScaler(), LinearClassifier(C=10.0))
  scores = cross_val_score(pipeline, x, y, cv=3)
  assert scores.mean() > 0.95
  search = GridSearchCV(pipeline, {"linearclassifier__C": [1e-2, 1.0, 100.0]}, cv=3).fit(x, y)
  assert search.best_params_["linearclassifier__C"] in (1.0, 100.0) and search.best_score_ > 0.95


def test_string_labels_probabilities_and_warm_start():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(300, 3))
  labels = np.asarray(["cat", "dog", "eel"])[np.argmax(x @ rng.normal(size=(3, 3)), axis=1)]
  model = LinearClassifier(C=10.0).fit(x, labels)
  assert model.classes_.tolist() == ["cat", "dog", "eel"] and (model.predict(x) == labels).mean() > 0.9
  np.testing.assert_allclose(model.predict_proba(x).sum(axis=1), 1.0)
  np.testing.assert_allclose(np.exp(model.predict_log_proba(x)), model.predict_proba(x), rtol=1e-6)
  warm = LinearClassifier(C=10.0, warm_start=True).fit(x, labels)
  first = warm.n_iter_
  warm.fit(x, labels)  # starts at the optimum: converges at once
  assert warm.n_iter_ <= first and np.allclose(warm.coef_, model.coef_, atol=1e-4)


def test_partial_fit_learns_batch_by_batch():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(2000, 4))
  y = x @ [1.0, -1.0, 2.0, 0.0] + 0.5
  model = LinearRegression(solver="optax", optimizer="sgd", learning_rate=0.1, batch_size=100)
  for start in range(0, 2000, 500):
    model.partial_fit(x[start:start + 500], y[start:start + 500])
  np.testing.assert_allclose(model.coef_, [1.0, -1.0, 2.0, 0.0], atol=0.05)
  with pytest.raises(ValueError, match="classes must be given"):
    LinearClassifier().partial_fit(x, y > 0)


def test_from_pretrained_equals_flaxzoo_predict(tmp_path):
  import pandas as pd
  from conftest import run_cli

  from flaxzoo.datasets.brain_age import RAW_FILE, read_volume_table
  from flaxzoo.sklearn import from_pretrained

  table = read_volume_table(RAW_FILE)
  frame = pd.DataFrame({"GM Vol": table.gm, "WM Vol": table.wm, "CSF Vol": table.csf, "Total Vol": table.total})
  ages = from_pretrained("brain_age_tissue").predict(frame)
  out = tmp_path / "ages.csv"
  assert run_cli("predict", "brain_age_tissue", "--input", RAW_FILE, "--output", out).returncode == 0
  expected = pd.read_csv(out)["predicted_age"].to_numpy()  # 3 decimals in the file
  np.testing.assert_allclose(ages, expected, atol=5e-4)
  from flaxzoo.checkpoints import load_pretrained, predict

  model, card = load_pretrained("brain_age_tissue")
  np.testing.assert_allclose(ages, predict(model, card, table)["predicted_age"], atol=1e-6)
  classes = from_pretrained("brain_age_group").predict(frame)
  assert set(classes) <= {"age<60", "age>=60"}


def test_save_and_load_through_a_flaxzoo_export(tmp_path):
  import pandas as pd
  from conftest import run_cli

  from flaxzoo.sklearn import load, save

  rng = np.random.default_rng(3)
  frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
  labels = np.where(frame["a"] - frame["b"] > 0, 7, 3)  # integer labels survive the round trip
  model = LinearClassifier(C=10.0).fit(frame, labels)
  folder = save(model, tmp_path, "mine")
  assert sorted(p.name for p in folder.iterdir()) == ["README.md", "card.json", "manifest.json", "params"]  # no pickle
  again = load(folder)
  assert again.classes_.tolist() == [3, 7]
  np.testing.assert_array_equal(again.predict_proba(frame), model.predict_proba(frame))  # float64 parameters
  frame.to_csv(tmp_path / "new.csv", index=False)
  result = run_cli("predict", folder, "--input", tmp_path / "new.csv")  # and flaxzoo reads it as any export
  assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("class_weight", ["balanced", {0: 3.0, 1: 0.5}], ids=["balanced", "dict"])
def test_class_weight_is_scikit_learns(class_weight):
  """`class_weight` as LogisticRegression's: the same fit (breast cancer: 212 vs 357 rows), and the same as
  the sample weights it stands for."""
  from sklearn.datasets import load_breast_cancer
  from sklearn.linear_model import LogisticRegression
  from sklearn.preprocessing import StandardScaler
  from sklearn.utils.class_weight import compute_class_weight

  x, y = load_breast_cancer(return_X_y=True)
  x = StandardScaler().fit_transform(x)
  ours = LinearClassifier(C=0.5, class_weight=class_weight, tol=1e-10).fit(x, y)
  reference = LogisticRegression(C=0.5, class_weight=class_weight, tol=1e-12, max_iter=10_000).fit(x, y)
  np.testing.assert_allclose(ours.coef_, reference.coef_, atol=1e-5)  # (its lbfgs stops within ~2e-6)
  np.testing.assert_allclose(ours.intercept_, reference.intercept_, atol=1e-5)
  as_weights = compute_class_weight(class_weight, classes=np.array([0, 1]), y=y)[y]
  same = LinearClassifier(C=0.5, tol=1e-10).fit(x, y, sample_weight=as_weights)
  np.testing.assert_allclose(ours.coef_, same.coef_, atol=1e-12)
  cv = LinearClassifierCV(Cs=[0.1, 1.0], class_weight=class_weight, tol=1e-10).fit(x, y)
  same_cv = LinearClassifierCV(Cs=[0.1, 1.0], tol=1e-10).fit(x, y, sample_weight=as_weights)
  np.testing.assert_allclose(cv.coef_, same_cv.coef_, atol=1e-12)
  with pytest.raises(ValueError, match="balanced"):
    LinearClassifier(class_weight="balanced", solver="optax").partial_fit(x, y, classes=[0, 1])
