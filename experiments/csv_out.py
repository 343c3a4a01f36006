"""Writing predictions as CSV, a block of rows at a time, exactly as `csv.writer` writes them, with an
unknown (NaN) number as an empty cell and every other number in full: the shortest text that reads back
as the same float64 (`repr(x)`'s digits); or, on request, to a fixed number of decimals (`f"{x:.3f}"`).

Formatting a million numbers one by one in Python takes about a second; here the columns are
formatted by Arrow's compute functions in C++. Exactness of fixed decimals: a number is rounded from
`abs(x) * 10**decimals` in float64, which rounds as the exact decimal value does unless that product lies
within a few ulps of a tie (or is huge): those few are formatted by Python itself.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence

import numpy as np

_NEEDS_QUOTES = '[,"\\n]'  # what makes csv.writer (QUOTE_MINIMAL, ",", lineterminator "\\n") quote a field


def header_line(columns: Sequence[str]) -> bytes:
  buffer = io.StringIO()
  csv.writer(buffer, lineterminator="\n").writerow(columns)
  return buffer.getvalue().encode()


MAX_DECIMALS = 12


def shortest(values: np.ndarray):
  """The shortest text of each float64 value that reads back as the same value (Arrow's, as `repr`'s digits:
  `0.1`, `1e-07` as `1e-7`, `2.0` as `2`), as a pyarrow string array; NaN → ""."""
  import pyarrow as pa
  import pyarrow.compute as pc

  v = np.asarray(values, np.float64)
  text = pc.cast(pa.array(v), pa.string())
  missing = np.isnan(v)
  return pc.if_else(pa.array(missing), "", text) if missing.any() else text


def fixed(values: np.ndarray, decimals: int = 3):
  """`f"{v:.{decimals}f}"` of each float64 value as a pyarrow string array (0 <= decimals <= MAX_DECIMALS);
  NaN → ""."""
  import pyarrow as pa
  import pyarrow.compute as pc

  unit = 10**decimals
  v = np.asarray(values, np.float64)
  missing = np.isnan(v)
  magnitude = np.abs(np.where(missing | ~np.isfinite(v), 0.0, v))
  scaled = np.minimum(magnitude, 1e20) * unit  # from 1e18 on Python formats it anyway (no overflow here)
  rounded = np.rint(scaled)
  # Near a tie, or too large for exact int64 arithmetic: Python decides (round-half-even on the exact value).
  by_python = (np.abs(scaled - np.floor(scaled) - 0.5) <= 4 * np.spacing(scaled)) | (scaled >= 1e18)
  by_python |= ~np.isfinite(v) & ~missing
  whole, part = np.divmod(np.where(by_python, 0, rounded).astype(np.int64), unit)
  sign = pc.if_else(pa.array(np.signbit(v)), "-", "")
  if decimals:
    digits = pc.utf8_slice_codeunits(pc.cast(pa.array(part + unit), pa.string()), 1)  # "1042" -> "042"
    text = pc.binary_join_element_wise(sign, pc.cast(pa.array(whole), pa.string()), ".", digits, "")
  else:
    text = pc.binary_join_element_wise(sign, pc.cast(pa.array(whole), pa.string()), "")
  if missing.any():
    text = pc.if_else(pa.array(missing), "", text)
  if by_python.any():
    exact = pa.array([f"{x:.{decimals}f}" for x in v[by_python]], pa.string())
    text = pc.replace_with_mask(text, pa.array(by_python), exact)
  return text


def quoted(strings):
  """csv.writer's quoting of text cells (a pyarrow string array in and out)."""
  import pyarrow as pa
  import pyarrow.compute as pc

  strings = pa.array(strings, pa.string()) if not isinstance(strings, pa.Array) else strings.cast(pa.string())
  needs = pc.match_substring_regex(strings, _NEEDS_QUOTES)
  if not pc.any(needs).as_py():
    return strings
  escaped = pc.binary_join_element_wise('"', pc.replace_substring(strings, '"', '""'), '"', "")
  return pc.if_else(needs, escaped, strings)


def format_rows(columns: Mapping[str, object], decimals: int | None = None) -> bytes:
  """One block of CSV lines (`\\n`-terminated) of `columns` (name → [rows]; numbers or text), in order; numbers
  in full (`shortest`), or to `decimals` decimals (`fixed`)."""
  import pyarrow as pa
  import pyarrow.compute as pc

  def cell(values):
    array = values if isinstance(values, pa.Array) else np.asarray(values)
    if isinstance(array, np.ndarray) and array.dtype.kind in "fiu":
      return shortest(array) if decimals is None else fixed(array, decimals)
    return quoted(array if isinstance(array, pa.Array) else pa.array(array.astype(str)))

  cells = [cell(values) for values in columns.values()]
  lines = pc.binary_join_element_wise(*cells, ",")
  lines = pc.binary_join_element_wise(lines, pa.scalar(""), "\n").cast(pa.large_string())
  # The text of every line, contiguous in the array's data buffer.
  offsets = np.frombuffer(lines.buffers()[1], np.int64)[lines.offset:lines.offset + len(lines) + 1]
  return bytes(memoryview(lines.buffers()[2])[offsets[0]:offsets[-1]])
