"""Many training steps fused into one compiled call.

A small model takes microseconds a step; a Python loop that dispatches each
step costs far more than the step itself. `make_fused_loop` compiles
`num_logs × steps_per_log` steps into one `lax.scan` over `lax.fori_loop`s
and returns the loss at the end of each `steps_per_log` block.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def make_fused_loop(train_step, batch_fn):
  """Returns `run(state, data, num_logs, steps_per_log) -> (state, steps, losses)`.

  Args:
    train_step: `(state, batch) -> (state, loss)`.
    batch_fn: `(data, step, rng) -> batch`.

  The returned function is jitted with `num_logs` and `steps_per_log` static;
  `steps [num_logs]` are the step counts after each block and `losses
  [num_logs]` the loss of the block's last step (computed before its update).
  """

  @functools.partial(jax.jit, static_argnames=("num_logs", "steps_per_log"))
  def run(state, data, num_logs: int, steps_per_log: int):
    def one_step(_, carry):
      state, _ = carry
      return train_step(state, batch_fn(data, state.step, state.rng))

    def block(state, _):
      state, loss = jax.lax.fori_loop(
          0, steps_per_log, one_step, (state, jnp.zeros((), jnp.float32))
      )
      return state, (state.step, loss)

    state, (steps, losses) = jax.lax.scan(block, state, None, length=num_logs)
    return state, steps, losses

  return run
