"""The exact solvers: float64 answers against np.linalg.lstsq and scikit-learn's optima, extreme scales,
several devices, and how many programs a grid of fits compiles."""

import functools
import pickle
import warnings

import jax
import numpy as np
import pytest
from conftest import COMPILATIONS, logistic_objective
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from flaxzoo.sklearn import LinearClassifier, LinearClassifierCV, LinearRegression, LinearRegressionCV
from flaxzoo.sklearn.penalty import l2_of_alpha, l2_of_C
from flaxzoo.trainers import Trainer, solvers
from flaxzoo.trainers.solvers import _grams
from flaxzoo.zoo import create_model


@pytest.fixture(autouse=True)
def standard_promotion():
  """The estimators run as a user's code does: JAX's standard promotion."""
  with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
    yield


def lstsq_fit(x, y, weight=None):
  """`(coef, intercept)` of weighted least squares by np.linalg.lstsq in float64 (the truth)."""
  weight = np.ones(len(x)) if weight is None else weight
  root = np.sqrt(weight)[:, None]
  solution = np.linalg.lstsq(np.c_[x, np.ones(len(x))] * root, y * root[:, 0], rcond=None)[0]
  return solution[:-1], solution[-1]


def test_least_squares_equals_lstsq_on_standardised_and_badly_conditioned_features():
  rng = np.random.default_rng(0)
  x = StandardScaler().fit_transform(load_diabetes(return_X_y=True)[0])
  y = load_diabetes(return_X_y=True)[1]
  coef, intercept = lstsq_fit(x, y)
  ours = LinearRegression().fit(x, y)
  np.testing.assert_allclose(ours.coef_, coef, rtol=1e-6)
  np.testing.assert_allclose(ours.intercept_, intercept, rtol=1e-6)
  # Raw features of condition number 1e4 (columns of very different scales, correlated, off-centre).
  n, d = 5000, 6
  mixing = np.linalg.qr(rng.normal(size=(d, d)))[0] @ np.diag(np.logspace(0, -4, d))
  x = rng.normal(size=(n, d)) @ mixing.T * 10.0 + 50.0
  assert 0.5e4 < np.linalg.cond(x - x.mean(axis=0)) < 2e4
  y = x @ rng.normal(size=d) + rng.normal(size=n) + 3.0
  coef, intercept = lstsq_fit(x, y)
  ours = LinearRegression().fit(x, y)
  np.testing.assert_allclose(ours.coef_, coef, rtol=1e-5)
  np.testing.assert_allclose(ours.intercept_, intercept, rtol=1e-5)


def test_the_host_sums_and_the_centring_pass_agree_and_far_off_centre_data_takes_the_pass():
  """Least squares with every row weighed the same sums the raw rows where they are and centres after;
  data whose mean is far from 0 in units of its spread would lose digits there, and goes through the pass
  that centres every row instead. Both give the translation-invariant answer. 70,000 rows: two chunks,
  the rows put on the device only when the pass asks (every one of them: a staged size once went stale)."""
  rng = np.random.default_rng(9)
  n = 70_000
  x = rng.normal(size=(n, 4)) * [1.0, 1e-3, 1e3, 5.0] + [0.0, 0.0, 1e4, -10.0]
  y = x @ [1.0, 200.0, -0.001, 0.3] + rng.normal(size=n)
  assert _grams._host_grams(solvers.stage(x, y, "mse"))[0] is not None
  assert _grams._host_grams(solvers.stage(x + 1e6, y, "mse")) == (None, None)
  coef, intercept = lstsq_fit(x, y)
  ours = LinearRegression().fit(x, y)
  np.testing.assert_allclose(ours.coef_, coef, rtol=1e-9)
  np.testing.assert_allclose(ours.intercept_, intercept, rtol=1e-9, atol=1e-9)  # (it is ~0.002)
  np.testing.assert_allclose(LinearRegression().fit(x + 1e6, y).coef_, coef, rtol=1e-6)


def test_collinear_features_get_lstsqs_minimum_norm_solution():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(300, 3))
  x = np.c_[x, 2 * x[:, 0], x[:, 1] - x[:, 2]]  # rank 3 of 5
  y = x[:, :3] @ [1.0, -2.0, 0.5] + rng.normal(size=300) * 0.1
  centred = x - x.mean(axis=0)
  minimum_norm = np.linalg.lstsq(centred, y - y.mean(), rcond=None)[0]
  ours = LinearRegression().fit(x, y)
  np.testing.assert_allclose(ours.coef_, minimum_norm, rtol=1e-8, atol=1e-10)


def test_extreme_scales_give_scikit_learns_answer_not_zero():
  from sklearn.linear_model import LinearRegression as Reference

  x, y = load_diabetes(return_X_y=True)
  reference = Reference().fit(x, y)
  tiny = LinearRegression().fit(x * 1e-10, y)  # features x 1e-10: the coefficients x 1e10
  np.testing.assert_allclose(tiny.coef_ * 1e-10, reference.coef_, rtol=1e-6)
  assert tiny.score(x * 1e-10, y) == pytest.approx(reference.score(x, y), abs=1e-9)
  weighted = LinearRegression().fit(x, y, sample_weight=np.full(len(y), 1e-50))  # float32 would underflow
  np.testing.assert_allclose(weighted.coef_, reference.coef_, rtol=1e-6)
  far = LinearRegression().fit(x, y + 1e7)  # targets near 1e7: the intercept moves, nothing else
  np.testing.assert_allclose(far.coef_, reference.coef_, rtol=1e-6)
  np.testing.assert_allclose(far.predict(x) - 1e7, reference.predict(x), atol=1e-6)


def test_ridge_mapping_matches_ridge_with_weights_and_several_targets():
  from sklearn.linear_model import Ridge

  x, y = load_diabetes(return_X_y=True)
  weight = np.random.default_rng(2).uniform(0.5, 3, len(y))
  two = np.c_[y, -3 * y + 7 + x[:, 0] * 50]
  for target in (y, two):
    ours = LinearRegression(alpha=3.0).fit(x, target, sample_weight=weight)
    reference = Ridge(alpha=3.0).fit(x, target, sample_weight=weight)
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-7)
    np.testing.assert_allclose(ours.intercept_, reference.intercept_, rtol=1e-7)
  assert l2_of_alpha(3.0, 10.0) == pytest.approx(0.6) and l2_of_alpha(3.0, 10.0, 2) == pytest.approx(0.3)
  assert l2_of_C(2.0, 10.0) == pytest.approx(0.05) and l2_of_C(np.inf, 10.0) == 0.0


@functools.cache
def classification_optimum(dataset: str, C: float):
  """`(x, y, scikit-learn's optimal objective)` on a standardised scikit-learn dataset (its Newton-CG to 1e-12:
  digits' 650 parameters in 0.75 s, where its L-BFGS took 3.2 s to a point 1e-13 above)."""
  from sklearn.linear_model import LogisticRegression

  x, y = {"breast_cancer": load_breast_cancer, "iris": load_iris, "digits": load_digits}[dataset](return_X_y=True)
  x = StandardScaler().fit_transform(x)
  reference = LogisticRegression(C=C, solver="newton-cg", tol=1e-12, max_iter=100_000).fit(x, y)
  return x, y, reference


@pytest.mark.parametrize("dataset", ["breast_cancer", "iris", "digits"])
@pytest.mark.parametrize("solver", ["newton", "lbfgs"])
def test_classifiers_reach_scikit_learns_objective(dataset, solver):
  C = 1.0
  x, y, reference = classification_optimum(dataset, C)
  ours = LinearClassifier(C=C, solver=solver, tol=1e-9, max_iter=2000).fit(x, y)
  best = logistic_objective(reference, x, y, C)
  assert abs(logistic_objective(ours, x, y, C) - best) <= 1e-6 * best
  assert (ours.predict(x) == reference.predict(x)).mean() > 0.99
  # Before convergence: one Newton iteration is measurably short of the optimum, and says so.
  if solver == "newton":
    with pytest.warns(ConvergenceWarning, match="did not converge in max_iter=1"):
      early = LinearClassifier(C=C, solver=solver, max_iter=1).fit(x, y)
    assert logistic_objective(early, x, y, C) > best * (1 + 1e-4)
    assert early.n_iter_.tolist() == [1]


def test_default_C_is_scikit_learns_and_softmax_coefficients_match():
  from sklearn.linear_model import LogisticRegression

  x, y = load_iris(return_X_y=True)
  x = StandardScaler().fit_transform(x)
  reference = LogisticRegression(tol=1e-12, max_iter=100_000).fit(x, y)
  ours = LinearClassifier(tol=1e-10).fit(x, y)
  np.testing.assert_allclose(ours.coef_, reference.coef_, atol=1e-5)
  np.testing.assert_allclose(ours.intercept_, reference.intercept_, atol=1e-5)


def test_bad_parameters_are_refused_and_every_estimator_pickles():
  import optax

  x, y = load_iris(return_X_y=True)
  with pytest.raises(ValueError, match="optimizer must be one of .* \\(a name\\)"):
    LinearClassifier(optimizer=optax.sgd(0.1), solver="optax").fit(x, y)
  with pytest.raises(ValueError, match="optimizer must be one of"):
    LinearClassifier(optimizer=None).fit(x, y)
  with pytest.raises(ValueError, match="solver must be one of"):
    LinearRegression(solver="cholesky").fit(x, y)
  with pytest.raises(ValueError, match="C must be a number > 0"):
    LinearClassifier(C=0.0).fit(x, y)
  with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
    LinearRegression(alpha=-1.0).fit(x, y)
  for estimator in (LinearRegression(alpha=1.0).fit(x, y), LinearClassifier().fit(x, y),
                    LinearRegressionCV(cv=3).fit(x, y), LinearClassifierCV(Cs=3, cv=3).fit(x, y)):
    again = pickle.loads(pickle.dumps(estimator))
    np.testing.assert_array_equal(again.predict(x), estimator.predict(x))


def test_a_grid_search_compiles_at_most_three_programs_and_a_second_fit_none():
  from sklearn.model_selection import GridSearchCV

  x, y = load_breast_cancer(return_X_y=True)
  x = StandardScaler().fit_transform(x)
  # Shapes no other test uses (a new d): the first fits compile.
  x = x[:, :29]
  with COMPILATIONS as first:
    search = GridSearchCV(LinearClassifier(), {"C": [0.01, 0.1, 1.0, 10.0]}, cv=5).fit(x, y)
  assert 1 <= first.count <= 3, first.count
  assert search.best_params_["C"] in (0.1, 1.0, 10.0)
  with COMPILATIONS as second:  # new estimators, new penalties, new folds of the same buckets
    LinearClassifier(C=0.5).fit(x[:450], y[:450])
    GridSearchCV(LinearClassifier(), {"C": [0.02, 0.2]}, cv=5).fit(x, y)
  assert second.count == 0


def test_cv_estimators_choose_as_scikit_learn_in_one_program():
  from sklearn.linear_model import LogisticRegressionCV, RidgeCV
  from sklearn.model_selection import KFold, StratifiedKFold

  x, y = load_breast_cancer(return_X_y=True)
  x = StandardScaler().fit_transform(x)[:, :28]
  folds = StratifiedKFold(5)
  with COMPILATIONS as compiled:
    ours = LinearClassifierCV(Cs=[0.01, 0.1, 1.0, 10.0], cv=folds, tol=1e-8).fit(x, y)
  assert compiled.count <= 2, compiled.count  # Newton over every fold x C in one program; the refit's (1 model)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    reference = LogisticRegressionCV(Cs=[0.01, 0.1, 1.0, 10.0], cv=folds, scoring="accuracy", tol=1e-10,
                                     max_iter=10_000, l1_ratios=(0.0,), use_legacy_attributes=False).fit(x, y)
  np.testing.assert_allclose(ours.scores_[1].mean(axis=0), reference.scores_.mean(axis=(0, 1)) if
                             reference.scores_.ndim == 3 else reference.scores_.mean(axis=0), atol=1e-9)
  assert ours.C_[0] == pytest.approx(float(np.ravel(reference.C_)[0]))
  refit = LinearClassifier(C=ours.C_[0], tol=1e-8).fit(x, y)
  np.testing.assert_allclose(ours.coef_, refit.coef_, atol=1e-6)
  xr, yr = load_diabetes(return_X_y=True)
  ours = LinearRegressionCV(alphas=[0.01, 0.1, 1.0, 10.0], cv=KFold(5)).fit(xr, yr)
  reference = RidgeCV(alphas=[0.01, 0.1, 1.0, 10.0], cv=KFold(5)).fit(xr, yr)
  assert ours.alpha_ == reference.alpha_ and ours.best_score_ == pytest.approx(reference.best_score_, abs=1e-9)
  np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-7)


def test_trainer_solvers_from_any_start_and_the_optax_path_stays_for_a_given_optimizer():
  import optax

  rng = np.random.default_rng(3)
  x = rng.normal(size=(500, 4))
  y = x @ [1.0, -2.0, 0.5, 0.0] + 0.3 + rng.normal(size=500) * 0.1
  trainer = Trainer(create_model("linear_regression", in_features=4, seed=5), loss="mse")  # no optimizer: exact
  assert trainer.chosen_solver(500) == "normal_equation"
  history = trainer.fit((x, y), steps=100)
  coef, intercept = lstsq_fit(x, y)
  np.testing.assert_allclose(np.ravel(trainer.params["linear"]["kernel"][...]), coef, rtol=1e-5)
  assert history.converged and history.iterations == 1 and trainer.step == 100  # converged: the fit asked for is done
  assert Trainer(create_model("linear_regression", in_features=4), optax.sgd(0.1), "mse").chosen_solver(500) == "optax"
  labels = (x[:, 0] - x[:, 1] + rng.logistic(size=500) > 0).astype(np.int32)
  trainer = Trainer(create_model("logistic_regression", in_features=4), loss="logistic", l2=1e-2, solver="newton")
  trainer.fit((x, labels), steps=2)  # stopped early: resumes from where it is
  first = trainer.step
  trainer.fit((x, labels), steps=100)
  again = LinearClassifier(C=1 / (1e-2 * 500), tol=1e-10).fit(x, labels)
  np.testing.assert_allclose(np.ravel(trainer.params["linear"]["kernel"][...]), again.coef_[0], atol=1e-5)
  assert first == 2 and trainer.step > first
  with pytest.raises(ValueError, match="no optimizer was given and no exact solver applies"):
    Trainer(create_model("linear_regression", in_features=4), loss="mse").fit((x, y), steps=10, batch_size=50)


def test_the_cli_refuses_a_solver_that_cannot_apply_and_says_when_one_stops_short(tmp_path, data_dir):
  from conftest import run_cli

  rows = "a,b,y\n" + "".join(f"{i % 7},{(3 * i) % 5},{(i * 5 + i // 3) % 2}\n" for i in range(40))
  (tmp_path / "c.csv").write_text(rows)
  common = ["--dataset", f"csv:{tmp_path / 'c.csv'}", "--label", "y", "--data-dir", data_dir]
  for flags, message in ((["--solver", "newton", "--batch-size", "4"], "a full batch"),
                         (["--solver", "normal_equation"], "does not apply to the loss 'logistic'")):
    for command in ("train", "sweep"):
      result = run_cli(command, "linear_classifier", *common, *flags, "--workdir", tmp_path / f"{command}{flags[1]}")
      assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
      assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
      workdir = tmp_path / f"{command}{flags[1]}"  # nothing trained or written but flaxzoo's own marker
      assert not workdir.exists() or [p.name for p in workdir.iterdir()] == [".flaxzoo"]
  short = run_cli("train", "linear_classifier", *common, "--solver", "newton", "--steps", "1", "--workdir",
                  tmp_path / "short")
  assert short.returncode == 0 and "did not converge in 1 iterations" in short.stderr, short.stderr
  done = run_cli("train", "linear_classifier", *common, "--solver", "auto", "--workdir", tmp_path / "done")
  again = run_cli("train", "linear_classifier", *common, "--solver", "auto", "--workdir", tmp_path / "done")
  assert done.returncode == 0 and "newton solver" in done.stderr and "nothing to train" in again.stderr, again.stderr


def test_float32_rows_far_from_zero_keep_float32_accuracy():
  # Features of mean 1e3 and spread 1: a float32 pass that subtracted them would lose the answer; the
  # rows are standardised from float64 when staged.
  x, y = load_breast_cancer(return_X_y=True)
  x = StandardScaler().fit_transform(x)[:, :10] + 1e3
  exact = LinearClassifier(tol=1e-8).fit(x, y)
  single = LinearClassifier(tol=1e-5).fit(x.astype(np.float32), y)
  np.testing.assert_allclose(single.coef_, exact.coef_, rtol=1e-3, atol=1e-4)
  rows = np.random.default_rng(6).normal(size=(2000, 4)).astype(np.float32) + np.float32(1e3)
  target = rows.astype(np.float64) @ [1.0, -2.0, 0.5, 0.0] + 7.0
  np.testing.assert_allclose(LinearRegression().fit(rows, target).coef_, [1.0, -2.0, 0.5, 0.0], atol=1e-4)


def test_a_constant_column_is_not_a_huge_copy_of_the_intercept():
  """A feature of one value (its mean of 200 rows is not exactly that value: the std is 8e-15, not 0): the
  classifier, the GLM and least squares converge, with scikit-learn's predictions (regression test: it was
  standardised by its rounding, and no Newton fit converged)."""
  import warnings

  from sklearn.exceptions import ConvergenceWarning
  from sklearn.linear_model import LogisticRegression
  from sklearn.linear_model import PoissonRegressor as Reference

  from flaxzoo.sklearn import LinearClassifier, PoissonRegressor

  rng = np.random.default_rng(0)
  weight = rng.uniform(0.2, 3.0, 200)
  x = np.c_[rng.normal(size=(200, 2)), np.full(200, 3.7), rng.normal(size=200)]
  labels = (x[:, 0] + rng.normal(size=200) > 0).astype(int)
  counts = rng.poisson(np.exp(0.3 * x[:, 0]))
  with warnings.catch_warnings():
    warnings.simplefilter("error", ConvergenceWarning)
    ours = LinearClassifier(C=0.5, tol=1e-8).fit(x, labels, sample_weight=weight)
    glm = PoissonRegressor(alpha=0.0, tol=1e-8).fit(x, counts, sample_weight=weight)
  theirs = LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(x, labels, sample_weight=weight)
  np.testing.assert_allclose(ours.decision_function(x), theirs.decision_function(x), atol=1e-4)
  reference = Reference(alpha=0.0, tol=1e-10, max_iter=10_000).fit(x, counts, sample_weight=weight)
  np.testing.assert_allclose(glm.predict(x), reference.predict(x), rtol=1e-4)


