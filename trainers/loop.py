"""Many training steps fused into one compiled call.

A small model takes microseconds a step; a Python loop that dispatches each
step costs far more than the step itself (and a long un-blocked Python loop
of multi-device steps can deadlock XLA's CPU collectives). `make_fused_loop`
puts `num_logs × steps_per_log` steps into one `lax.scan` over
`lax.fori_loop`s and returns the loss at the end of each block of steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from flaxzoo.trainers.batching import take_block


def make_fused_loop(train_step, epoch_order_fn, num_blocks: int, take_fn=None, finite_fn=None, unroll: int = 1,
                    fixed_order: bool = False):
  """Returns `run(state, blocks, num_logs, steps_per_log) -> (state, steps, losses)`.

  Args:
    train_step: `(state, batch) -> (state, loss)`.
    epoch_order_fn: `(epoch, rng) -> order`, what an epoch visits, computed
      once per epoch: the order of `blocks [num_blocks, ...]` (`[num_blocks]`),
      or what `take_fn` reads, such as a row permutation's keys.
    num_blocks: batches per epoch.
    take_fn: `(blocks, order, position) -> batch`; default the block
      `order[position]` (see `batching.make_take_fn`).
    finite_fn: `(state, loss) -> logged loss`; default the loss, NaN unless
      every parameter is finite (`sweep` checks each model on its own).
    unroll: steps per iteration of the compiled loop: for steps of a few
      microseconds (the statistics path) the loop's own cost is a fair share.
    fixed_order: every epoch visits the same thing (the statistics): no
      per-step check for a new epoch (a conditional a step keeps XLA from
      fusing consecutive steps).

  `run` is not yet compiled: wrap it in `jax.jit` or `jax.pmap` with
  `num_logs` and `steps_per_log` static. `steps [num_logs]` are the step
  counts after each block of steps, `losses [num_logs]` the loss of each
  block's last step (computed before its update) — NaN when the parameters
  after the block are not all finite, so that one look at the losses on the
  host tells whether training diverged (a reduction over the parameters once
  a block, no host sync per step).
  """

  take_fn = take_fn or (lambda blocks, order, position: take_block(blocks, order[position]))
  finite_fn = finite_fn or _finite_loss

  def run(state, blocks, num_logs: int, steps_per_log: int):
    first_step = state.step

    def one_step(state, order):
      epoch, position = jnp.divmod(state.step, num_blocks)
      # A new epoch's order; the first step of the call has it already.
      if not fixed_order:
        new_epoch = (position == 0) & (state.step != first_step)
        order = jax.lax.cond(new_epoch, lambda: epoch_order_fn(epoch, state.rng), lambda: order)
      state, loss = train_step(state, take_fn(blocks, order, position))
      return state, loss, order

    def silent_step(_, carry):  # the loss is not kept: XLA drops its computation (~5% of a small step)
      state, order = carry
      state, _, order = one_step(state, order)
      return state, order

    def block(carry, _):
      state, order = carry
      state, order = jax.lax.fori_loop(0, steps_per_log - 1, silent_step, (state, order),
                                       unroll=max(1, min(unroll, steps_per_log - 1)))
      state, loss, order = one_step(state, order)  # the block's last step: its loss is logged
      return (state, order), (state.step, finite_fn(state, loss))

    order = epoch_order_fn(state.step // num_blocks, state.rng)  # the epoch this call starts in
    (state, _), (steps, losses) = jax.lax.scan(block, (state, order), None, length=num_logs)
    return state, steps, losses

  return run


def _finite_loss(state, loss):
  finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(state.params)]))
  return jnp.where(finite, loss, jnp.nan)


def stop_points(first: int, end: int, periods) -> list[int]:
  """The steps in `(first, end]` where a fit stops between compiled calls: every multiple of each period
  (None: none) and `end`, sorted."""
  stops = {end}
  for every in periods:
    if every:
      stops.update(range((first // every + 1) * every, end, every))
  return sorted(stops)


def next_call(remaining: int, log_every: int) -> tuple[int, int]:
  """`(num_logs, steps_per_log)` of the next compiled call towards a stop `remaining` steps away.

  About 1000 steps a call: a fit's `should_stop` is polled that often, and every call (uninterrupted or
  resumed) runs one of the same few executables.
  """
  num_logs = min(remaining // log_every, max(1, 1000 // log_every))
  return (num_logs, log_every) if num_logs else (1, remaining)


def drive(state, call, first: int, end: int, log_every: int, periods, absorb, at_stop, history,
          should_stop=None, on_progress=None):
  """The optax driver loop of `Trainer.fit` and `Sweep.fit`: compiled calls of about 1000 steps (`next_call`)
  towards each stop point (`stop_points` of `periods`, and `end`). `call(state, num_logs, steps_per_log) ->
  (state, steps, losses)`; after each call `absorb(before, state, steps, losses, current) -> state` records
  the logged losses and meets a divergence; then `on_progress(current, history)`, and a True `should_stop()`
  ends the fit at the step reached (`history.stopped`). At each stop point `at_stop(state, current)`, unless
  stopped. Returns the state."""
  current = first
  for target in stop_points(first, end, periods):
    while current < target and not history.stopped:
      num_logs, steps_per_log = next_call(target - current, log_every)
      before = state
      state, logged_steps, logged_losses = call(state, num_logs, steps_per_log)
      state = absorb(before, state, logged_steps, logged_losses, current)
      current += num_logs * steps_per_log
      if on_progress:
        on_progress(current, history)
      history.stopped = bool(should_stop and should_stop() and current < end)
    if history.stopped:
      break
    at_stop(state, current)
  return state

