"""Loss names with a parameter: `tweedie:P`, `huber:EPSILON`, `quantile:Q`.

Parsed here without JAX, so that the run layer checks a config's loss (`flaxzoo list`, `--help`, a usage
error) without importing it; `flaxzoo.trainers.losses` maps the names to their functions.
"""

from __future__ import annotations

import re

# The losses with one parameter, `name:value`: what the value is, and its range.
PARAMETERS = {
    "tweedie": ("power", lambda p: p >= 1),
    "huber": ("epsilon", lambda e: e > 0),
    "quantile": ("quantile", lambda q: 0 < q < 1),
}
# A plain decimal number: Python's float() also takes `inf`, `nan` and `1_000`.
_NUMBER = re.compile(r"[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?")


def split_loss(name: str) -> tuple[str, float | None]:
  """`"tweedie:1.5"` -> `("tweedie", 1.5)`; a name without a parameter -> `(name, None)`. ValueError, naming
  the loss, for a parameter that is not a plain decimal number in its range (no `inf`, no `1_000`)."""
  base, colon, value = name.partition(":")
  if not colon:
    return name, None
  if base not in PARAMETERS:
    raise ValueError(f"loss {name!r}: only {', '.join(PARAMETERS)} take a parameter (name:value)")
  what, valid = PARAMETERS[base]
  if not _NUMBER.fullmatch(value) or not valid(float(value)):
    raise ValueError(f"loss {name!r}: {what} must be a decimal number in the loss's range, got {value!r}")
  return base, float(value)
