"""The sweeps that tests compare with lone `Trainer.fit` runs (in-process and in `sweep_worker.py`)."""

import jax
import numpy as np
import optax

from flaxzoo.datasets.sources import load_data
from flaxzoo.trainers import Sweep, Trainer
from flaxzoo.zoo import create_model

LEARNING_RATES = [0.02, 0.1, 0.5]
FOLDS = 3

# name: (label, model, loss, steps, batch_size, per-model seeds, l2, learning-rate factor)
CASES = {
    # full-batch least squares: the sufficient statistics
    "statistics": ("age", "linear_regression", "mse", 15000, None, False, 0.0, 1.0),
    # full batch, per-example: every model reads the one copy of the rows with its fold's weights
    "full_batch_logistic": ("age_group", "logistic_regression", "logistic", 1000, None, False, 1e-3, 4.0),
    # mini-batches: each model's own rows and seed, gathered from the one copy
    "minibatch_folds_seeds": ("age_group", "logistic_regression", "logistic", 600, 64, True, 0.0, 1.0),
    # mini-batches: one data order for all (hyperparameters only)
    "minibatch_shared": ("age", "linear_regression", "mse", 600, 50, False, 0.0, 1.0),
}


def fold_weights(n: int) -> np.ndarray:
  fold = np.random.default_rng(7).permutation(n) % FOLDS
  return np.stack([(fold != f).astype(np.float32) for f in range(FOLDS)])


def flat(params) -> np.ndarray:
  return np.concatenate([np.ravel(np.asarray(leaf)) for leaf in jax.tree.leaves(params)])


def relative(a, b) -> float:
  a, b = flat(a), flat(b)
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def compare(name: str, data_dir, parallel: str = "none", every: bool = True) -> dict:
  """`{"vs_rows": [...], "vs_weights": [...]}`: each model against `Trainer.fit` on its fold's rows and on
  all rows weighted by its fold (the same problem, summed the same way). The sweep runs with `parallel`
  (several devices: each trains its share of the models); the lone fits on one device, as each model does.
  `every=False` checks one model a fold (fold f with the f-th learning rate: every fold and every rate once),
  each lone fit being a compilation of its own."""
  label, model_name, loss, steps, batch_size, own_seeds, l2, factor = CASES[name]
  data = load_data("brain_age", features="tissue", label=label, standardize=label == "age_group", data_dir=data_dir)
  x, y = data.splits["train"]
  args = {"in_features": 3} if label == "age" else {"in_features": 3, "num_classes": 2}
  init = "reference" if label == "age" else "default"
  folds = fold_weights(len(x)) if name != "minibatch_shared" else np.ones((1, len(x)), np.float32)
  settings = [(f, lr * factor, (13 + f if own_seeds else 13)) for f in range(len(folds)) for lr in LEARNING_RATES]
  models = [create_model(model_name, seed=1, init=init, **args) for _ in settings]
  sweep = Sweep(models, optax.sgd, {"learning_rate": [lr for _, lr, _ in settings]}, loss, l2=l2,
                seeds=[s for _, _, s in settings], parallel=parallel)
  history = sweep.fit((x, y), steps=steps, weights=np.stack([folds[f] for f, _, _ in settings]),
                      batch_size=batch_size, log_every=100)
  out = {"path": history.path, "devices": len(sweep.placement.devices), "vs_rows": [], "vs_weights": [], "diverged": sweep.diverged.tolist()}
  for k, (f, lr, seed) in enumerate(settings):
    if not every and LEARNING_RATES.index(lr / factor) != f % len(LEARNING_RATES):
      continue
    rows = folds[f] > 0
    for key, train in (("vs_rows", (x[rows], y[rows])), ("vs_weights", {"x": x, "y": y, "weight": folds[f]})):
      if key == "vs_weights" and batch_size is not None:
        continue  # a mini-batch of weighted rows is another batch than one of the fold's rows
      trainer = Trainer(create_model(model_name, seed=1, init=init, **args), optax.sgd(lr), loss, l2=l2, seed=seed,
                        parallel="none")
      trainer.fit(train, steps=steps, batch_size=batch_size, log_every=100, final_metrics=False)
      out[key].append(relative(sweep.params(k), trainer.params))
  return out
