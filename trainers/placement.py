"""Where training runs: one device (`jit`), or data-parallel with `pmap` or `jit` over a Mesh.

- `none`: `jax.jit` on one device.
- `pmap`: `jax.pmap` over the devices; every device holds a replica of the
  state and one slice of each block; gradients, losses and metric sums are
  `psum`-ed (divided by the global example count, never a mean of means).
- `mesh`: `jax.jit` over a `Mesh` with one axis, `data`: blocks are sharded
  `P(None, "data")`, the state is replicated `P()`, and XLA inserts the
  all-reduces. JAX's recommended path; it also spans several processes.
- `auto`: `mesh` on more than one device, else `none`.

With several processes (`jax.distributed`), `mesh` runs over every process's
devices; each process passes only its own slice of the data to JAX
(`jax.make_array_from_process_local_data`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

PARALLEL_MODES = ("auto", "none", "pmap", "mesh")
AXIS = "data"


@dataclasses.dataclass(frozen=True)
class Placement:
  """A parallel mode and its devices; puts state and data where the mode needs them."""

  mode: str
  devices: tuple[Any, ...]

  @property
  def num_shards(self) -> int:
    return 1 if self.mode == "none" else len(self.devices)

  @functools.cached_property
  def mesh(self) -> Mesh:
    return Mesh(np.asarray(self.devices), (AXIS,), axis_types=(AxisType.Auto,))

  def _global(self, value: np.ndarray, spec: P) -> jax.Array:
    """A global array of `value` sharded by `spec`; this process supplies only its part."""
    sharding = NamedSharding(self.mesh, spec)
    value = np.asarray(value)
    if jax.process_count() == 1:
      return jax.device_put(value, sharding)
    local = _process_local_slice(sharding, value.shape)
    return jax.make_array_from_process_local_data(sharding, value[local], value.shape)

  # State: the "global view" (as on one device) outside, replicas inside.

  def put_state(self, state):
    if self.mode == "none":
      return jax.device_put(state, self.devices[0])
    if self.mode == "mesh":
      return jax.tree.map(lambda leaf: self._global(leaf, P()), to_host(state))
    # pmap: a leading device axis of identical replicas.
    return jax.tree.map(
        lambda leaf: self._global(np.broadcast_to(leaf, (len(self.devices),) + np.shape(leaf)), P(AXIS)),
        to_host(state),
    )

  def unreplicate(self, tree):
    """The global view of a compiled call's outputs (pmap: replica 0)."""
    if self.mode == "pmap":
      return jax.tree.map(lambda leaf: leaf[0], tree)
    return tree

  def put_blocks(self, blocks: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """Blocks `[num_blocks, block_size, ...]` onto the devices, split on `block_size`."""
    if self.mode == "none":
      return jax.device_put(blocks, self.devices[0])
    if self.mode == "mesh":
      return {key: self._global(value, P(None, AXIS)) for key, value in blocks.items()}
    n = len(self.devices)

    def per_device(value):  # [blocks, n * b, ...] -> [n, blocks, b, ...]
      value = value.reshape((value.shape[0], n, value.shape[1] // n) + value.shape[2:])
      return self._global(np.moveaxis(value, 1, 0), P(AXIS))

    return {key: per_device(value) for key, value in blocks.items()}

  def compile(self, fn: Callable, num_static: int = 0, num_broadcast: int = 0) -> Callable:
    """`fn(state_or_params, blocks, *static, *broadcast)` compiled for this mode.

    `static` arguments are Python values (a new value recompiles); `broadcast`
    arguments are host scalars or arrays given to every device as they are.
    """
    static = tuple(range(2, 2 + num_static))
    if self.mode == "pmap":
      in_axes = (0, 0) + (None,) * (num_static + num_broadcast)
      return jax.pmap(fn, axis_name=AXIS, devices=self.devices, in_axes=in_axes,
                      static_broadcasted_argnums=static)
    # Under `mesh` the inputs carry NamedShardings; jit partitions from them.
    return jax.jit(fn, static_argnums=static)

  def constrain_shards(self, tree):
    """Inside a compiled step under `mesh`: axis 0 of every array of `tree` split over the devices."""
    return jax.tree.map(lambda v: jax.lax.with_sharding_constraint(v, NamedSharding(self.mesh, P(AXIS))), tree)

  @property
  def axis_name(self) -> str | None:
    return AXIS if self.mode == "pmap" else None

  def describe(self) -> str:
    kind = self.devices[0].platform
    if self.mode == "none":
      return f"1 {kind} device (jit)"
    hosts = f" over {jax.process_count()} processes" if jax.process_count() > 1 else ""
    return f"{len(self.devices)} {kind} devices{hosts} ({self.mode})"


def _process_local_slice(sharding: NamedSharding, shape) -> tuple[slice, ...]:
  """The contiguous part of a global array that this process's devices hold."""
  indices = list(sharding.addressable_devices_indices_map(shape).values())
  local = []
  for axis in range(len(shape)):
    starts = [index[axis].start or 0 for index in indices]
    stops = [shape[axis] if index[axis].stop is None else index[axis].stop for index in indices]
    local.append(slice(min(starts), max(stops)))
  return tuple(local)


def make_placement(parallel: str = "auto", devices: int | None = None) -> Placement:
  """Validates the mode and device count and picks the devices.

  Args:
    parallel: `auto`, `none`, `pmap` or `mesh`.
    devices: how many devices to use (per process); default all local devices.
      With several processes, `mesh` uses that many devices of each process.
  """
  if parallel not in PARALLEL_MODES:
    raise ValueError(f"unknown parallel mode {parallel!r}; known: {', '.join(PARALLEL_MODES)}")
  local = jax.local_devices()
  if devices is not None:
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
      raise ValueError(f"devices must be a positive integer, got {devices!r}")
    if devices > len(local):
      raise ValueError(
          f"devices={devices}: only {len(local)} {local[0].platform} device(s) available"
          " (on CPU, set XLA_FLAGS=--xla_force_host_platform_device_count=N before starting)"
      )
  count = len(local) if devices is None else devices
  processes = jax.process_count()
  if parallel == "auto":
    parallel = "mesh" if count * processes > 1 else "none"
  if processes > 1:
    if parallel != "mesh":
      raise ValueError(f"parallel={parallel!r} runs on one process; with several processes use 'mesh'")
    by_process = {}
    for device in sorted(jax.devices(), key=lambda d: (d.process_index, d.id)):
      by_process.setdefault(device.process_index, []).append(device)
    chosen = tuple(d for p in sorted(by_process) for d in by_process[p][:count])
    return Placement("mesh", chosen)
  if parallel == "none":
    return Placement("none", tuple(local[:1]))
  return Placement(parallel, tuple(local[:count]))


def to_host(tree):
  """Device arrays → NumPy, also for replicated arrays that span several processes."""

  def leaf_to_host(leaf):
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
      return np.asarray(leaf.addressable_data(0))
    return np.asarray(leaf)

  return jax.tree.map(leaf_to_host, tree)
