"""Each model of a sweep with its own optimizer state and hyperparameters (`inject_hyperparams` under `vmap`,
one compiled initialiser for every sweep of an optimizer), and its own divergence (`rolled_back`)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax


@jax.jit
def _keys(seeds):
  """`[K, 2]` PRNG keys of `seeds [K]`: one program, whatever K's values."""
  return jax.vmap(jax.random.PRNGKey)(seeds)


def _transform(optimizer, first: tuple[tuple[str, float], ...]) -> optax.GradientTransformation:
  """`optimizer` with its hyperparameters in its state (the first model's values: `first`), so that each model
  of a sweep has its own; extra args (value, value_fn) reach line-search optimizers, the rest ignore them."""
  return optax.with_extra_args_support(optax.inject_hyperparams(optimizer)(**dict(first)))


@functools.lru_cache(maxsize=32)
def _cached_initialiser(optimizer, first):
  tx = _transform(optimizer, first)

  def init(params, hyper):
    opt_state = tx.init(params)
    for name, value in hyper.items():  # inject_hyperparams keeps them in its state
      opt_state.hyperparams[name] = value
    return opt_state

  return jax.jit(jax.vmap(init))


def _initialiser(optimizer, first):
  """`jit(vmap(init))` of the models' optimizer states, `(params, hyper) -> opt_state`: one program for every
  sweep of this optimizer and first model's hyperparameters (each new Sweep compiled its own: 200 bootstrap
  refits, 1 compilation a Sweep); an unhashable optimizer gets one of its own."""
  try:
    return _cached_initialiser(optimizer, first)
  except TypeError:  # (an unhashable optimizer)
    return _cached_initialiser.__wrapped__(optimizer, first)


def _per_model(value, count: int, name: str) -> np.ndarray:
  values = np.broadcast_to(np.asarray(value), (count,)) if np.ndim(value) == 0 else np.asarray(value)
  if values.shape != (count,):
    raise ValueError(f"{name}: one value per model ({count}), got shape {values.shape}")
  return values


def rolled_back(sweep, state, before, logged_steps, logged_losses):
  """Models whose logged loss is NaN: diverged at that step; they go back to their last finite state."""
  bad = ~np.isfinite(logged_losses)
  newly = np.any(bad, axis=0) & (sweep.diverged_step < 0)
  for k in np.flatnonzero(newly):
    sweep.diverged_step[k] = int(logged_steps[int(np.argmax(bad[:, k]))])
  if not np.any(sweep.diverged):
    return state
  keep = np.zeros(sweep._padded, bool)
  keep[:sweep.num_models] = sweep.diverged
  mask = sweep._put_models(keep)

  def back(new, old):
    return jnp.where(mask.reshape((-1,) + (1,) * (new.ndim - 1)), old, new)

  return state.replace(params=jax.tree.map(back, state.params, before.params),
                       opt_state=jax.tree.map(back, state.opt_state, before.opt_state))
