"""Many models in one solve of the exact solvers, and large data: each model its lone fit or scikit-learn's
optimum, from a row sample's start, on several devices, by the chord method. One model: tests/test_solvers.py."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import COMPILATIONS, logistic_objective
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from flaxzoo.sklearn import LinearClassifier, LinearClassifierCV
from flaxzoo.trainers import solvers
from flaxzoo.trainers.solvers import _choice, _newton, _staging
from flaxzoo.zoo import create_model


@pytest.fixture(autouse=True)
def standard_promotion():
  """The estimators run as a user's code does: JAX's standard promotion."""
  with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
    yield


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
  lean = solvers.chunked_weights(data, weights, with_sample=False, with_start=False)
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


def test_the_weights_of_many_models_are_checked_on_the_cores_as_on_one():
  """`checked_weights` sums many weights a share of the models on each core: the one-core sums to the bit, and
  a negative, NaN or infinite entry in any model's share is refused."""
  from flaxzoo.trainers.host_blas import PARALLEL_ENTRIES
  from flaxzoo.trainers.weights import checked_weights

  rng = np.random.default_rng(4)
  weights = rng.integers(0, 4, (601, PARALLEL_ENTRIES // 600 + 1)).astype(np.float32)
  assert weights.size >= PARALLEL_ENTRIES
  _, total = checked_weights(weights)
  np.testing.assert_array_equal(total, weights.sum(axis=1, keepdims=True, dtype=np.float64))
  _, total = checked_weights(np.asfortranarray(weights))  # ([rows, models] memory, as the CV estimators give it)
  np.testing.assert_array_equal(total, weights.sum(axis=1, keepdims=True, dtype=np.float64))
  for model, value in ((0, np.nan), (300, -1.0), (600, np.inf)):
    bad = weights.copy()
    bad[model, 7] = value
    with pytest.raises(ValueError, match="weights must be finite and >= 0"):
      checked_weights(bad)
  huge = weights.astype(np.float64) * 1e306  # finite entries whose sums overflow: scaled by their largest
  scaled, total = checked_weights(huge)
  assert np.all(np.isfinite(total)) and np.max(scaled) == 1.0


@pytest.mark.parametrize("loss, models", [("logistic", 4), ("logistic", 40), ("poisson", 40)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_models_at_one_point_take_one_models_pass_weighed_by_each_models_weights(loss, models, dtype):
  """At a point every model shares (a bootstrap's resamples at the fit's optimum: the chord method's first
  pass), one model's loss and derivative a row, weighed by each model's weights (`[K, C]`, or `[C, K]` for many
  binary models), give each model's objective and gradient: its own pass's, to the pass dtype's rounding (the
  chord test above: the resamples from there reach their own optima)."""
  from flaxzoo.trainers.solvers._newton_step import _penalty_diagonal
  from flaxzoo.trainers.solvers._objective import _objective_parts

  rng = np.random.default_rng(31)
  n, d = 70_000, 3  # (two chunks, the second padded)
  x = rng.normal(size=(n, d)) * [1.0, 1e-2, 50.0] + [0.0, 3.0, 0.0]
  eta = x @ [0.4, 20.0, 0.01] - 60.0
  y = rng.random(n) < 1 / (1 + np.exp(-eta)) if loss == "logistic" else rng.poisson(np.exp(eta / 30.0))
  data = solvers.stage(x, y, loss, 2 if loss == "logistic" else None, dtype=None if dtype == np.float64 else dtype)
  weights = rng.poisson(1.0, (models, n)).astype(np.float32)
  chunks = solvers.chunked_weights(data, weights, with_sample=False, with_start=False)
  assert len(data.chunk_rows) == 2 and chunks.by_row == (loss == "logistic" and models > 6)
  l2 = np.full(models, 1e-3)
  penalty = _penalty_diagonal(data, l2)
  point = np.append(rng.normal(size=d) * 0.3, -0.2)  # (not an optimum)
  theta = np.broadcast_to(point[None, :, None], (models, d + 1, 1)).copy()
  with jax.enable_x64(True):  # (as `solvers.solve` runs its passes)
    shared = _objective_parts(data, chunks, theta, l2, penalty, False, shared=True)
    own = _objective_parts(data, chunks, theta, l2, penalty, False)
  rounding = 1e-12 if dtype == np.float64 else 1e-5
  np.testing.assert_allclose(shared[0], own[0], rtol=rounding)
  scale = np.max(np.abs(own[1]), axis=1, keepdims=True)
  np.testing.assert_allclose(shared[1] / scale, own[1] / scale, rtol=0, atol=rounding)
  assert not np.allclose(own[0], own[0][0], rtol=1e-6)  # (each model its own weights, its own numbers)
