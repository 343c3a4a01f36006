"""The row permutation of `shuffle="rows"`: a bijection of range(n) for any n, new for new keys."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxzoo.trainers.index_shuffle import draw_keys, shuffled_index


@pytest.mark.parametrize("n", [1, 2, 3, 23, 64, 65, 1000, 2**16 + 1])
def test_every_n_gets_a_permutation(n):
  out = np.asarray(shuffled_index(jnp.arange(n), draw_keys(jax.random.PRNGKey(n)), n))
  assert out.dtype == np.int32
  np.testing.assert_array_equal(np.sort(out), np.arange(n))


def test_keys_choose_the_permutation_and_it_is_not_near_identity():
  n = 1000
  first, second, again = (np.asarray(shuffled_index(jnp.arange(n), draw_keys(jax.random.PRNGKey(k)), n))
                          for k in (0, 1, 0))
  np.testing.assert_array_equal(first, again)
  assert (first != second).mean() > 0.99
  assert (first == np.arange(n)).sum() < 10  # a random permutation has 1 fixed point on average
  assert abs(np.corrcoef(first, np.arange(n))[0, 1]) < 0.1


def test_each_position_is_equally_likely():
  # Over 4000 permutations of 10 items, where item 3 lands: ~400 times each place.
  n, draws = 10, 4000
  keys = jax.vmap(draw_keys)(jax.random.split(jax.random.PRNGKey(7), draws))
  places = np.asarray(jax.vmap(lambda k: shuffled_index(jnp.array(3), k, n))(keys))
  counts = np.bincount(places, minlength=n)
  chi2 = ((counts - draws / n) ** 2 / (draws / n)).sum()
  assert chi2 < 27.9, counts  # chi-square, 9 degrees of freedom, p = 0.001
  # And pairs of items are independent enough: item 3 and item 4 land apart.
  pair = np.asarray(jax.vmap(lambda k: shuffled_index(jnp.array([3, 4]), k, n))(keys))
  assert np.all(pair[:, 0] != pair[:, 1])
  assert abs(np.corrcoef(pair[:, 0], pair[:, 1])[0, 1]) < 0.2


def test_bad_n_is_an_error():
  with pytest.raises(ValueError, match="n must be in"):
    shuffled_index(jnp.arange(1), draw_keys(jax.random.PRNGKey(0)), 0)
