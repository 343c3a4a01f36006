"""L1 and elastic-net penalties beyond least squares, by proximal Newton: logistic and softmax at scikit-learn's
optimum (its saga, driven to the end) with its zeros; the log-link GLMs against an optimality certificate
computed here in NumPy; glum's scale for the GLMs' `l1_ratio`."""

import warnings

import numpy as np
import pytest
from scipy.special import expit, logsumexp
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from flaxzoo.sklearn import GammaRegressor, LinearClassifier, PoissonRegressor, TweedieRegressor
from flaxzoo.sklearn.penalty import penalties_of_C
from flaxzoo.trainers import solvers


def logistic_objective(model, x, y, weight):
  """scikit-learn's LogisticRegression objective, `C Σ w loss + (1 - r)/2 |W|² + r |W|₁`, over C Σ w."""
  scores = x @ model.coef_.T + model.intercept_
  if scores.shape[1] == 1:
    z = scores[:, 0]
    loss = np.logaddexp(0, z) - (y == model.classes_[1]) * z
  else:
    loss = logsumexp(scores, axis=1) - scores[np.arange(len(y)), np.searchsorted(model.classes_, y)]
  ratio = model.l1_ratio
  penalty = (1 - ratio) / 2 * np.sum(model.coef_**2) + ratio * np.abs(model.coef_).sum()
  return (weight @ loss) / weight.sum() + penalty / (model.C * weight.sum())


@pytest.mark.parametrize(("load", "C", "l1_ratio"), [(load_breast_cancer, 0.1, 1.0), (load_breast_cancer, 0.5, 0.3),
                                                     (load_wine, 0.1, 1.0), (load_wine, 0.5, 0.3)],
                         ids=["logistic-l1", "logistic-elasticnet", "softmax-l1", "softmax-elasticnet"])
def test_l1_logistic_and_softmax_reach_scikit_learns_optimum_and_its_zeros(load, C, l1_ratio):
  from sklearn.linear_model import LogisticRegression

  x, y = load(return_X_y=True)
  x = StandardScaler().fit_transform(x)  # (saga converges on standardised features only; ours on any)
  weight = np.random.default_rng(0).uniform(0.2, 3.0, len(y))
  reference = LogisticRegression(C=C, l1_ratio=l1_ratio, solver="saga", tol=1e-12, max_iter=100_000)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    reference.fit(x, y, sample_weight=weight)
  ours = LinearClassifier(C=C, l1_ratio=l1_ratio, tol=1e-10).fit(x, y, sample_weight=weight)
  best = logistic_objective(reference, x, y, weight)
  assert logistic_objective(ours, x, y, weight) <= best * (1 + 1e-6)
  np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=0, atol=1e-4)
  np.testing.assert_allclose(ours.intercept_, reference.intercept_, rtol=0, atol=1e-4)
  assert np.array_equal(ours.coef_ == 0.0, reference.coef_ == 0.0) and (ours.coef_ == 0).any()
  # scikit-learn's older name says the same
  older = LinearClassifier(C=C, penalty="l1" if l1_ratio == 1 else "elasticnet", l1_ratio=l1_ratio, tol=1e-10)
  np.testing.assert_array_equal(older.fit(x, y, sample_weight=weight).coef_, ours.coef_)


def test_l1_classifier_on_raw_badly_scaled_features_meets_the_optimality_conditions():
  """Raw breast-cancer features (scales 1e-3 to 1e3), where saga does not converge: the L1 fit checked by its
  optimality conditions, computed here in NumPy from the raw coefficients."""
  x, y = load_breast_cancer(return_X_y=True)
  weight = np.random.default_rng(0).uniform(0.2, 3.0, len(y))
  model = LinearClassifier(C=0.01, l1_ratio=1.0, tol=1e-10).fit(x, y, sample_weight=weight)
  l2, l1 = penalties_of_C(0.01, 1.0, weight.sum())
  v = weight / weight.sum()
  residual = expit(x @ model.coef_[0] + model.intercept_[0]) - y
  grad = (v * residual) @ x + l2 * model.coef_[0]
  w = model.coef_[0]
  # The conditions in standardised features (w_s = w scale: its gradient is the raw one / scale), as the tol.
  scale = x.std(axis=0)
  nonzero = w != 0
  assert abs(v @ residual) <= 1e-8
  np.testing.assert_array_less(np.abs(grad[nonzero] + l1 * np.sign(w[nonzero])) / scale[nonzero], 1e-8)
  np.testing.assert_array_less(np.abs(grad[~nonzero]) / scale[~nonzero], (l1 + 1e-8) / scale[~nonzero])
  assert 0 < nonzero.sum() < x.shape[1]


def glm_optimality(model, x, y, weight, power):
  """The largest violation of the L1 GLM's optimality conditions, in standardised features (NumPy)."""
  mu = np.exp(x @ model.coef_ + model.intercept_)
  residual = mu ** (1 - power) * (mu - y)  # the half deviance's derivative in log μ
  v = weight / weight.sum()
  alpha, ratio = model.alpha, model.l1_ratio
  grad = (v * residual) @ x + alpha * (1 - ratio) * model.coef_
  l1 = alpha * ratio
  w, scale = model.coef_, x.std(axis=0)
  worst = np.where(w != 0, np.abs(grad + l1 * np.sign(w)), np.maximum(np.abs(grad) - l1, 0)) / scale
  return max(worst.max(), abs(v @ residual))


@pytest.mark.parametrize(("estimator", "args", "power"),
                         [(PoissonRegressor, {}, 1.0), (GammaRegressor, {}, 2.0), (TweedieRegressor, {"power": 1.5}, 1.5)],
                         ids=["poisson", "gamma", "tweedie1.5"])
@pytest.mark.parametrize(("alpha", "l1_ratio"), [(0.05, 1.0), (0.2, 0.5)])
def test_l1_glms_meet_their_optimality_conditions_with_exact_zeros(estimator, args, power, alpha, l1_ratio):
  x, y = load_diabetes(return_X_y=True)
  x = x * np.logspace(-2, 2, x.shape[1])  # badly scaled: the penalty is on these raw coefficients
  weight = np.random.default_rng(0).uniform(0.2, 3.0, len(y))
  model = estimator(alpha=alpha, l1_ratio=l1_ratio, tol=1e-10, **args).fit(x, y, sample_weight=weight)
  assert glm_optimality(model, x, y, weight, power) <= 1e-8
  assert (model.coef_ == 0.0).any() and (model.coef_ != 0).any()
  # l1_ratio = 0 is the plain L2 fit
  plain = estimator(alpha=alpha, tol=1e-10, **args).fit(x, y, sample_weight=weight)
  same = estimator(alpha=alpha, l1_ratio=0.0, tol=1e-10, **args).fit(x, y, sample_weight=weight)
  np.testing.assert_array_equal(plain.coef_, same.coef_)


def test_tweedie_power_zero_with_l1_ratio_is_scikit_learns_elastic_net():
  from sklearn.linear_model import ElasticNet

  x, y = load_diabetes(return_X_y=True)
  weight = np.random.default_rng(0).uniform(0.2, 3.0, len(y))
  ours = TweedieRegressor(power=0, alpha=0.01, l1_ratio=0.7, tol=1e-10).fit(x, y, sample_weight=weight)
  reference = ElasticNet(alpha=0.01, l1_ratio=0.7, tol=1e-14, max_iter=1_000_000).fit(x, y, sample_weight=weight)
  np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-6, atol=1e-6)
  assert np.array_equal(ours.coef_ == 0, reference.coef_ == 0)


def test_proximal_newton_before_convergence_warns_and_an_l1_with_lbfgs_is_refused():
  x, y = load_breast_cancer(return_X_y=True)
  with pytest.warns(ConvergenceWarning):
    one = LinearClassifier(C=0.1, l1_ratio=1.0, max_iter=1).fit(x, y)
  assert one.n_iter_[0] == 1
  with pytest.raises(ValueError, match="proximal"):
    LinearClassifier(C=0.1, l1_ratio=1.0, solver="lbfgs").fit(x, y)
  with pytest.raises(ValueError, match="optax"):
    LinearClassifier(C=0.1, l1_ratio=1.0, solver="optax").fit(x, y)
  with pytest.raises(ValueError, match="l1_ratio"):
    LinearClassifier(l1_ratio=1.5).fit(x, y)


def test_many_l1_models_in_one_solve_are_each_their_own_fit():
  x, y = load_breast_cancer(return_X_y=True)
  data = solvers.stage(x, y, "logistic")
  rng = np.random.default_rng(3)
  weights = rng.uniform(0.0, 2.0, (4, len(y)))
  l1 = np.array([1e-3, 1e-2, 3e-3, 0.0])
  together = solvers.solve(data, weights, [1e-4] * 4, tol=1e-10, l1=l1)
  for k in range(4):
    alone = solvers.solve(data, weights[k:k + 1], [1e-4], tol=1e-10, l1=l1[k:k + 1])
    np.testing.assert_allclose(together.coef[k], alone.coef[0], rtol=1e-6, atol=1e-6)  # each to its tol
    assert np.array_equal(together.coef[k] == 0, alone.coef[0] == 0)


def breast_cancer_l1():
  x, y = load_breast_cancer(return_X_y=True)
  x = StandardScaler().fit_transform(x).astype(np.float32)
  l1 = 0.02
  reference = LinearClassifier(C=1 / (l1 * len(y)), l1_ratio=1.0, tol=1e-10).fit(x.astype(np.float64), y)
  return x, y, l1, reference


def test_trainer_l1_by_the_exact_solver_is_the_estimators_answer():
  """`Trainer(l1=...)` without an optimizer: proximal Newton, LinearClassifier's answer (C = 1 / (l1 n)); an
  optimizer without the proximal step is refused in one line."""
  import optax

  from flaxzoo.trainers import Trainer
  from flaxzoo.zoo import create_model

  x, y, l1, reference = breast_cancer_l1()
  exact = Trainer(create_model("logistic_regression", in_features=30), loss="logistic", l1=l1)
  assert exact.fit((x, y), steps=100).converged
  kernel = exact.model.affine_map()[0][:, 0]
  np.testing.assert_allclose(kernel, reference.coef_[0], atol=1e-5)
  assert np.array_equal(kernel == 0, reference.coef_[0] == 0)
  with pytest.raises(ValueError, match="penalties.proximal"):
    Trainer(create_model("logistic_regression", in_features=30), optax.sgd(0.1), loss="logistic", l1=l1).fit(
        (x, y), steps=1)


@pytest.mark.slow
def test_trainer_l1_by_the_proximal_optax_step_has_exact_zeros_and_nears_the_optimum():
  """`penalties.proximal(optax.sgd)`: ISTA, whose weights carry exact zeros and whose objective approaches the
  optimum (2000 steps: within 0.3%)."""
  import jax
  import optax

  from flaxzoo.trainers import Trainer
  from flaxzoo.trainers.penalties import proximal
  from flaxzoo.zoo import create_model

  x, y, l1, reference = breast_cancer_l1()
  z = x @ reference.coef_[0] + reference.intercept_[0]
  best = np.mean(np.logaddexp(0, z) - y * z) + l1 * np.abs(reference.coef_).sum()
  ista = Trainer(create_model("logistic_regression", in_features=30), proximal(optax.sgd(0.2), 0.2), loss="logistic",
                 l1=l1)
  with jax.numpy_dtype_promotion("standard"):  # (optax's own code needs it)
    history = ista.fit((x, y), steps=2000, log_every=1000, final_metrics=False)
  assert history.losses[-1] < history.losses[0] and history.losses[-1] <= best * (1 + 3e-3)
  assert (ista.model.affine_map()[0] == 0.0).sum() >= 15  # exact zeros (the optimum has 23)


def test_classifier_cv_over_l1_ratios_scores_every_fold_as_its_own_fit():
  """LinearClassifierCV(Cs, l1_ratios): every fold x C x l1_ratio in one solve; each score is the held-out
  log loss of that fold's own LinearClassifier(C, l1_ratio) fit; scikit-learn's layout of scores_ and n_iter_;
  the refit is LinearClassifier(C_, l1_ratio_) on all rows."""
  from sklearn.metrics import log_loss
  from sklearn.model_selection import StratifiedKFold

  from flaxzoo.sklearn import LinearClassifierCV

  x, y = load_breast_cancer(return_X_y=True)
  x = StandardScaler().fit_transform(x)
  Cs, ratios = [0.05, 0.5, 5.0], [0.0, 0.5, 1.0]  # noqa: N806
  folds = StratifiedKFold(3, shuffle=True, random_state=0)
  cv = LinearClassifierCV(Cs=Cs, l1_ratios=ratios, cv=folds, scoring="neg_log_loss", tol=1e-8).fit(x, y)
  assert cv.scores_[1].shape == (3, 3, 3) and cv.n_iter_.shape == (3, 3, 3)
  for f, (train, test) in enumerate(folds.split(x, y)):
    for i, C in enumerate(Cs):  # noqa: N806
      for j, ratio in enumerate(ratios):
        alone = LinearClassifier(C=C, l1_ratio=ratio, tol=1e-8).fit(x[train], y[train])
        expected = -log_loss(y[test], alone.predict_proba(x[test]))
        assert cv.scores_[1][f, i, j] == pytest.approx(expected, abs=1e-6)
  best = np.unravel_index(np.argmax(cv.scores_[1].mean(axis=0)), (3, 3))
  assert (cv.C_[0], cv.l1_ratio_[0]) == (Cs[best[0]], ratios[best[1]])
  refit = LinearClassifier(C=cv.C_[0], l1_ratio=cv.l1_ratio_[0], tol=1e-8).fit(x, y)
  np.testing.assert_allclose(cv.coef_, refit.coef_, atol=1e-6)


def test_a_sweep_fits_an_l1_path_times_folds_in_one_solve():
  """`Sweep(l1=path, solver="auto")` with the folds as example weights: 8 penalties x 3 folds, each model its
  own LinearClassifier fit (C = 1 / (l1 S_fold)) with its zeros; the path's zeros grow with the penalty."""
  from flaxzoo.trainers import Sweep
  from flaxzoo.zoo import create_models

  x, y = load_breast_cancer(return_X_y=True)
  x = StandardScaler().fit_transform(x)
  path = np.geomspace(0.1, 1e-3, 8)
  folds = np.stack([np.arange(len(y)) % 3 != f for f in range(3)]).astype(np.float64)
  weights = np.repeat(folds, len(path), axis=0)  # fold-major
  l1 = np.tile(path, 3)
  sweep = Sweep(create_models("logistic_regression", seeds=range(24), in_features=30), loss="logistic", l1=l1,
                solver="auto", tol=1e-8)
  sweep.fit((x.astype(np.float32), y), steps=100, weights=weights)
  for k in (0, 7, 12, 23):
    rows = weights[k] > 0
    alone = LinearClassifier(C=1 / (l1[k] * rows.sum()), l1_ratio=1.0, tol=1e-8).fit(x[rows], y[rows])
    kernel = np.asarray(sweep.params(k)["linear"]["kernel"][...])[:, 0]
    np.testing.assert_allclose(kernel, alone.coef_[0], atol=1e-4)
    assert np.array_equal(kernel == 0, alone.coef_[0] == 0)
  zeros = [int((np.asarray(sweep.params(k)["linear"]["kernel"][...]) == 0).sum()) for k in range(8)]
  assert zeros == sorted(zeros, reverse=True) and zeros[0] > zeros[-1]


@pytest.mark.slow  # (three CLI runs)
def test_flaxzoo_sweep_with_an_l1_penalty_is_a_path_by_the_exact_solver(tmp_path):
  """`flaxzoo sweep claims_poisson --l2 ... --penalty l1`: the grid's strengths become L1 weights (one exact
  solve of settings x folds; a larger penalty, a worse fit here); on optax steps it is one line of error."""
  import json

  from conftest import run_cli

  done = run_cli("sweep", "claims_poisson", "--l2", "0.001,0.3", "--penalty", "l1", "--folds", "2",
                 "--workdir", tmp_path / "path", "--quiet")
  assert done.returncode == 0, done.stderr
  summary = json.loads((tmp_path / "path" / "sweep.json").read_text())
  assert summary["config"]["penalty"] == "l1" and summary["best"]["settings"]["l2"] == 0.001
  refused = run_cli("sweep", "brain_age_gm", "--l2", "0.01", "--penalty", "l1", "--folds", "2", "--steps", "5",
                    "--workdir", tmp_path / "optax", "--quiet")
  assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1
  assert "exact solvers" in refused.stderr


def test_l1_glms_reach_glums_optimum_and_its_zeros():
  """The GLM regressors' `l1_ratio` against glum's optimum (`tests/glum_l1.json`, written by
  `tests/glum_reference.py` with glum 3.4): objective within 1e-6, coefficients 1e-4, the same zeros."""
  import json
  import pathlib

  from glum_reference import data
  from sklearn.metrics import mean_tweedie_deviance

  x, y, weight = data()
  reference = json.loads((pathlib.Path(__file__).parent / "glum_l1.json").read_text())
  estimators = {"poisson": PoissonRegressor, "gamma": GammaRegressor, "tweedie": TweedieRegressor}
  for case in reference["cases"]:
    args = {"power": case["power"]} if case["family"] == "tweedie" else {}
    ours = estimators[case["family"]](alpha=case["alpha"], l1_ratio=case["l1_ratio"], tol=1e-10, **args)
    ours.fit(x, y, sample_weight=weight)
    theirs = np.asarray(case["coef"])

    def objective(coef, intercept, case=case):
      mean = np.exp(x @ coef + intercept)
      penalty = case["alpha"] * (case["l1_ratio"] * np.abs(coef).sum() + (1 - case["l1_ratio"]) / 2 * coef @ coef)
      return mean_tweedie_deviance(y, mean, sample_weight=weight, power=case["power"]) / 2 + penalty

    best = objective(theirs, case["intercept"])
    assert objective(ours.coef_, ours.intercept_) <= best * (1 + 1e-6)
    np.testing.assert_allclose(ours.coef_, theirs, rtol=0, atol=1e-4 * max(1.0, np.abs(theirs).max()))
    assert np.array_equal(ours.coef_ == 0.0, theirs == 0.0) and (theirs == 0).any()
