"""Sweeps: many models in one compiled program, each ending where `Trainer.fit` takes it alone; and the
sufficient-statistics path of full-batch least squares, checked against the per-example path and lstsq."""

import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest
from flax import nnx
from sweep_cases import CASES, compare, relative

from flaxzoo.datasets.sources import load_data
from flaxzoo.trainers import Sweep, Trainer
from flaxzoo.zoo import LinearClassifier, LinearRegression, create_model

WORKER = pathlib.Path(__file__).with_name("sweep_worker.py")


def test_statistics_path_equals_the_per_example_path_after_15000_steps(data_dir):
  for features in ("tissue",):  # (gm: 1.9e-6 when measured)
    data = load_data("brain_age", features=features, data_dir=data_dir)
    params = {}
    for mode in ("on", "off"):
      trainer = Trainer(create_model("linear_regression", seed=13, init="reference", in_features=data.num_features),
                        optax.sgd(0.05), "mse", parallel="none", statistics=mode)
      trainer.fit(data.splits["train"], steps=15000, final_metrics=False)
      params[mode] = trainer.params
    assert 0 < relative(params["on"], params["off"]) <= 1e-5  # two sums of the same quantities, rounded apart


def test_statistics_path_reaches_the_least_squares_optimum():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((20000, 6)).astype(np.float32) * [1, 2, 0.5, 1, 3, 1] + [5, -2, 0, 1, 0, 10]
  x = x.astype(np.float32)
  y = (x @ rng.standard_normal(6) + 3 + 0.1 * rng.standard_normal(20000)).astype(np.float32)
  design = np.column_stack([x.astype(np.float64), np.ones(len(x))])
  optimum = np.linalg.lstsq(design, y.astype(np.float64), rcond=None)[0]
  # Far from the optimum after a few steps; then 400000 O(d²) steps (the data is read once).
  trainer = Trainer(LinearRegression(6, rngs=nnx.Rngs(0)), optax.adam(optax.exponential_decay(1e-2, 20000, 0.3)),
                    "mse", parallel="none")
  assert trainer.uses_statistics(len(x))
  with jax.numpy_dtype_promotion("standard"):  # optax's Adam mixes its int32 count with Python floats
    trainer.fit((x, y), steps=10, final_metrics=False)
  early = np.append(np.ravel(trainer.params["linear"]["kernel"]), trainer.params["linear"]["bias"])
  assert np.max(np.abs(early - optimum)) > 0.1
  with jax.numpy_dtype_promotion("standard"):
    trainer.fit((x, y), steps=400_000, log_every=10_000, final_metrics=False)
  fitted = np.append(np.ravel(trainer.params["linear"]["kernel"]), trainer.params["linear"]["bias"])
  np.testing.assert_allclose(fitted, optimum, rtol=1e-6, atol=1e-6 * np.max(np.abs(optimum)))


def test_statistics_apply_only_where_exact():
  x, y = np.ones((10, 2), np.float32), np.ones(10, np.float32)
  regression = Trainer(LinearRegression(2, rngs=nnx.Rngs(0)), loss="mse", parallel="none")
  assert regression.uses_statistics(10) and regression.uses_statistics(10, batch_size=10)
  assert not regression.uses_statistics(10, batch_size=5)  # mini-batches: per example
  assert not Trainer(LinearRegression(2, rngs=nnx.Rngs(0)), parallel="none", statistics="off").uses_statistics(10)
  classifier = Trainer(LinearClassifier(2, 2, rngs=nnx.Rngs(0)), optax.sgd(0.1), loss="logistic", parallel="none",
                       statistics="on")
  with pytest.raises(ValueError, match="statistics='on' needs the MSE loss"):
    classifier.fit((x, y.astype(np.int32)), steps=1)
  with pytest.raises(ValueError, match="statistics must be one of"):
    Trainer(LinearRegression(2, rngs=nnx.Rngs(0)), statistics="yes")


def check_against_lone_fits(name, result):
  assert result["path"] == {"statistics": "statistics", "full_batch_logistic": "full batch"}.get(name, "mini-batch")
  assert not any(result["diverged"])
  # Against the same problem summed the same way (all rows, the fold's weights): to float rounding.
  assert max(result["vs_weights"], default=0) <= 1e-6, result
  # Against the fold's rows alone (other sums of the same numbers): 1e-6 relative; gathered mini-batches
  # are the lone run's own batches, bitwise.
  assert max(result["vs_rows"]) <= (1e-6 if name != "statistics" else 1e-5), result
  if name == "minibatch_folds_seeds":
    assert max(result["vs_rows"]) == 0.0


@pytest.mark.parametrize("name", sorted(CASES))
def test_models_of_a_sweep_equal_their_lone_fits(name, data_dir):
  # One model a fold (every fold and every learning rate once): each lone fit compiles on its own.
  result = compare(name, data_dir, every=False)
  assert len(result["vs_rows"]) == (3 if name != "minibatch_shared" else 1)
  check_against_lone_fits(name, result)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_model_of_a_sweep_equals_its_lone_fit(name, data_dir):
  result = compare(name, data_dir)
  assert len(result["vs_rows"]) == (9 if name != "minibatch_shared" else 3)
  check_against_lone_fits(name, result)


@pytest.mark.slow
def test_a_sweep_on_8_devices_equals_the_lone_fits_there(data_dir):
  result = subprocess.run([sys.executable, str(WORKER), str(data_dir), "8"], capture_output=True, text=True,
                          timeout=900, cwd=WORKER.parent)
  assert result.returncode == 0, result.stderr[-3000:]
  for name, out in json.loads(result.stdout.strip().splitlines()[-1]).items():
    assert out["devices"] == 8
    assert max(out["vs_weights"], default=0) <= 1e-6, (name, out)
    assert max(out["vs_rows"]) <= (1e-6 if name != "statistics" else 1e-5), (name, out)


def test_a_diverged_model_is_marked_and_the_others_go_on():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((200, 3)).astype(np.float32) * 10
  y = (x @ [1.0, -2.0, 0.5]).astype(np.float32)
  for statistics in ("on", "off"):
    models = [LinearRegression(3, rngs=nnx.Rngs(0)) for _ in range(3)]
    sweep = Sweep(models, optax.sgd, {"learning_rate": [1e-3, 10.0, 3e-3]}, "mse", parallel="none",
                  statistics=statistics)
    history = sweep.fit((x, y), steps=500, log_every=50)
    assert sweep.diverged.tolist() == [False, True, False]
    assert 0 < sweep.diverged_step[1] <= 100
    assert np.all(np.isfinite(np.asarray(history.losses)[:, [0, 2]]))
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(sweep.params(1)))
    fine = sweep.evaluate((x, y))
    assert fine[0]["mse"] < 1e-3 and fine[2]["mse"] < 1e-3


def test_sweep_checks_its_arguments():
  models = [LinearRegression(2, rngs=nnx.Rngs(0)), LinearRegression(3, rngs=nnx.Rngs(0))]
  with pytest.raises(ValueError, match="one architecture"):
    Sweep(models)
  with pytest.raises(ValueError, match="one value per model"):
    Sweep(models[:1] * 2, hyperparams={"learning_rate": [0.1, 0.2, 0.3]})
  sweep = Sweep(models[:1] * 2, parallel="none")
  with pytest.raises(ValueError, match="at least one example"):
    sweep.fit((np.ones((4, 2), np.float32), np.ones(4, np.float32)), steps=1, weights=np.zeros((2, 4)))


def test_stacked_models_are_the_models_one_by_one_and_a_sweep_takes_them():
  """`create_models` initialises K models in one program: the same numbers as `create_model` one seed at a
  time, and a `Sweep` built from them is the `Sweep` of the list (its set-up O(1) in Python per model)."""
  from flaxzoo.trainers import Sweep
  from flaxzoo.zoo import create_model, create_models

  seeds = [3, 0, 11, 7]
  stacked = create_models("softmax_regression", seeds, in_features=4, num_classes=3)
  alone = [create_model("softmax_regression", seed=s, in_features=4, num_classes=3) for s in seeds]
  for k, model in enumerate(alone):
    for name in ("kernel", "bias"):
      np.testing.assert_array_equal(np.asarray(getattr(stacked.model(k).linear, name)[...]),
                                    np.asarray(getattr(model.linear, name)[...]))
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(200, 4)).astype(np.float32), rng.integers(0, 3, 200)
  fits = []
  for models in (stacked, alone):
    sweep = Sweep(models, lambda learning_rate: optax.sgd(learning_rate), {"learning_rate": [0.1] * 4}, "softmax",
                  seeds=seeds, parallel="none")
    sweep.fit((x, y), steps=20)
    fits.append(np.stack([np.asarray(sweep.params(k)["linear"]["kernel"][...]) for k in range(4)]))
  np.testing.assert_array_equal(fits[0], fits[1])
  reference = create_models("linear_regression", [0, 1], init="reference", in_features=2)  # per model, as before
  np.testing.assert_array_equal(np.asarray(reference.model(1).linear.kernel[...]),
                                np.asarray(create_model("linear_regression", seed=1, init="reference",
                                                        in_features=2).linear.kernel[...]))
