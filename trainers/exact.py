"""One exact fit of K affine models, what `Trainer`, `Sweep` and the estimators share.

>>> fit = fit_affine(x, y, "logistic", weights [K, n], l2 [K], solver="auto", start=(kernel [K, d, k], bias [K, k]))

`fit_trainer` and `fit_sweep`: what `Trainer.fit` and `Sweep.fit` do with an exact solver. The loss by name:
least squares, the classifiers and the GLMs on the staged rows (`solvers.stage`,
`solvers.solve`: K models in one pass a step); Huber's loss at its fixed scale (`huber_fixed`) and the pinball
loss (`quantile`: the linear program, exact) one model at a time on the host. Returns a `solvers.Solution`.
"""

from __future__ import annotations

import time

import jax
import numpy as np
from flax import nnx

from flaxzoo.trainers import solvers
from flaxzoo.trainers.history import DivergedError, History, SweepHistory, _as_numpy
from flaxzoo.trainers.huber_fixed import huber_fixed
from flaxzoo.trainers.loss_names import split_loss
from flaxzoo.trainers.offsets import absorbed, power_of_loss
from flaxzoo.trainers.placement import to_host
from flaxzoo.trainers.quantile import quantile


def fit_affine(x, y, loss: str, weights, l2, l1=None, solver: str = "auto", tol: float = 1e-4, max_iter: int = 100,
               start=None, num_classes: int | None = None, sharding=None) -> solvers.Solution:
  """K models' optimum: `weights [K, n]`, `l2 [K]`, `l1 [K]` or None; `start` `(coef [K, d, k], intercept [K,
  k])`. `solver`: `choose`'s answer (or `auto`); `max_iter` the solver's iterations."""
  name, value = split_loss(loss)
  if name in solvers.ROBUST_LOSSES:
    return _robust(x, y, name, value, np.atleast_2d(weights), l2, l1, tol, max_iter, start)
  data = solvers.stage(x, y, loss, num_classes, sharding)
  return solvers.solve(data, weights, l2, solver, tol, max_iter, start=start, l1=l1)


def _robust(x, y, name: str, value: float, weights, l2, l1, tol: float, max_iter: int, start) -> solvers.Solution:
  """Huber (no L1 part) or the pinball loss (no L2 part), a model at a time, at most `max_iter` iterations each.
  The linear program stops on its own duality gap (it ends on its optimal vertex: exact), not on `tol`."""
  count = len(weights)
  l2 = np.broadcast_to(np.asarray(l2, np.float64), (count,))
  l1 = np.zeros(count) if l1 is None else np.broadcast_to(np.asarray(l1, np.float64), (count,))
  fits = []
  for k in range(count):
    if name == "quantile":
      fits.append(quantile(x, y, weights[k], value, alpha=float(l1[k]), max_iter=int(max_iter)))
    else:
      begin = None if start is None else (start[0][k][:, 0], float(start[1][k][0]))
      fits.append(huber_fixed(x, y, weights[k], value, float(l2[k]), tol, int(max_iter), begin))
  return solvers.Solution(np.stack([f.coef for f in fits])[:, :, None], np.array([[f.intercept] for f in fits]),
                          np.array([f.n_iter for f in fits]), np.array([f.converged for f in fits]),
                          np.array([f.objective for f in fits]), "interior_point" if name == "quantile" else "newton")


def fit_trainer(trainer, train, solver, steps, eval_data, hooks, on_checkpoint, on_progress, final_metrics):
  """`fit` by an exact solver: from the current parameters, at most `steps` iterations (`history.iterations`
  taken, `history.converged`); hooks and `on_checkpoint` run once, at the end."""
  arrays = _as_numpy(train, "train")
  x, y = arrays["x"], arrays["y"]
  weight = arrays.get("weight", np.ones(len(x)))
  l2, l1 = trainer.l2, trainer.l1
  if "offset" in arrays:  # absorbed into the targets and weights, exactly (`offsets`), the penalty kept relative
    total = float(np.sum(weight))
    y, weight = absorbed(y, weight, arrays["offset"], power_of_loss(trainer._loss_spec))
    l2, l1 = (v * total / float(np.sum(weight)) for v in (l2, l1))
  start = time.perf_counter()
  model = trainer.model
  kernel, bias = (np.asarray(v, np.float64) for v in model.affine_map())
  sharding = None
  if trainer.placement.num_shards > 1:
    sharding = jax.sharding.NamedSharding(trainer.placement.mesh, jax.sharding.PartitionSpec("data"))
  num_classes = None if trainer._loss_spec == "mse" else (2 if kernel.shape[1] == 1 else kernel.shape[1])
  fit = fit_affine(x, y, trainer._loss_spec, weight[None], [l2], [l1] if l1 else None, solver, trainer.tol, steps,
                   (kernel[None], bias[None]), num_classes, sharding)
  if not (np.isfinite(fit.objective[0]) and np.all(np.isfinite(fit.coef)) and np.all(np.isfinite(fit.intercept))):
    # Never a run that ends "trained" on a non-finite loss (a Tweedie power of 1e300 overflows every deviance)
    raise DivergedError(trainer.step + int(fit.n_iter[0]), trainer.step, "the exact solver's objective is not finite"
                        " there: check the loss's parameters and the labels' range")
  model.set_affine_map(fit.coef[0], fit.intercept[0])
  history = History(converged=bool(fit.converged[0]), iterations=int(fit.n_iter[0]))
  # A converged solve is the whole fit that was asked for: the step count reaches its end (a resumed run
  # then has nothing left to do); else it advances by the iterations taken.
  taken = steps if history.converged else history.iterations
  trainer.state = trainer.state.replace(params=nnx.state(model, nnx.Param), step=trainer.state.step + taken)
  history.steps, history.losses = [trainer.step], [float(fit.objective[0])]
  history.train_seconds = time.perf_counter() - start
  if on_progress:
    on_progress(trainer.step, history)
  for _, fn in hooks:
    fn(trainer, history)
  if on_checkpoint:
    on_checkpoint(trainer)
  if final_metrics:
    history.metrics["train"] = trainer.evaluate(train)
    for name, split in (eval_data or {}).items():
      history.metrics[name] = trainer.evaluate(split)
  return history


def fit_sweep(sweep, arrays, weights, solver, steps, on_checkpoint, on_progress):
  """Every model by an exact solver, from its current parameters: one `solvers.solve` of K models."""
  start = time.perf_counter()
  kernel, bias = sweep._affine_maps()
  count = sweep.num_models
  num_classes = None if sweep._loss_spec == "mse" else (2 if kernel.shape[2] == 1 else kernel.shape[2])
  lasso = sweep._l1_64 if np.any(sweep._l1_64 > 0) else None
  fit = fit_affine(arrays["x"], arrays["y"], sweep._loss_spec, weights[:count], sweep._l2_64, lasso, solver, sweep.tol,
                   steps, (kernel[:count], bias[:count]), num_classes)
  extra = sweep._padded - count
  pad = lambda v: np.concatenate([v, np.repeat(v[-1:], extra, axis=0)]) if extra else v
  model = nnx.merge(sweep.graphdef, to_host(sweep.state.params), sweep._rest)
  model.set_affine_map(pad(fit.coef), pad(fit.intercept))
  # As `Trainer`'s: converged, the step count reaches the end asked for; else it advances by the iterations.
  taken = steps if fit.converged.all() else int(fit.n_iter.max())
  sweep.state = sweep.state.replace(params=to_host(nnx.state(model, nnx.Param)),
                                  step=np.asarray(sweep.step + taken, np.int32))
  history = SweepHistory(path=solver, steps=[sweep.step], losses=[fit.objective.tolist()])
  history.converged = fit.converged
  history.train_seconds = time.perf_counter() - start
  if on_progress:
    on_progress(sweep.step, history)
  if on_checkpoint:
    on_checkpoint(sweep)
  return history
