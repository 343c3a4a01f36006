"""Newton's iterations as one program on the device: over one chunk (`_newton_loop`) or a few (`_newton_rows`),
with the host loop's steps, line search and stopping rule (`_device_newton`)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from flaxzoo.trainers.solvers._line_search import Search, search_step
from flaxzoo.trainers.solvers._newton_step import _newton_direction, _project_classes
from flaxzoo.trainers.solvers._optimality import largest_violation, running
from flaxzoo.trainers.solvers._passes import _hessian_pass, _loss_hessian, _newton_pass, _value_grad, _value_grad_pass
from flaxzoo.trainers.solvers._sizes import LOOP_ROWS, START_FRACTION, _low_precision


@functools.partial(jax.jit, static_argnames=("by_row", "family", "spread"))
def _newton_loop(theta, x, labels, weight, shift, scale, penalty, tol, max_iter, by_row: bool = False,
                 family=None, spread: bool = False):
  """`_newton_iterations` over one chunk of rows as one program: every iteration and its line search run on
  the device (a fit of a few hundred rows: ~12 dispatches and host round trips -> 1). The same steps,
  acceptance and stopping rule as the host loop; `penalty [K, d + 1, k]` is `_penalty_diagonal`'s.

  Many models on the row sample's rows (`spread`: a start) take their Hessians from its first `LOOP_ROWS /
  START_FRACTION` rows (spread over the data too, reweighted to the models' mass): a few more steps, each
  much cheaper (50 fold models on 8192 rows: 49 -> 26 ms); a model with no weight there, from every row.
  Rows as the data gives them (perhaps sorted) always give their Hessians from every row."""
  count = theta.shape[0]
  prefix = LOOP_ROWS // START_FRACTION if spread and _low_precision(count) and x.shape[0] >= LOOP_ROWS else 0

  def hessian_of(p):
    w = weight.T if by_row else weight
    if not prefix:
      return _loss_hessian(x, p, w, shift, scale)
    part = w[:, :prefix]
    mass = jnp.sum(part, axis=1, keepdims=True)
    return jax.lax.cond(
        jnp.all(mass > 0),
        lambda: _loss_hessian(x[:prefix], p[:, :prefix], part * (jnp.sum(w, axis=1, keepdims=True) / mass), shift,
                              scale),
        lambda: _loss_hessian(x, p, w, shift, scale))

  def parts(t):
    loss, grad, p = _value_grad(x, t, labels, weight, shift, scale, by_row, family)
    hessian = hessian_of(p)
    loss = loss.astype(jnp.float64) + 0.5 * jnp.sum(penalty * t**2, axis=(1, 2))
    grad = grad.astype(jnp.float64).reshape(count, -1) + (penalty * t).reshape(count, -1)
    return loss, grad, hessian

  return _device_newton(theta, parts, None, penalty, tol, max_iter, x.dtype, rows=x.shape[0])


@functools.partial(jax.jit, static_argnames=("by_row", "family", "sample_size"))
def _newton_rows(theta, xs, labels, weights, shift, scale, penalty, tol, max_iter, sample, given, use_given,
                 by_row: bool = False, family=None, sample_size: int = 0):
  """`_newton_iterations` over a few chunks of rows (`xs`, `labels`, `weights`: tuples, a chunk each) as one
  program: every pass, Hessian, Newton direction and line search on the device, no host round trip between
  them (one model on 80k x 32, a whole fit: 25.5 -> 21.2 ms, paired runs). `sample`: `(x, labels, shift,
  scale, weights [K, S])`, the row sample (`Staged.newton_sample`) whose first `sample_size` rows give the
  Hessian at each iterate (None: every row's, from the pass itself); `given [K, p, p]` takes the first step
  where `use_given`."""
  count, width, k = theta.shape
  dtype = xs[0].dtype
  separate = sample is not None

  def parts(t):
    totals = (jnp.zeros(count, dtype), jnp.zeros((count, width, k), dtype))
    if not separate:
      totals = totals + (jnp.zeros((count, width * k, width * k), dtype),)
    for x, y, w in zip(xs, labels, weights):
      pass_ = _value_grad_pass if separate else _newton_pass
      totals = pass_(totals, t, x, y, w, shift, scale, by_row=by_row, family=family)
    loss = totals[0].astype(jnp.float64) + 0.5 * jnp.sum(penalty * t**2, axis=(1, 2))
    grad = totals[1].astype(jnp.float64).reshape(count, -1) + (penalty * t).reshape(count, -1)
    return loss, grad, (None if separate else totals[2])

  def sample_hessian(t):
    x, y, sample_shift, sample_scale, w = sample
    total = jnp.zeros((count, width * k, width * k), x.dtype)
    return _hessian_pass(total, t, x[:sample_size], y[:sample_size], w, sample_shift, sample_scale, family=family)

  return _device_newton(theta, parts, sample_hessian if separate else None, penalty, tol, max_iter, dtype,
                        (given, use_given), rows=max(max(x.shape[0] for x in xs), sample_size or 0))


def _device_newton(theta, parts, sample_hessian, penalty, tol, max_iter, dtype, given=None, rows=None):
  """The Newton iterations of `_newton_iterations` inside a program: the same steps, acceptance and stopping
  rule. `parts(t)` → `(loss [K], grad [K, p], Hessian [K, p, p] or None)` with the penalty; where it gives
  no Hessian, `sample_hessian(t)` does, at each iterate a step leaves from (`given`: `(Hessian, flag)`, the
  first step's where the flag is set). Returns `(theta, loss, n_iter, converged, hessian)`."""
  count, _, k = theta.shape
  flat_penalty = penalty.reshape(count, -1)
  measure = lambda grad, _: largest_violation(grad, xp=jnp)

  def active(state):
    _, _, _, _, n_iter, converged, stuck = state
    return running(converged, stuck, n_iter, max_iter)

  def iteration(state):
    theta, loss, grad, hessian, n_iter, converged, stuck = state
    if sample_hessian is not None:  # at the iterate, but not at the zero step of the first evaluation
      first = given[1] & jnp.all(n_iter <= 0)
      hessian = jax.lax.cond(jnp.all(n_iter < 0), lambda: hessian,
                             lambda: jax.lax.cond(first, lambda: given[0], lambda: sample_hessian(theta)))
    step, finite = _newton_direction(grad, hessian, flat_penalty, rows=rows)
    step = _project_classes(jnp.where(finite[:, None], step, grad), k, jnp)
    slope = jnp.sum(grad * step, axis=1)
    search = lambda s: search_step(s, step, slope, parts, measure, dtype, jnp)[0]
    found = jax.lax.while_loop(lambda s: jnp.any(s.pending), search,
                               Search(theta, loss, grad, hessian, n_iter, stuck, jnp.ones(count), active(state)))
    theta, loss, grad, hessian, n_iter, stuck = found[:6]
    return theta, loss, grad, hessian, n_iter, converged | (measure(grad, theta) <= tol), stuck

  # The first evaluation is an iteration's zero step from a point of infinite loss (accepted unless the loss
  # is NaN, and not counted): the pass appears once in the program (twice took twice as long to compile).
  size = flat_penalty.shape[1]
  hessian_dtype = dtype if given is None else given[0].dtype  # (a row sample's Hessian: its own dtype)
  start = (theta, jnp.full(count, jnp.inf), jnp.zeros((count, size)), jnp.zeros((count, size, size), hessian_dtype),
           jnp.full(count, -1, jnp.int64), jnp.zeros(count, bool), jnp.zeros(count, bool))
  theta, loss, _, hessian, n_iter, converged, _ = jax.lax.while_loop(lambda s: jnp.any(active(s)), iteration, start)
  return theta, loss, jnp.maximum(n_iter, 0), converged, hessian
