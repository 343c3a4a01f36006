"""Tables of brain tissue volumes (cm^3) and ages (years), read by the one table reader.

The reference table (`brain_data.tsv`) has the header
`GM Vol, WM Vol, CSF Vol, Total Vol, Age` (tab separated, padded with spaces).
Headers are matched case- and space-insensitively, so `gm_vol`, `GM Vol` and
`gmvol` all name the gray-matter column; two columns naming one field is an
error that lists both.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping

import numpy as np

from flaxzoo.datasets.tables import DataError, parse_number, read_table

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
# Volumes from segmentation software are rounded: the total may fall 1% short of the tissues.
_TOLERANCE = 1.01


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


def _find_columns(header: tuple[str, ...], path, need_age: bool, chosen: Mapping[str, str]) -> dict[str, str]:
  """`{field: header name}` of each field present; `chosen` names a field's column explicitly."""
  unknown = sorted(set(chosen) - set(_ALIASES))
  if unknown:
    raise DataError(f"unknown field {unknown[0]!r}; fields: {', '.join(_ALIASES)}")
  found = {}
  for field in VOLUME_COLUMNS + ("age", "id"):
    if field in chosen:
      if chosen[field] not in header:
        raise DataError(f"{path}, line 1: no column {chosen[field]!r} for the field {field!r}; columns: {list(header)}")
      found[field] = chosen[field]
      continue
    matches = [h for h in header if _normalise(h) in _ALIASES[field]]
    if len(matches) > 1:
      raise DataError(f"{path}, line 1: columns {matches} all name the field {field!r}; say which one"
                      f" (--column {field}=NAME)")
    if matches:
      found[field] = matches[0]
    elif field in VOLUME_COLUMNS or (field == "age" and need_age):
      raise DataError(
          f"{path}, line 1: missing column {field!r} (expected a header like"
          f" {_ALIASES[field][0]!r}; found {list(header)})"
      )
  return found


def read_volume_table(path: str | os.PathLike, *, need_age: bool = True,
                      columns: Mapping[str, str] | None = None) -> VolumeTable:
  """Reads a CSV/TSV of GM, WM, CSF and total volumes (cm^3) and age (years).

  Args:
    path: the table (see `flaxzoo.datasets.tables` for the format rules).
    need_age: whether an age column is required (it is read when present;
      without `need_age` a blank age cell is NaN: that person's age is unknown).
    columns: `{field: header name}` where the header names a field twice or
      in a way the aliases do not know (fields: gm, wm, csf, total, age, id).

  Returns:
    A `VolumeTable` of float64 arrays `[n]`, and the `id` column as strings
    when there is one.

  Raises:
    DataError: naming the file, line and column of the first bad cell: a
      missing column, a wrong number of fields, a non-numeric, NaN or infinite
      cell, a negative volume or age, a total volume of zero or below the sum
      of the tissues (1% tolerance), or no data rows.
  """
  table = read_table(path)
  columns = _find_columns(table.header, table.path, need_age, columns or {})
  index = {field: table.header.index(name) for field, name in columns.items()}
  values = {field: [] for field in columns}
  for cells, line in zip(table.rows, table.lines):
    for field, name in columns.items():
      cell = cells[index[field]]
      if field == "id":
        values["id"].append(cell.strip())
        continue
      if field == "age" and not need_age and not cell.strip():
        values["age"].append(math.nan)  # an optional age left blank: unknown
        continue
      value = parse_number(cell, table.path, line, name)
      if value < 0:
        raise DataError(f"{table.path}, line {line}, column {name!r}: must not be negative, got {value:g}")
      if field == "total" and value == 0:
        raise DataError(f"{table.path}, line {line}, column {name!r}: total volume must be positive, got 0")
      values[field].append(value)
    tissues = values["gm"][-1] + values["wm"][-1] + values["csf"][-1]
    if values["total"][-1] * _TOLERANCE < tissues:
      raise DataError(
          f"{table.path}, line {line}, column {columns['total']!r}: total volume"
          f" {values['total'][-1]:g} is less than GM + WM + CSF = {tissues:g}"
      )
  arrays = {field: np.asarray(v, np.float64) for field, v in values.items() if field != "id"}
  ids = tuple(values["id"]) if "id" in values else None
  return VolumeTable(**{f: arrays.get(f) for f in VOLUME_COLUMNS + ("age",)}, ids=ids)
