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


def make_fused_loop(train_step, block_index_fn):
  """Returns `run(state, blocks, num_logs, steps_per_log) -> (state, steps, losses)`.

  Args:
    train_step: `(state, batch) -> (state, loss)`.
    block_index_fn: `(step, rng) -> block index` into `blocks [num_blocks, ...]`.

  `run` is not yet compiled: wrap it in `jax.jit` or `jax.pmap` with
  `num_logs` and `steps_per_log` static. `steps [num_logs]` are the step
  counts after each block of steps, `losses [num_logs]` the loss of each
  block's last step (computed before its update).
  """

  def run(state, blocks, num_logs: int, steps_per_log: int):
    def one_step(_, carry):
      state, _ = carry
      batch = take_block(blocks, block_index_fn(state.step, state.rng))
      return train_step(state, batch)

    def block(state, _):
      state, loss = jax.lax.fori_loop(
          0, steps_per_log, one_step, (state, jnp.zeros((), jnp.float32))
      )
      return state, (state.step, loss)

    state, (steps, losses) = jax.lax.scan(block, state, None, length=num_logs)
    return state, steps, losses

  return run
