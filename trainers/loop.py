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


def make_fused_loop(train_step, epoch_order_fn, num_blocks: int, take_fn=None):
  """Returns `run(state, blocks, num_logs, steps_per_log) -> (state, steps, losses)`.

  Args:
    train_step: `(state, batch) -> (state, loss)`.
    epoch_order_fn: `(epoch, rng) -> order`, what an epoch visits, computed
      once per epoch: the order of `blocks [num_blocks, ...]` (`[num_blocks]`),
      or what `take_fn` reads, such as a row permutation's keys.
    num_blocks: batches per epoch.
    take_fn: `(blocks, order, position) -> batch`; default the block
      `order[position]` (see `batching.make_take_fn`).

  `run` is not yet compiled: wrap it in `jax.jit` or `jax.pmap` with
  `num_logs` and `steps_per_log` static. `steps [num_logs]` are the step
  counts after each block of steps, `losses [num_logs]` the loss of each
  block's last step (computed before its update) — NaN when the parameters
  after the block are not all finite, so that one look at the losses on the
  host tells whether training diverged (a reduction over the parameters once
  a block, no host sync per step).
  """

  take_fn = take_fn or (lambda blocks, order, position: take_block(blocks, order[position]))

  def run(state, blocks, num_logs: int, steps_per_log: int):
    first_step = state.step

    def one_step(state, order):
      epoch, position = jnp.divmod(state.step, num_blocks)
      # A new epoch's order; the first step of the call has it already.
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
      state, order = jax.lax.fori_loop(0, steps_per_log - 1, silent_step, (state, order))
      state, loss, order = one_step(state, order)  # the block's last step: its loss is logged
      finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(state.params)]))
      return (state, order), (state.step, jnp.where(finite, loss, jnp.nan))

    order = epoch_order_fn(state.step // num_blocks, state.rng)  # the epoch this call starts in
    (state, _), (steps, losses) = jax.lax.scan(block, (state, order), None, length=num_logs)
    return state, steps, losses

  return run
