"""One engine: `choose` is the only solver rule, one exact fit serves Trainer, Sweep and the estimators, and every
loss the CLI accepts reaches its exact solver where one exists (the robust losses too)."""

import ast
import pathlib

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.linear_model import QuantileRegressor as Reference

from flaxzoo.trainers import Sweep, Trainer
from flaxzoo.trainers.solvers import choose
from flaxzoo.zoo import create_model

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("solver, loss, penalties, expected", [
    ("auto", "mse", {}, "normal_equation"),
    ("auto", "logistic", {}, "newton"),
    ("auto", "tweedie:1.5", {"l1": True}, "newton"),
    ("auto", "huber:0.1", {"l2": True}, "newton"),
    ("auto", "huber:0.1", {"l1": True}, "optax"),  # Huber with an L1 part: no exact solver here
    ("auto", "quantile:0.5", {"l1": True}, "interior_point"),
    ("auto", "quantile:0.5", {"l2": True}, "optax"),  # an L2 part: not a linear program
    ("interior_point", "quantile:0.9", {}, "interior_point"),
    ("optax", "huber:1.35", {}, "optax"),
])
def test_choose_is_the_rule_for_every_loss(solver, loss, penalties, expected):
  assert choose(solver, loss, **penalties) == expected
  assert choose("auto", loss, full_batch=False, **penalties) == "optax"  # minibatches: optax steps


def test_choose_refuses_a_solver_that_does_not_apply_in_one_line():
  with pytest.raises(ValueError, match="not lbfgs"):
    choose("lbfgs", "logistic", l1=True)
  with pytest.raises(ValueError, match="interior_point for quantile"):
    choose("interior_point", "huber:1.0")
  with pytest.raises(ValueError, match="needs the loss"):
    choose("newton", "quantile:0.5", l2=True)


def _rows(n=400, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, 0.0]
  return x, x @ [1.0, -0.2, 5.0] + 0.5 + rng.standard_t(2, n)


def huber_objective(theta, x, y, epsilon, l2):
  r = np.abs(y - x @ theta[:-1] - theta[-1])
  return np.mean(np.where(r <= epsilon, r**2 / 2, epsilon * (r - epsilon / 2))) + l2 / 2 * theta[:-1] @ theta[:-1]


def test_a_trainer_without_an_optimizer_fits_the_huber_loss_exactly():
  """`huber:E` (optax's huber_loss at a fixed scale) with an L2 part: Newton from the least-squares fit, to an
  objective at most that of SciPy's BFGS at gtol 1e-12 from the same start, the parameters 1e-6 apart."""
  x, y = _rows()
  trainer = Trainer(create_model("linear_regression", in_features=3), loss="huber:1.0", l2=0.01)
  assert trainer.chosen_solver(len(y)) == "newton"
  history = trainer.fit((x.astype(np.float32), y.astype(np.float32)), steps=100)
  ours = np.r_[np.ravel(trainer.params["linear"]["kernel"][...]), np.ravel(trainer.params["linear"]["bias"][...])]
  x32, y32 = (v.astype(np.float32).astype(np.float64) for v in (x, y))
  start = np.linalg.lstsq(np.c_[x32, np.ones(len(y))], y32, rcond=None)[0]
  scipy = minimize(huber_objective, start, (x32, y32, 1.0, 0.01), method="BFGS", options={"gtol": 1e-12})
  assert history.converged and history.iterations <= 10
  assert huber_objective(ours.astype(np.float64), x32, y32, 1.0, 0.01) <= scipy.fun + 1e-7  # (float32 parameters)
  np.testing.assert_allclose(ours, scipy.x, atol=1e-5)


def test_the_pinball_loss_is_the_linear_program_through_trainer_sweep_and_the_estimator():
  """`quantile:Q` without an L2 part: the trainer, a sweep of fold models and QuantileRegressor give
  scikit-learn's HiGHS answer (alpha 0) to 1e-6; an L1 part is the LP's alpha."""
  x, y = _rows(seed=1)
  reference = Reference(quantile=0.3, alpha=0.0).fit(x, y)
  trainer = Trainer(create_model("linear_regression", in_features=3), loss="quantile:0.3")
  assert trainer.chosen_solver(len(y)) == "interior_point"
  history = trainer.fit((x, y), steps=100)
  assert history.converged
  kernel = np.ravel(trainer.params["linear"]["kernel"][...])  # float32 parameters
  np.testing.assert_allclose(kernel, reference.coef_, rtol=1e-6, atol=1e-6)
  folds = np.arange(len(y)) % 3
  weights = np.stack([(folds != f).astype(np.float64) for f in range(3)])
  models = [create_model("linear_regression", in_features=3, seed=s) for s in range(3)]
  sweep = Sweep(models, None, loss="quantile:0.3", solver="auto", l1=[0.0, 0.0, 0.01])
  assert sweep.chosen_solver(len(y)) == "interior_point"
  sweep.fit((x, y), weights=weights, steps=100)
  for f, alpha in zip(range(3), (0.0, 0.0, 0.01)):
    keep = folds != f
    expected = Reference(quantile=0.3, alpha=alpha).fit(x[keep], y[keep]).coef_
    np.testing.assert_allclose(np.ravel(sweep.params(f)["linear"]["kernel"][...]), expected, rtol=1e-6, atol=1e-6)


LIBRARY = ("trainers", "sklearn_api", "checkpoints", "datasets", "zoo", "experiments")


def test_no_library_module_changes_process_wide_settings():
  """`jax.config.update` and writes to `os.environ` belong to programs (the CLI's entry point, benchmarks, a
  user's script), never to a library call: `solve()` once turned on JAX's compilation cache on every call."""
  found = []
  for path in sorted(p for folder in LIBRARY for p in (ROOT / folder).rglob("*.py")):
    if path.parts[-2:] == ("cli", "entry.py") or path.name == "cli.py" and path.parent.name == "experiments":
      continue  # the command's entry point chooses the compilation cache for its process
    for node in ast.walk(ast.parse(path.read_text())):
      text = ast.unparse(node) if isinstance(node, (ast.Call, ast.Assign)) else ""
      if text.startswith(("jax.config.update(", "os.environ.setdefault(", "os.environ.update(", "os.putenv(")) or (
          isinstance(node, ast.Assign) and any("os.environ[" in ast.unparse(t) for t in node.targets)):
        found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text[:60]}")
  assert not found, found


def test_every_cv_estimator_trains_each_fold_on_the_splitters_own_rows():
  """One fold encoding (`sklearn.folds`): ElasticNetCV took a fold's training rows as every row but its test
  rows, so a TimeSeriesSplit's folds trained on the future too; now its path scores are those of ElasticNet
  fitted on the splitter's own training rows, as LinearRegressionCV's are."""
  from sklearn.linear_model import ElasticNet
  from sklearn.model_selection import TimeSeriesSplit

  from flaxzoo.sklearn import ElasticNetCV

  x, y = _rows(n=240, seed=3)
  splitter = TimeSeriesSplit(3)
  ours = ElasticNetCV(l1_ratio=0.5, alphas=4, cv=splitter, tol=1e-10, max_iter=10_000).fit(x, y)
  for f, (train, test) in enumerate(splitter.split(x)):
    for a, alpha in enumerate(ours.alphas_):
      fold = ElasticNet(alpha=alpha, l1_ratio=0.5, tol=1e-12, max_iter=100_000).fit(x[train], y[train])
      expected = np.mean((fold.predict(x[test]) - y[test]) ** 2)
      np.testing.assert_allclose(ours.mse_path_[a, f], expected, rtol=1e-6)
