"""Numbers as a user types them (flags, loss parameters): plain decimals, parsed exactly and checked finite.

Python's `float()` also takes `inf`, `nan`, `1_000` and surrounding spaces, and `int()` takes `1_0`: none of
them is what a user means on a command line, so each is refused in one line. No JAX (the CLI's `--help`).
"""

from __future__ import annotations

import math
import re

_FLOAT = re.compile(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?")
_INT = re.compile(r"[-+]?[0-9]+")


def parse_decimal(text: str, kind: type = float):
  """`text` as an `int` or a finite `float` (the value Python's parser gives the same digits: `1.9999999`
  stays 1.9999999); a ValueError naming the text for anything else."""
  if kind is int:
    if not _INT.fullmatch(text):
      raise ValueError(f"not an integer: {text!r}")
    return int(text)
  if not _FLOAT.fullmatch(text):
    raise ValueError(f"not a decimal number: {text!r}")
  value = float(text)
  if not math.isfinite(value):
    raise ValueError(f"not a finite number: {text!r}")
  return value
