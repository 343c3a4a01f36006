"""Reading tables of brain tissue volumes, with errors that name the file and line.

The reference table (`brain_age/brain_data.tsv`) has the header
`GM Vol, WM Vol, CSF Vol, Total Vol, Age` (tab separated, padded with spaces).
Headers are matched case- and space-insensitively, so `gm_vol`, `GM Vol` and
`gmvol` all name the gray-matter column.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re

import numpy as np

VOLUME_COLUMNS = ("gm", "wm", "csf", "total")

# Normalised header spellings accepted for each field (lower case, no spaces,
# underscores or dashes). The first one is the reference file's.
_ALIASES = {
    "gm": ("gmvol", "gm", "graymatter", "greymatter", "gmvolume"),
    "wm": ("wmvol", "wm", "whitematter", "wmvolume"),
    "csf": ("csfvol", "csf", "csfvolume"),
    "total": ("totalvol", "total", "tiv", "totalvolume", "icv"),
    "age": ("age", "ageyears"),
    "id": ("id", "subject", "subjectid", "participant", "participantid", "name"),
}


class DataError(ValueError):
  """A data file is malformed; the message names the file, line and field."""


@dataclasses.dataclass(frozen=True)
class VolumeTable:
  """Raw volumes in cm^3 and ages in years, one entry per person (`[n]` each)."""

  gm: np.ndarray
  wm: np.ndarray
  csf: np.ndarray
  total: np.ndarray
  age: np.ndarray | None
  ids: tuple[str, ...] | None = None

  def __len__(self) -> int:
    return len(self.total)


def _normalise(name: str) -> str:
  return re.sub(r"[\s_\-]+", "", name).lower()


def _find_columns(header: list[str], path, need_age: bool) -> dict[str, int]:
  normalised = [_normalise(h) for h in header]
  found = {}
  for field in VOLUME_COLUMNS + ("age", "id"):
    matches = [i for i, h in enumerate(normalised) if h in _ALIASES[field]]
    if matches:
      found[field] = matches[0]
    elif field in VOLUME_COLUMNS or (field == "age" and need_age):
      raise DataError(
          f"{path}, line 1: missing column {field!r} (expected a header like"
          f" {_ALIASES[field][0]!r}; found {[h.strip() for h in header]})"
      )
  return found


def read_text(path: str | os.PathLike, newline: str | None = None) -> str:
  """The whole UTF-8 text of the table at `path`; a one-line `DataError` naming it if unreadable.

  `newline=""` keeps line endings inside quoted cells for the `csv` module.
  """
  try:
    with open(path, encoding="utf-8", newline=newline) as f:
      return f.read()
  except FileNotFoundError:
    raise DataError(f"{path}: no such file") from None
  except IsADirectoryError:
    raise DataError(f"{path}: is a directory, not a table") from None
  except UnicodeDecodeError as e:
    raise DataError(f"{path}: not a UTF-8 text table ({e.reason})") from None
  except OSError as e:
    raise DataError(f"{path}: cannot read ({e.strerror})") from None


def parse_number(text: str, path, line: int, column: str) -> float:
  """A cell as a finite float; otherwise a DataError naming the file, line and column."""
  try:
    value = float(text)
  except ValueError:
    raise DataError(
        f"{path}, line {line}, column {column!r}: not a number: {text.strip()!r}"
    ) from None
  if not math.isfinite(value):
    raise DataError(
        f"{path}, line {line}, column {column!r}: value is not finite: {text.strip()!r}"
    )
  return value


def read_volume_table(path: str | os.PathLike, *, need_age: bool = True) -> VolumeTable:
  """Reads a CSV/TSV of GM, WM, CSF and total volumes (cm^3) and age (years).

  Args:
    path: the table; the delimiter is a tab, semicolon or comma, whichever the
      header line has (in that order).
    need_age: whether an age column is required (it is read when present).

  Returns:
    A `VolumeTable` of float64 arrays `[n]`, and the `id` column as strings
    when there is one.

  Raises:
    DataError: naming the file, line and column of the first bad cell: a
      missing column, a wrong number of fields, a non-numeric, NaN or infinite
      cell, a negative volume or age, a total volume of zero or below the sum
      of the tissues (1% tolerance), or no data rows.
  """
  lines = read_text(path).splitlines()
  if not lines or not lines[0].strip():
    raise DataError(f"{path}: file is empty (expected a header line)")
  delimiter = next((d for d in ("\t", ";") if d in lines[0]), ",")
  header = lines[0].split(delimiter)
  columns = _find_columns(header, path, need_age)
  names = {field: header[i].strip() for field, i in columns.items()}

  values = {field: [] for field in columns}
  tolerance = 1.01  # volumes from segmentation software are rounded
  for line_number, line in enumerate(lines[1:], start=2):
    if not line.strip():
      continue
    cells = line.split(delimiter)
    if len(cells) != len(header):
      raise DataError(
          f"{path}, line {line_number}: expected {len(header)} fields, found {len(cells)}"
      )
    for field, i in columns.items():
      if field == "id":
        values["id"].append(cells[i].strip())
        continue
      value = parse_number(cells[i], path, line_number, names[field])
      if value < 0:
        raise DataError(
            f"{path}, line {line_number}, column {names[field]!r}: must not be"
            f" negative, got {value:g}"
        )
      if field == "total" and value == 0:
        raise DataError(
            f"{path}, line {line_number}, column {names[field]!r}: total volume"
            " must be positive, got 0"
        )
      values[field].append(value)
    tissues = values["gm"][-1] + values["wm"][-1] + values["csf"][-1]
    if values["total"][-1] * tolerance < tissues:
      raise DataError(
          f"{path}, line {line_number}, column {names['total']!r}: total volume"
          f" {values['total'][-1]:g} is less than GM + WM + CSF = {tissues:g}"
      )
  if not values["total"]:
    raise DataError(f"{path}: no data rows after the header")
  arrays = {field: np.asarray(v, np.float64) for field, v in values.items() if field != "id"}
  ids = tuple(values["id"]) if "id" in values else None
  return VolumeTable(**{f: arrays.get(f) for f in VOLUME_COLUMNS + ("age",)}, ids=ids)
