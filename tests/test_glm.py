"""Log-link GLMs (Poisson, Gamma, Tweedie) by the exact solvers: scikit-learn's optimum, its objective's
scale, the targets' domain, and many models at once."""

import re
import warnings

import jax
import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import mean_tweedie_deviance
from sklearn.preprocessing import StandardScaler

from flaxzoo.sklearn import GammaRegressor, PoissonRegressor, TweedieRegressor
from flaxzoo.trainers import solvers


def objective(model, x, y, weight, power):
  """scikit-learn's GLM objective: the weighted mean half deviance plus `alpha / 2 |coef|²`."""
  mean = np.exp(x @ model.coef_ + model.intercept_)
  return mean_tweedie_deviance(y, mean, sample_weight=weight, power=power) / 2 + model.alpha / 2 * model.coef_ @ model.coef_


def diabetes():
  """Diabetes progression (> 0, 25-346) on standardised features, and uneven sample weights."""
  x, y = load_diabetes(return_X_y=True)
  return StandardScaler().fit_transform(x), y, np.random.default_rng(0).uniform(0.2, 3.0, len(y))


CASES = [(PoissonRegressor, {}, 1.0), (GammaRegressor, {}, 2.0), (TweedieRegressor, {"power": 1.5}, 1.5),
         (TweedieRegressor, {"power": 3.0}, 3.0)]


@pytest.mark.parametrize(("estimator", "args", "power"), CASES, ids=["poisson", "gamma", "tweedie1.5", "tweedie3"])
@pytest.mark.parametrize("solver", ["auto", "lbfgs"])
def test_glm_regressors_reach_scikit_learns_optimum_on_diabetes(estimator, args, power, solver):
  from sklearn import linear_model

  x, y, weight = diabetes()
  reference = getattr(linear_model, estimator.__name__)(alpha=0.05, tol=1e-12, max_iter=10_000, **args)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)  # its lbfgs stops on a flat objective, there
    reference.fit(x, y, sample_weight=weight)
  ours = estimator(alpha=0.05, solver=solver, tol=1e-8, **args).fit(x, y, sample_weight=weight)
  best = objective(reference, x, y, weight, power)
  assert abs(objective(ours, x, y, weight, power) - best) <= 1e-6 * best
  np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=0, atol=1e-4)
  assert ours.intercept_ == pytest.approx(reference.intercept_, rel=1e-5)
  assert ours.score(x, y) == pytest.approx(reference.score(x, y), abs=1e-6)
  # Before convergence: one Newton step from the intercept-only fit, warned, between it and the optimum.
  if solver == "auto":
    with pytest.warns(ConvergenceWarning):
      early = estimator(alpha=0.05, max_iter=1, **args).fit(x, y, sample_weight=weight)
    flat = estimator(alpha=0.05, **args)
    flat.coef_, flat.intercept_ = np.zeros(x.shape[1]), np.log(np.average(y, weights=weight))
    assert best < objective(early, x, y, weight, power) < objective(flat, x, y, weight, power)


def test_tweedie_power_0_is_ridge_at_n_alpha():
  from sklearn.linear_model import Ridge

  x, y, _ = diabetes()
  ours = TweedieRegressor(power=0, alpha=0.5).fit(x, y)
  reference = Ridge(alpha=0.5 * len(y)).fit(x, y)
  np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-8)
  np.testing.assert_allclose(ours.predict(x), reference.predict(x), rtol=1e-8)


@pytest.mark.parametrize(("estimator", "args", "targets", "message"), [
    (PoissonRegressor, {}, -1.0, "PoissonRegressor: the poisson loss needs labels >= 0"),
    (GammaRegressor, {}, 0.0, "GammaRegressor: the gamma loss needs labels > 0"),
    (TweedieRegressor, {"power": 2.5}, 0.0, "the tweedie:2.5 loss needs labels > 0"),
    (TweedieRegressor, {"power": 0.5}, 1.0, "power must be 0 or >= 1"),
    (TweedieRegressor, {"power": 1.5, "link": "identity"}, 1.0, "only 'log'"),
])
def test_targets_and_parameters_outside_the_family_are_refused_in_one_line(estimator, args, targets, message):
  x, y, _ = diabetes()
  y = y.copy()
  y[7] = targets
  with pytest.raises(ValueError, match=re.escape(message)) as raised:
    estimator(**args).fit(x, y)
  assert "\n" not in str(raised.value)


def test_many_glms_in_one_solve_equal_each_alone():
  """K models on one copy of the rows (example weights, penalties): what a sweep or a CV grid solves."""
  x, y, _ = diabetes()
  rng = np.random.default_rng(3)
  weights = rng.integers(0, 3, size=(8, len(y))).astype(np.float64)
  l2 = np.logspace(-3, 0, 8)
  data = solvers.stage(x, y, "tweedie", power=1.3)
  together = solvers.solve(data, weights, l2, tol=1e-10)
  assert together.converged.all()
  for j in (0, 3, 7):
    alone = solvers.solve(data, weights[j:j + 1], l2[j:j + 1], tol=1e-10)
    np.testing.assert_allclose(together.coef[j], alone.coef[0], atol=1e-8)
    np.testing.assert_allclose(together.intercept[j], alone.intercept[0], atol=1e-8)


def test_a_glm_on_large_data_starts_from_a_sample_and_matches_lbfgs():
  """70,000 rows (two chunks, the row-sample start and Hessian): Newton and L-BFGS agree."""
  rng = np.random.default_rng(5)
  x = rng.normal(size=(70_000, 6)) * [1.0, 3.0, 0.5, 1.0, 2.0, 1.0] + [0.0, 2.0, 0.0, -1.0, 0.0, 0.0]
  y = rng.poisson(np.exp(0.2 + x @ [0.3, -0.1, 0.4, 0.0, 0.1, -0.2])).astype(np.float64)
  data = solvers.stage(x, y, "poisson")
  assert data.sample is not None and solvers.chunked_weights(data, np.ones((1, len(y)))).start is not None
  newton = solvers.solve(data, np.ones((1, len(y))), [1e-4], "newton", tol=1e-9)
  lbfgs = solvers.solve(data, np.ones((1, len(y))), [1e-4], "lbfgs", tol=1e-9, max_iter=500)
  assert newton.converged.all() and lbfgs.converged.all()
  np.testing.assert_allclose(newton.coef, lbfgs.coef, atol=1e-7)
  assert newton.objective[0] == pytest.approx(lbfgs.objective[0], rel=1e-12)


def test_the_zoo_glm_trains_by_newton_and_by_optax_to_the_estimators_answer():
  """The `glm` zoo entry with the Poisson loss: `Trainer` without an optimizer (Newton), and with optax's adam,
  both at `PoissonRegressor`'s optimum (alpha = the core's l2); metrics on the mean scale, exp(outputs)."""
  import optax

  from flaxzoo.trainers import Trainer
  from flaxzoo.zoo import create_model

  rng = np.random.default_rng(0)
  x = rng.normal(size=(2000, 4)).astype(np.float32)
  y = rng.poisson(np.exp(x @ np.array([0.3, -0.2, 0.1, 0.5]) + 0.5)).astype(np.float32)
  reference = PoissonRegressor(alpha=1e-3, tol=1e-10).fit(x.astype(np.float64), y)
  exact = Trainer(create_model("glm", in_features=4), loss="poisson", l2=1e-3)
  history = exact.fit((x, y), steps=50)
  assert exact.chosen_solver(len(x)) == "newton" and history.converged
  kernel, bias = exact.model.affine_map()
  np.testing.assert_allclose(kernel[:, 0], reference.coef_, atol=1e-5)
  np.testing.assert_allclose(bias[0], reference.intercept_, atol=1e-5)
  trained = Trainer(create_model("glm", in_features=4), optax.adam(0.05), loss="poisson", l2=1e-3)
  with jax.numpy_dtype_promotion("standard"):  # (optax's own code needs it)
    trained.fit((x, y), steps=1500, final_metrics=False)
  np.testing.assert_allclose(trained.model.affine_map()[0][:, 0], reference.coef_, atol=1e-3)
  metrics = exact.evaluate((x, y))
  mean = np.exp(x @ kernel[:, 0] + bias[0])
  assert metrics["mae"] == pytest.approx(np.mean(np.abs(mean - y)), rel=1e-4)
  np.testing.assert_allclose(exact.model.mean(x)[:, 0], mean, rtol=1e-5)


def test_the_claims_table_is_the_seeded_generators_and_its_experiment_fits_poissons_optimum(tmp_path):
  """`claims` ships the table `generate.py` writes with seed 0 (byte for byte); `flaxzoo train claims_poisson`
  fits the Poisson GLM by Newton to scikit-learn's PoissonRegressor(alpha=0) on the same standardised split."""
  import importlib.util
  import json

  from conftest import run_cli

  from flaxzoo.datasets import claims
  from flaxzoo.datasets.sources import load_data

  spec = importlib.util.spec_from_file_location("generate", claims.TABLE.parent / "generate.py")
  generator = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(generator)
  shipped = claims.TABLE.read_bytes()
  generator.main(tmp_path / "claims.csv")
  assert (tmp_path / "claims.csv").read_bytes() == shipped
  result = run_cli("train", "claims_poisson", "--workdir", tmp_path / "run")
  assert result.returncode == 0, result.stderr
  results = json.loads((tmp_path / "run" / "results.json").read_text())
  assert results["model"]["name"] == "glm" and results["loss"] == "poisson"
  data = load_data("claims")
  x, y = data.splits["train"]
  reference = PoissonRegressor(alpha=0.0, tol=1e-10).fit(x.astype(np.float64), y)
  assert results["train"]["mae"] == pytest.approx(np.mean(np.abs(reference.predict(x) - y)), rel=1e-4)


@pytest.mark.parametrize("loss", ["poisson", "gamma", "tweedie:1.5", "logistic"])
def test_one_models_passes_over_host_rows_are_the_compiled_passes_and_never_copy_the_rows(loss):
  # 200k rows (4 chunks: the host loop's passes), badly scaled columns, uneven weights, before convergence too
  import dataclasses

  from flaxzoo.trainers.solvers._objective import _objective_parts
  from flaxzoo.trainers.solvers._weights import chunked_weights

  rng = np.random.default_rng(3)
  n = 200_000
  x = rng.standard_normal((n, 5)) * [1.0, 10.0, 0.1, 1e3, 1.0] + [0.0, 5.0, 0.0, 1e4, 0.0]
  eta = 0.3 + ((x - x.mean(0)) / x.std(0)) @ [0.4, -0.3, 0.2, 0.1, 0.0]
  y = {"poisson": rng.poisson(np.exp(eta)).astype(float), "gamma": rng.gamma(2.0, np.exp(eta) / 2),
       "tweedie:1.5": rng.poisson(np.exp(eta)) * rng.gamma(1.5, 1.0, n),
       "logistic": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)}[loss]
  data = solvers.stage(x, y, loss, 2 if loss == "logistic" else None)
  chunks = chunked_weights(data, rng.uniform(0.0, 2.0, (1, n)))
  assert chunks.host is not None and len(data.chunk_rows) > 2
  penalty = np.zeros((1, 6, 1))
  compiled_passes = dataclasses.replace(chunks, host=None)
  with jax.enable_x64(True):  # (as `solvers.solve` calls them)
    thetas = (np.zeros((1, 6, 1)), rng.normal(0, 0.3, (1, 6, 1)))
    on_host = [_objective_parts(data, chunks, theta, [0.0], penalty, False) for theta in thetas]
    assert data.x is None  # the rows never went to the device
    for theta, host in zip(thetas, on_host):
      compiled = _objective_parts(data, compiled_passes, theta, [0.0], penalty, False)
      np.testing.assert_allclose(host[0], compiled[0], rtol=1e-13)
      np.testing.assert_allclose(host[1], compiled[1], rtol=1e-11, atol=1e-13 * np.abs(compiled[1]).max())
    with warnings.catch_warnings():  # far logits: the logistic loss finite (no overflow), the log link's means
      warnings.simplefilter("error")  # overflow to a loss that is not finite, silently (the line search refuses it)
      far = [_objective_parts(data, passes, np.full((1, 6, 1), 800.0), [0.0], penalty, False)[0][0]
             for passes in (chunks, compiled_passes)]
    if loss == "logistic":
      np.testing.assert_allclose(far[0], far[1], rtol=1e-13)
    else:
      assert not np.isfinite(far[0]) and not np.isfinite(far[1])
