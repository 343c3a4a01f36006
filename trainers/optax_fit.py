"""An affine model fitted by optax steps, as the estimators' `solver="optax"` does: `fit_affine_steps`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from flaxzoo.trainers.trainer import Trainer
from flaxzoo.zoo.models import create_model


def fit_affine_steps(x, targets, weight, loss: str, model, num_outputs: int, optimizer, l2: float, steps: int,
                     tol: float, check_every: int, batch_size: int | None, seed: int, start=None):
  """`(coef [k, d], intercept [k], n_iter)` (float64): `model` `(name, args)` of the zoo (`num_outputs` outputs)
  fitted to `x [n, d]`, `targets`, `weight [n]` by `optimizer`'s steps on centred features (with `Trainer`), at
  most `steps`, until
  consecutive logged losses (every `check_every` steps) differ by at most `tol` (relative above 1). `start`:
  `(coef [k, d], intercept [k])`, default zero. DivergedError where the loss stops being finite."""
  x = np.asarray(x, np.float64)
  shift = np.average(x, axis=0, weights=weight)  # weighted: a weight of 2 is a row twice
  centred = (x - shift).astype(np.float32)
  d = x.shape[1]
  offset = np.zeros(num_outputs)
  if loss == "mse":  # the targets centred too (the intercept absorbs it)
    offset = np.average(targets.reshape(len(targets), -1), axis=0, weights=weight)
    targets = targets - offset
  name, args = model
  model = create_model(name, seed=seed, **args)
  # From zero, as scikit-learn's solvers start: with more features than rows (many optima) the
  # iterates stay in the data's row space and end at the smallest one, whatever the weighting.
  coef, intercept = start if start is not None else (np.zeros((num_outputs, d)), np.zeros(num_outputs))
  model.linear.kernel.set_value(jnp.asarray(coef.T, jnp.float32))  # in the centred features
  model.linear.bias.set_value(jnp.asarray(intercept - offset + coef @ shift, jnp.float32))
  # Per example: the stopping rule compares consecutive losses to `tol`.
  trainer = Trainer(model, optimizer, loss, seed=seed, parallel="none", l2=float(l2), statistics="off", solver="optax")
  data = {"x": centred, "y": np.asarray(targets, np.float32 if loss == "mse" else np.int32),
          "weight": np.asarray(weight / weight.max(), np.float32)}
  losses = []

  def record(t, history):
    losses.append(history.losses[-1])

  def converged() -> bool:
    if len(losses) < 2:
      return False
    return abs(losses[-2] - losses[-1]) <= tol * max(1.0, abs(losses[-1]))

  every = min(check_every, steps)
  trainer.fit(data, steps=steps, batch_size=batch_size, log_every=every, hooks=[(every, record)],
              should_stop=converged, final_metrics=False)
  params = jax.tree.map(np.asarray, trainer.params)
  kernel = np.asarray(params["linear"]["kernel"][...], np.float64).T  # [k, d]
  bias = np.asarray(params["linear"]["bias"][...], np.float64) + offset
  return kernel, bias - kernel @ shift, int(trainer.step)

