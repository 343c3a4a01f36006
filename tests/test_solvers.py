"""The exact solvers: float64 answers against np.linalg.lstsq and scikit-learn's optima, extreme scales,
several devices, and how many programs a grid of fits compiles."""

import os
import pickle
import subprocess
import sys
import warnings

import jax
import numpy as np
import pytest
from conftest import COMPILATIONS
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from flaxzoo.sklearn import LinearClassifier, LinearClassifierCV, LinearRegression, LinearRegressionCV
from flaxzoo.sklearn.penalty import l2_of_alpha, l2_of_C
from flaxzoo.trainers import Trainer, solvers
from flaxzoo.trainers.solvers import _choice, _grams, _newton, _staging
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
  assert _grams._host_grams(solvers.stage(x, y, "mse")) is not None
  assert _grams._host_grams(solvers.stage(x + 1e6, y, "mse")) is None
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


def logistic_objective(model, x, y, C):
  """scikit-learn's objective of LogisticRegression(C), divided by C n: mean log loss + |coef|² / (2 C n)."""
  scores = np.atleast_2d(x @ model.coef_.T + model.intercept_)
  if scores.shape[1] == 1:
    z = scores[:, 0]
    loss = np.mean(np.logaddexp(0, z) - (y == model.classes_[1]) * z)
  else:
    labels = np.searchsorted(model.classes_, y)
    loss = np.mean(np.logaddexp.reduce(scores, axis=1) - scores[np.arange(len(y)), labels])
  return loss + np.sum(model.coef_**2) / (2 * C * len(y))


@pytest.mark.parametrize("dataset", ["breast_cancer", "iris", "digits"])
@pytest.mark.parametrize("solver", ["newton", "lbfgs"])
def test_classifiers_reach_scikit_learns_objective(dataset, solver):
  from sklearn.linear_model import LogisticRegression

  x, y = {"breast_cancer": load_breast_cancer, "iris": load_iris, "digits": load_digits}[dataset](return_X_y=True)
  x = StandardScaler().fit_transform(x)
  C = 1.0
  reference = LogisticRegression(C=C, tol=1e-12, max_iter=100_000).fit(x, y)
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


def test_k_models_with_fold_weights_equal_their_lone_fits():
  x, y = load_breast_cancer(return_X_y=True)
  x = StandardScaler().fit_transform(x)[:, :27]
  rng = np.random.default_rng(4)
  weights = rng.integers(0, 3, size=(6, len(y))).astype(np.float64)
  l2 = np.array([1e-3, 1e-2, 1e-1] * 2)
  data = solvers.stage(x, y, "logistic")
  together = solvers.solve(data, weights, l2, tol=1e-10)
  for j in range(6):
    alone = solvers.solve(data, weights[j:j + 1], l2[j:j + 1], tol=1e-10)
    np.testing.assert_allclose(together.coef[j], alone.coef[0], atol=1e-8)


def test_many_models_on_large_data_reach_scikit_learns_optima_from_the_sample_start():
  """70,000 rows (a Hessian row sample, Newton started at its optimum) and 8 fold models (the `[rows,
  models]` layout): each model equals scikit-learn's fit of its rows. The last row, a wild outlier, has
  weight 0 in every model: its logits of ~1e6 must add nothing (not 0 * inf)."""
  from sklearn.linear_model import LogisticRegression

  rng = np.random.default_rng(7)
  n, d = 70_000, 5
  x = rng.normal(size=(n, d)) * [1.0, 2.0, 0.5, 1.0, 3.0] + 1.0
  y = (x @ [1.0, -0.5, 2.0, 0.0, 0.3] + rng.logistic(size=n) > 1.0).astype(np.int32)
  x[-1], y[-1] = 1e6, 0
  weights = (rng.random((8, n)) < 0.8).astype(np.float64)
  weights[:, -1] = 0.0
  C = np.logspace(-2, 2, 8)
  data = solvers.stage(x, y, "logistic")
  chunks = solvers.chunked_weights(data, weights)
  assert data.sample is not None and chunks.start is not None and chunks.sample is not None
  # (a solve from a given start reads no start rows, and one whose every step takes a given Hessian no sample)
  lean = solvers.chunked_weights(data, weights, sample=False, start=False)
  assert lean.start is None and lean.sample is None
  assert all(np.array_equal(a, b) for a, b in zip(lean.rows, chunks.rows))
  l2 = 1.0 / (C * weights.sum(axis=1))
  # From the sample's optimum, scikit-learn's tolerance takes 1-2 Newton iterations over all rows (5 from zero).
  assert solvers.solve(data, weights, l2, "newton", tol=1e-4).n_iter.max() <= 2
  fit = solvers.solve(data, weights, l2, "newton", tol=1e-8)
  assert fit.converged.all()
  for j in (0, 4, 7):
    keep = weights[j] > 0
    reference = LogisticRegression(C=C[j], tol=1e-12, max_iter=10_000).fit(x[keep], y[keep])
    ours = LinearClassifier(C=C[j])
    ours.coef_, ours.intercept_, ours.classes_ = fit.coef[j].T, fit.intercept[j], np.array([0, 1])
    best = logistic_objective(reference, x[keep], y[keep], C[j])
    assert abs(logistic_objective(ours, x[keep], y[keep], C[j]) - best) <= 1e-6 * best
    assert np.isfinite(fit.objective[j]) and abs(fit.objective[j] - best) <= 1e-6 * best


@pytest.mark.parametrize("count", [3, 8], ids=["models", "rows_x_models"])
def test_newton_over_every_row_in_one_program_takes_the_host_loops_steps(monkeypatch, count):
  """Two chunks of rows (70,000) and a Hessian row sample: Newton's iterations over every row run as one
  device program (`_newton_rows`); they are the host loop's, step for step (one iteration, then to the end)."""
  rng = np.random.default_rng(9)
  n = 70_000
  x = rng.normal(size=(n, 4)) * [1.0, 3.0, 0.2, 1.0] + [0.0, 5.0, 0.0, -1.0]
  y = (x @ [1.0, -0.3, 2.0, 0.5] + rng.logistic(size=n) > -1.5).astype(np.int32)
  weights = rng.uniform(0.0, 2.0, size=(count, n))
  l2 = np.logspace(-5, -1, count)
  data = solvers.stage(x, y, "logistic")
  assert len(data.chunk_rows) == 2 and solvers.chunked_weights(data, weights).sample is not None
  # The start and the Hessians read the sample as float32 standardised rows (a GLM's: as staged).
  assert data.newton_sample()[0].dtype == np.float32 and data.rows()[0][0].dtype == np.float64
  assert solvers.stage(x, np.abs(x[:, 0]), "poisson").newton_dtype == np.float64
  fits = {}
  for fused in (_newton.FUSED_CHUNKS, 0):
    monkeypatch.setattr(_newton, "FUSED_CHUNKS", fused)  # (where Newton reads it)
    fits[fused] = [solvers.solve(data, weights, l2, "newton", tol=tol, max_iter=limit)
                   for tol, limit in ((1e-12, 1), (1e-9, 100))]
  for device, host in zip(fits[_newton.FUSED_CHUNKS], fits[0]):
    np.testing.assert_array_equal(device.n_iter, host.n_iter)
    np.testing.assert_allclose(device.coef, host.coef, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(device.objective, host.objective, rtol=1e-12)
  assert fits[0][0].n_iter.max() == 1 and fits[0][1].converged.all()


def test_the_cv_classifier_passes_in_float32_only_where_the_tolerance_is_far_above_its_rounding(monkeypatch):
  """15 fold x C models on 20,000 float64 rows at scikit-learn's tol 1e-4: their passes run in float32
  (standardised from float64) and move the answers by under 0.1% of what the tolerance leaves; the CV
  classifier chooses as float64 passes do, and the model it returns passes in float64."""
  rng = np.random.default_rng(10)
  x = rng.normal(size=(20_000, 6)) * np.logspace(-2, 2, 6) + 100.0
  y = ((x - 100.0) / np.logspace(-2, 2, 6) @ rng.normal(size=6) + rng.logistic(size=20_000) > 0).astype(int)
  assert solvers.pass_dtype(x, "logistic", 1, 15, "auto", 1e-4) is np.float32
  assert solvers.pass_dtype(x, "logistic", 1, 15, "auto", 1e-6) is None  # tighter: float64
  assert solvers.pass_dtype(x, "logistic", 1, 1, "auto", 1e-4) is None  # one model gains nothing
  assert solvers.pass_dtype(x[:4000], "logistic", 1, 15, "auto", 1e-4) is None
  folds = np.arange(len(y)) % 5
  weights = np.stack([(folds != f).astype(np.float64) for f in range(5) for _ in range(3)])
  l2 = 1.0 / (np.tile([0.1, 1.0, 10.0], 5) * weights.sum(axis=1))
  single = solvers.solve(solvers.stage(x, y, "logistic", dtype=np.float32), weights, l2, tol=1e-4)
  double, tight = (solvers.solve(solvers.stage(x, y, "logistic"), weights, l2, tol=tol) for tol in (1e-4, 1e-10))
  rounding, tolerance = np.abs(single.coef - double.coef).max(), np.abs(double.coef - tight.coef).max()
  assert 0 < rounding <= 1e-3 * tolerance, (rounding, tolerance)
  chosen = LinearClassifierCV(Cs=3, cv=5).fit(x, y)
  monkeypatch.setattr(_choice, "FLOAT32_TOL", np.inf)  # (where pass_dtype reads it)
  reference = LinearClassifierCV(Cs=3, cv=5).fit(x, y)
  assert chosen.C_ == reference.C_
  np.testing.assert_array_equal(chosen.scores_[1], reference.scores_[1])
  np.testing.assert_array_equal(chosen.coef_, reference.coef_)  # the refit: float64 passes either way
  np.testing.assert_allclose(chosen.coef_, LinearClassifier(C=chosen.C_[0]).fit(x, y).coef_, rtol=1e-12)


def test_lbfgs_on_large_data_starts_from_a_samples_optimum_and_reaches_scikit_learns(monkeypatch):
  """410 parameters (L-BFGS) on 20,000 rows: L-BFGS first solves on 2048 sampled rows, then on all from
  there, with the sample's curvature pairs; the optimum is scikit-learn's."""
  from sklearn.linear_model import LogisticRegression

  rng = np.random.default_rng(8)
  x = rng.normal(size=(20_000, 40)) * rng.uniform(0.5, 3.0, size=40)
  y = np.argmax(x @ rng.normal(size=(40, 10)) * 0.3 + rng.gumbel(size=(20_000, 10)), axis=1)
  data = solvers.stage(x, y, "softmax", num_classes=10)
  assert solvers.chunked_weights(data, np.ones((1, len(y)))).start.shape == (1, 2048)
  ours = LinearClassifier(C=0.5, tol=1e-9, max_iter=500).fit(x, y)
  from_sample = LinearClassifier(C=0.5).fit(x, y).n_iter_[0]
  monkeypatch.setattr(_staging, "START_FRACTION", 10**9)  # no sample start (`start_rows` reads it there)
  assert from_sample <= 0.75 * LinearClassifier(C=0.5).fit(x, y).n_iter_[0]  # 12 iterations over all rows, not 17
  reference = LogisticRegression(C=0.5, tol=1e-12, max_iter=10_000).fit(x, y)
  best = logistic_objective(reference, x, y, 0.5)
  assert abs(logistic_objective(ours, x, y, 0.5) - best) <= 1e-6 * best


@pytest.mark.slow  # a fresh process with 8 simulated devices
def test_solvers_on_eight_devices_equal_one():
  code = """
import numpy as np, jax
from flaxzoo.trainers import Trainer
from flaxzoo.zoo import create_model
assert len(jax.devices()) == 8
rng = np.random.default_rng(0)
x = rng.normal(size=(3001, 5)); y = x @ rng.normal(size=5) + 1.0
labels = (x[:, 0] + rng.logistic(size=3001) > 0).astype(np.int32)
out = []
for parallel in ("none", "mesh"):
  r = Trainer(create_model("linear_regression", in_features=5), loss="mse", parallel=parallel)
  r.fit((x, y), steps=1)
  c = Trainer(create_model("logistic_regression", in_features=5), loss="logistic", l2=1e-3, parallel=parallel)
  c.fit((x, labels), steps=100)
  out.append(np.r_[np.ravel(r.params["linear"]["kernel"][...]), np.ravel(c.params["linear"]["kernel"][...])])
np.testing.assert_allclose(out[0], out[1], rtol=1e-5)
# Large data (the Hessian's row sample, Newton from its optimum), 8 models in the [rows, models] layout.
from flaxzoo.trainers import solvers
x = rng.normal(size=(70_000, 5)); labels = (x[:, 0] + rng.logistic(size=70_000) > 0).astype(np.int32)
weights = (rng.random((8, 70_000)) < 0.8).astype(np.float64)
mesh = jax.sharding.Mesh(np.array(jax.devices()), ("rows",))
fits = [solvers.solve(solvers.stage(x, labels, "logistic", sharding=sharding), weights, np.logspace(-4, 0, 8),
                      "newton", tol=1e-9) for sharding in (None, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("rows")))]
np.testing.assert_allclose(fits[0].coef, fits[1].coef, rtol=1e-7, atol=1e-9)
print("ok")
"""
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
  assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-3000:]


def test_a_sweep_solves_its_models_exactly_and_compiles_the_same_for_10_and_200():
  from flaxzoo.trainers import Sweep

  x, y = load_breast_cancer(return_X_y=True)
  x = StandardScaler().fit_transform(x)[:, :26]
  rng = np.random.default_rng(5)
  counts = {}
  create_model("logistic_regression", in_features=26)  # the architecture's one init program, compiled once
  for count in (10, 200):
    boot = rng.multinomial(len(y), np.full(len(y), 1 / len(y)), size=count).astype(np.float32)
    with COMPILATIONS as compiled:
      models = [create_model("logistic_regression", in_features=26, seed=s) for s in range(count)]
      sweep = Sweep(models, loss="logistic", l2=1.0 / boot.sum(axis=1), seeds=list(range(count)), parallel="none",
                    solver="auto", tol=1e-10)
      history = sweep.fit((x, y), steps=100, weights=boot)
    counts[count] = compiled.count
    assert history.path == "newton" and history.converged.all()
  for k in (0, 199):  # model k equals scikit-learn's fit of its bootstrap sample
    alone = LinearClassifier(C=1.0, tol=1e-10).fit(x, y, sample_weight=boot[k])
    np.testing.assert_allclose(np.ravel(sweep.params(k)["linear"]["kernel"][...]), alone.coef_[0], atol=1e-5)
  assert counts[10] == counts[200], counts
  with COMPILATIONS as again:  # a new Sweep of new models, the same shapes: its set-up and fit compile nothing
    models = [create_model("logistic_regression", in_features=26, seed=s) for s in range(200)]
    Sweep(models, loss="logistic", l2=2.0 / boot.sum(axis=1), parallel="none", solver="auto").fit(
        (x, y), steps=100, weights=boot)
  assert again.count == 0, again.count


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


@pytest.mark.parametrize("loss", ["logistic", "poisson"])
def test_the_chord_method_from_a_fits_hessian_reaches_each_resamples_own_optimum(loss):
  """`solve(hessian=)`: Newton's steps all take the given Hessian (a fit's, for refits of resampled weights from
  its optimum), no Hessian pass. Each resample's answer is plain Newton's to within both tolerances, and the
  chord's first step has already moved every model (compared before convergence too)."""
  rng = np.random.default_rng(3)
  n, d, count = 20_000, 6, 40
  x = rng.standard_normal((n, d)) * [1, 10, 0.1, 1, 1, 1] + [0, 50, 0, 0, 0, 0]
  eta = 0.5 * x[:, 0] + 0.02 * (x[:, 1] - 50) - 0.2
  y = (rng.random(n) < 1 / (1 + np.exp(-eta))) * 1 if loss == "logistic" else rng.poisson(np.exp(eta)) * 1.0
  data = solvers.stage(x, y, loss, 2 if loss == "logistic" else None)
  full = solvers.solve(data, np.ones((1, n)), [0.0], "newton", 1e-12)
  counts = rng.multinomial(n, np.full(n, 1 / n), size=count).astype(np.float32)
  start = (np.repeat(full.coef, count, axis=0), np.repeat(full.intercept, count, axis=0))
  theta = np.append(full.coef[0, :, 0] * data.scale, full.intercept[0, 0] + data.shift @ full.coef[0, :, 0])
  covariance_data = solvers.stage(x, y * 1.0, loss, 2 if loss == "logistic" else None)
  hessian = solvers.sandwich_sums(covariance_data, theta, np.ones(n), observed=False)["fisher"] / n
  newton = solvers.solve(data, counts, np.zeros(count), "newton", 1e-11, start=start)
  chord = solvers.solve(data, counts, np.zeros(count), "newton", 1e-11, start=start, hessian=hessian)
  assert chord.converged.all() and newton.converged.all()
  np.testing.assert_allclose(chord.coef, newton.coef, rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(chord.intercept, newton.intercept, rtol=1e-6, atol=1e-9)
  one = solvers.solve(data, counts, np.zeros(count), "newton", 1e-11, max_iter=1, start=start, hessian=hessian)
  moved = np.abs(one.coef - start[0]).max(axis=(1, 2))
  left = np.abs(one.coef - newton.coef).max(axis=(1, 2))
  assert np.all(left < 0.5 * moved), (left / moved).max()  # one chord step takes each resample most of the way
  with pytest.raises(ValueError, match=r"hessian must be a finite \[7, 7\] matrix"):
    solvers.solve(data, counts, np.zeros(count), "newton", start=start, hessian=np.eye(3))
