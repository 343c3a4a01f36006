"""flaxzoo's own BLAS calls on the host run on one thread.

OpenBLAS's threads spin while they wait: on a machine whose other core is busy (a second job, a test worker),
`xᵀx` of 300k x 40 took 4-6 s instead of 0.03 s. One thread costs these calls nothing measurable on two idle
cores (the products are memory-bound at flaxzoo's widths) and cannot spin against anyone. Limited per call
(threadpoolctl), never process-wide: the user's own NumPy keeps its threads.
"""

from __future__ import annotations

import contextlib

_controller = None


def one_thread():
  """A context in which NumPy's and SciPy's BLAS use one thread."""
  global _controller
  if _controller is None:
    import scipy.linalg  # noqa: F401 - SciPy's own OpenBLAS, loaded before the libraries are listed
    from threadpoolctl import ThreadpoolController

    _controller = ThreadpoolController()
  if not _controller.lib_controllers:
    return contextlib.nullcontext()
  return _controller.limit(limits=1, user_api="blas")
