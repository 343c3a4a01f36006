"""A random permutation of `range(n)`, computed index by index: no sort, no table.

`shuffled_index(i, keys, n)` is a bijection of `[0, n)` chosen by `keys`: a
balanced Feistel network on the smallest even number of bits that holds `n`
(a bijection of `[0, 2^bits)` whatever its round function), restricted to
`[0, n)` by cycle walking (an output `>= n` is mapped again until it falls
below `n`; it does, since its cycle holds the input). This is the construction
of Grain's global shuffle (`index_shuffle`).

Why: row shuffling needs a fresh order of all rows every epoch. Drawing it as
`jax.random.permutation` sorts all `n` keys (on the CPU ~550 ms for 2,000,000
rows, more than the epoch's arithmetic); here the batch at position `p` asks
for the rows `shuffled_index(p * B + arange(B))`, a few integer operations a row.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

ROUNDS = 4  # Luby–Rackoff: 4 rounds of a pseudo-random function give a pseudo-random permutation


def draw_keys(rng: jax.Array) -> jax.Array:
  """The round keys `uint32 [ROUNDS]` of one permutation."""
  return jax.random.bits(rng, (ROUNDS,), jnp.uint32)


def _mix(value: jax.Array) -> jax.Array:
  # MurmurHash3's 32-bit finaliser: every input bit flips each output bit with probability ~1/2.
  value = (value ^ (value >> 16)) * jnp.uint32(0x85EBCA6B)
  value = (value ^ (value >> 13)) * jnp.uint32(0xC2B2AE35)
  return value ^ (value >> 16)


def shuffled_index(index: jax.Array, keys: jax.Array, n: int) -> jax.Array:
  """Where `index` (int, any shape, values in `[0, n)`) goes under the permutation `keys`; int32.

  `n` is static, `1 <= n <= 2**31`.
  """
  if not 1 <= n <= 2**31:
    raise ValueError(f"n must be in [1, 2**31], got {n}")
  half_bits = max(1, ((n - 1).bit_length() + 1) // 2)
  mask = jnp.uint32((1 << half_bits) - 1)

  def permute(value):
    left, right = value >> half_bits, value & mask
    for k in range(ROUNDS):
      left, right = right, left ^ (_mix(right ^ keys[k]) & mask)
    return (left << half_bits) | right

  value = permute(index.astype(jnp.uint32))
  value = jax.lax.while_loop(lambda v: jnp.any(v >= n), lambda v: jnp.where(v >= n, permute(v), v), value)
  return value.astype(jnp.int32)
