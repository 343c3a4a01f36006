"""One answer through every path: the same rows get the same predictions from the estimator or the trainer
in this process, from a workdir, an export and a sweep's refit through `flaxzoo predict`, and after
`flaxzoo.sklearn.save` + `load` (means for a GLM, labels and probabilities for a classifier)."""

import csv
import io

import numpy as np
import pytest
from conftest import run_cli


def _predicted(result) -> np.ndarray:
  assert result.returncode == 0, result.stderr
  return np.asarray([float(row["predicted"]) for row in csv.DictReader(io.StringIO(result.stdout))])


def test_a_poisson_run_predicts_means_from_its_workdir_its_export_and_a_sweeps_best(tmp_path):
  """`--family poisson`'s outputs are log means: every path shows exp(outputs), the means the estimator
  (scikit-learn's PoissonRegressor on the same standardised rows) predicts. The workdir and the sweep's best
  printed the log means (negative counts) on the old code."""
  from sklearn.linear_model import PoissonRegressor

  from flaxzoo.checkpoints import predict
  from flaxzoo.datasets import claims
  from flaxzoo.experiments import load_trained
  from flaxzoo.experiments.trained import load_model

  rows = tmp_path / "rows.csv"
  with open(claims.TABLE) as f:
    lines = [",".join(line.rstrip("\n").split(",")[:4]) for line in f][:41]
  rows.write_text("\n".join(lines) + "\n")
  assert run_cli("train", "claims_poisson", "--workdir", tmp_path / "run").returncode == 0
  assert run_cli("export", "--workdir", tmp_path / "run", "--name", "cp", "--out", tmp_path / "exports").returncode == 0
  sweep = run_cli("sweep", "claims_poisson", "--folds", "2", "--refit", "--workdir", tmp_path / "sweep")
  assert sweep.returncode == 0, sweep.stderr
  paths = [tmp_path / "run", tmp_path / "exports" / "cp", tmp_path / "sweep" / "best"]
  shown = [_predicted(run_cli("predict", path, "--input", rows)) for path in paths]

  model, card = load_model(tmp_path / "run")
  table = {name: np.asarray(column) for name, column in zip(lines[0].split(","), zip(*(
      [float(v) for v in line.split(",")] for line in lines[1:])))}
  in_process = predict(model, card, table)["predicted"]
  trainer, meta = load_trained(tmp_path / "run")
  x = card.preprocess(table)
  means = trainer.predict_means(x)[:, 0]
  x_train, y_train = meta["splits"]["train"]
  reference = PoissonRegressor(alpha=0.0, tol=1e-10).fit(np.asarray(x_train, np.float64), y_train)
  assert np.all(means > 0)
  for values in shown:
    np.testing.assert_array_equal(values, in_process)
  np.testing.assert_allclose(in_process, means, rtol=1e-6)  # the trainer's program rounds float32 in its own order
  np.testing.assert_allclose(means, reference.predict(np.asarray(x, np.float64)), rtol=1e-4)  # float32 parameters


@pytest.mark.parametrize("logit", [1e-20, -1e-20, 0.0, 40.0, -800.0])
def test_one_decision_rule_for_a_logit_of_any_size(logit):
  """A logistic model's class is decided on its logit (> 0: the second class), by every path alike: the
  probabilities round a logit of 1e-20 to exactly 0.5, where deciding on them picked the first class."""
  from flaxzoo.zoo.links import decide, probabilities

  p = probabilities(np.asarray([[logit]]))
  assert decide(np.asarray([[logit]]))[0] == int(logit > 0)
  assert np.all(np.isfinite(p)) and p.sum() == pytest.approx(1.0)
  from scipy.special import expit

  assert p[0, 1] == pytest.approx(expit(logit), rel=1e-15, abs=1e-300)


def _estimators():
  from flaxzoo import sklearn as fz

  return {
      "LinearRegression": (fz.LinearRegression(), "y"), "Ridge": (fz.LinearRegression(alpha=2.0), "y"),
      "LinearRegression2": (fz.LinearRegression(), "y2"), "LinearRegressionCV": (fz.LinearRegressionCV(), "y"),
      "LinearClassifier": (fz.LinearClassifier(C=10.0), "labels"),
      "Softmax": (fz.LinearClassifier(C=0.5, l1_ratio=0.5), "classes"),
      "LinearClassifierCV": (fz.LinearClassifierCV(Cs=3, cv=3), "labels"),
      "PoissonRegressor": (fz.PoissonRegressor(alpha=0.01), "counts"),
      "GammaRegressor": (fz.GammaRegressor(alpha=0.01), "positive"),
      "TweedieRegressor": (fz.TweedieRegressor(power=1.5, alpha=0.01), "counts"),
      "Tweedie0": (fz.TweedieRegressor(power=0.0, alpha=0.01), "y"),
      "ElasticNet": (fz.ElasticNet(alpha=0.01), "y"), "Lasso": (fz.Lasso(alpha=0.01), "y2"),
      "ElasticNetCV": (fz.ElasticNetCV(cv=3, alphas=5), "y"),
      "HuberRegressor": (fz.HuberRegressor(), "y"), "QuantileRegressor": (fz.QuantileRegressor(alpha=0.01), "y"),
  }


def _frame(rng, n=120, scale=1.0, offset=0.0):
  import pandas as pd

  x = rng.normal(size=(n, 3)) * scale + offset
  frame = pd.DataFrame(x, columns=["b", "a", "c"])
  z = (x - offset) / scale @ [0.4, -0.3, 0.2]
  targets = {"y": 3.0 * z + rng.normal(size=n) + 1e7 * (scale != 1.0), "y2": np.c_[z, -2 * z + 0.1],
             "labels": np.where(z + 0.3 * rng.normal(size=n) > 0, 7, 3),
             "classes": np.asarray(["lo", "mid", "hi"])[np.digitize(z, [-0.3, 0.3])],
             "counts": rng.poisson(np.exp(z)), "positive": rng.gamma(2.0, np.exp(z) / 2.0)}
  return frame, targets


@pytest.mark.parametrize("name", list(_estimators()))
def test_save_and_load_bring_back_the_estimator_and_its_predictions_and_flaxzoo_predict_agrees(name, tmp_path):
  """Every estimator `save` accepts comes back from `load` as itself: its class and parameters, its fitted
  attributes, `feature_names_in_` (a frame with its columns in another order is refused as the fitted
  estimator refuses it), and its predictions bitwise (float64 parameters); `flaxzoo predict` on the export
  gives the same numbers to 1e-9 (means for a GLM, labels and probabilities for a classifier). On the old
  code a GLM or a CV classifier came back as a LinearRegression, and a multi-target one was refused."""
  from flaxzoo.sklearn import load, save

  estimator, target = _estimators()[name]
  frame, targets = _frame(np.random.default_rng(5))
  estimator.fit(frame, targets[target])
  folder = save(estimator, tmp_path, name)
  again = load(folder)
  assert type(again) is type(estimator) and again.get_params() == estimator.get_params()
  for key, value in vars(estimator).items():
    if key.endswith("_") and not key.startswith("_") and isinstance(value, np.ndarray):
      assert np.array_equal(getattr(again, key), value), key
      assert getattr(again, key).dtype == value.dtype, key
  assert again.coef_.dtype == np.float64
  methods = ["predict", *(["predict_proba"] if hasattr(estimator, "predict_proba") else [])]
  for method in methods:
    np.testing.assert_array_equal(getattr(again, method)(frame), getattr(estimator, method)(frame))
  with pytest.raises(ValueError, match="feature names"):
    again.predict(frame[["a", "b", "c"]])
  frame[["c", "a", "b"]].to_csv(tmp_path / "rows.csv", index=False)  # flaxzoo predict reads columns by name
  shown = list(csv.DictReader(io.StringIO(run_cli("predict", folder, "--input", tmp_path / "rows.csv").stdout)))
  if "predicted_class" in shown[0]:
    assert [row["predicted_class"] for row in shown] == [str(c) for c in estimator.predict(frame)]
    for k, c in enumerate(estimator.classes_):
      np.testing.assert_allclose([float(row[f"probability_{c}"]) for row in shown],
                                 estimator.predict_proba(frame)[:, k], rtol=1e-9, atol=1e-15)
  else:
    columns = sorted(key for key in shown[0] if key.startswith("predicted"))
    values = np.asarray([[float(row[c]) for c in columns] for row in shown])
    np.testing.assert_allclose(values, np.reshape(estimator.predict(frame), (len(frame), -1)), rtol=1e-9)


def test_saved_parameters_keep_float64_where_inputs_and_targets_are_far_from_zero(tmp_path):
  """Features near 1e6 and a target near 1e7: float32 parameters moved the predictions by ~0.5 on the old
  code; the export predicts as the estimator to 1e-9, through `load` and through `flaxzoo predict`."""
  from flaxzoo.sklearn import LinearRegression, load, save

  frame, targets = _frame(np.random.default_rng(1), scale=10.0, offset=1e6)
  estimator = LinearRegression().fit(frame, targets["y"])
  folder = save(estimator, tmp_path, "far")
  np.testing.assert_array_equal(load(folder).predict(frame), estimator.predict(frame))
  frame.to_csv(tmp_path / "rows.csv", index=False)
  shown = _predicted(run_cli("predict", folder, "--input", tmp_path / "rows.csv"))
  np.testing.assert_allclose(shown, estimator.predict(frame), rtol=1e-12)


def test_save_refuses_in_one_line_what_it_cannot_bring_back(tmp_path):
  from sklearn.linear_model import LinearRegression as ScikitLearns
  from sklearn.model_selection import KFold

  from flaxzoo.sklearn import LinearClassifierCV, save

  frame, targets = _frame(np.random.default_rng(2))
  with pytest.raises(ValueError, match="not one of flaxzoo's estimators"):
    save(ScikitLearns().fit(frame, targets["y"]), tmp_path, "theirs")
  with pytest.raises(ValueError, match=r"LinearClassifierCV.cv: a KFold cannot be saved"):
    save(LinearClassifierCV(Cs=2, cv=KFold(3)).fit(frame, targets["labels"]), tmp_path, "splitter")
  assert not list(tmp_path.iterdir())
