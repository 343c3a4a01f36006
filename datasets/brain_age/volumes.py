"""Tables of brain tissue volumes (cm^3) and ages (years), read by the one table reader.

The reference table (`brain_data.tsv`) has the header
`GM Vol, WM Vol, CSF Vol, Total Vol, Age` (tab separated, padded with spaces).
Headers are matched case- and space-insensitively, so `gm_vol`, `GM Vol` and
`gmvol` all name the gray-matter column; two columns naming one field is an
error that lists both.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping

import numpy as np

from flaxzoo.datasets.tables import DataError, parse_number, read_table, read_table_header, stream_columns

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


def iter_volume_tables(path: str | os.PathLike, *, need_age: bool = True, columns: Mapping[str, str] | None = None,
                       block_bytes: int = 1 << 19):
  """`read_volume_table`, a block of rows at a time (`VolumeTable`s): memory bounded by the block.

  Streams through `flaxzoo.datasets.tables.stream_columns`; a block that breaks a rule is read again
  by the reference check (`_first_error`), which names the file, line and column.
  """
  header = read_table_header(path)
  columns = _find_columns(header.names, os.fspath(path), need_age, columns or {})
  numeric = tuple(columns[f] for f in VOLUME_COLUMNS) + ((columns["age"],) if need_age and "age" in columns else ())
  optional = (columns["age"],) if not need_age and "age" in columns else ()
  text = (columns["id"],) if "id" in columns else ()
  try:
    yield from _volume_blocks(path, columns, numeric, optional, text, block_bytes, need_age)
  except DataError as e:  # a blank age where one is needed: what `flaxzoo predict` reads as unknown, and the way
    if need_age and "age" in columns and str(e).endswith(f"column {columns['age']!r}: not a number: ''"):
      raise DataError(f"{e} (a blank age: need_age=False reads it as unknown, as flaxzoo predict does)") from None
    raise


def _volume_blocks(path, columns, numeric, optional, text, block_bytes, need_age):
  for block in stream_columns(path, numeric, optional, text, block_bytes):
    values = {field: block[name] for field, name in columns.items()}
    volumes = np.stack([values[f] for f in VOLUME_COLUMNS])
    age = values.get("age")
    if (np.any(volumes < 0) or np.any(values["total"] == 0) or (age is not None and np.any(age < 0))
        or np.any(values["total"] * _TOLERANCE < values["gm"] + values["wm"] + values["csf"])):
      _first_error(path, need_age, columns)
    ids = values.get("id")
    yield VolumeTable(**{f: values.get(f) for f in VOLUME_COLUMNS + ("age",)},
                      ids=ids)  # strings: a pyarrow array or a numpy array (`list(ids)`)


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
  blocks = list(iter_volume_tables(path, need_age=need_age, columns=columns))
  joined = {f: None if getattr(blocks[0], f) is None else np.concatenate([getattr(b, f) for b in blocks])
            for f in VOLUME_COLUMNS + ("age",)}
  ids = None if blocks[0].ids is None else tuple(str(i) for b in blocks for i in _strings(b.ids))
  return VolumeTable(**joined, ids=ids)


def _strings(values) -> list:
  return values.to_pylist() if hasattr(values, "to_pylist") else list(values)


def _first_error(path, need_age: bool, columns: Mapping[str, str]) -> None:
  """The reference check, row by row: raises the DataError of the first row that breaks a rule."""
  table = read_table(path)
  index = {field: table.header.index(name) for field, name in columns.items()}
  for cells, line in zip(table.rows, table.lines):
    values = {}
    for field, name in columns.items():
      cell = cells[index[field]]
      if field == "id" or (field == "age" and not need_age and not cell.strip()):
        continue
      value = parse_number(cell, table.path, line, name)
      if value < 0:
        raise DataError(f"{table.path}, line {line}, column {name!r}: must not be negative, got {value:g}")
      if field == "total" and value == 0:
        raise DataError(f"{table.path}, line {line}, column {name!r}: total volume must be positive, got 0")
      values[field] = value
    tissues = values["gm"] + values["wm"] + values["csf"]
    if values["total"] * _TOLERANCE < tissues:
      raise DataError(
          f"{table.path}, line {line}, column {columns['total']!r}: total volume"
          f" {values['total']:g} is less than GM + WM + CSF = {tissues:g}"
      )
