"""Reading a researcher's own CSV/TSV: a header row, then one example a row.

Cells stay text until a column is asked for as numbers, so an error names the
file, the line and the column of the first bad cell.
"""

from __future__ import annotations

import csv
import dataclasses
import os

import numpy as np

from flaxzoo.datasets.tables import DataError, parse_number, read_text


@dataclasses.dataclass(frozen=True)
class CsvTable:
  """A table of text cells. `rows[i]` came from line `lines[i]` of `path`."""

  path: str
  header: tuple[str, ...]
  rows: tuple[tuple[str, ...], ...]
  lines: tuple[int, ...]

  def __len__(self) -> int:
    return len(self.rows)

  def index_of(self, column: str, role: str = "column") -> int:
    """The position of `column`; a missing one is an error that lists the columns."""
    if column not in self.header:
      raise DataError(f"{self.path}: no {role} {column!r}; columns: {', '.join(self.header)}")
    return self.header.index(column)

  def text(self, column: str) -> list[str]:
    i = self.index_of(column)
    return [row[i].strip() for row in self.rows]

  def numeric(self, column: str) -> np.ndarray:
    """Column `column` as float64 `[n]`; a cell that is not a finite number is an error naming its line."""
    i = self.index_of(column)
    return np.asarray([parse_number(row[i], self.path, line, column) for row, line in zip(self.rows, self.lines)],
                      np.float64)


def read_csv_table(path: str | os.PathLike) -> CsvTable:
  """Reads a CSV or TSV with a header row.

  The delimiter is a tab, semicolon or comma, whichever the header line has
  (in that order); quoted cells follow the `csv` module. Blank lines are
  skipped.

  Raises:
    DataError: no such file, not UTF-8 text, an empty file, a header with an
      empty or repeated name, a row with another number of fields, no data rows.
  """
  path = os.fspath(path)
  text = read_text(path, newline="")
  lines = text.splitlines()
  if not lines or not any(line.strip() for line in lines):
    raise DataError(f"{path}: empty file (expected a header row, then one row per example)")
  first = next(line for line in lines if line.strip())
  delimiter = next((d for d in ("\t", ";") if d in first), ",")
  reader = csv.reader(lines, delimiter=delimiter)
  header, rows, numbers = None, [], []
  for number, cells in enumerate(reader, start=1):
    if not cells or not "".join(cells).strip():
      continue
    if header is None:
      header = tuple(c.strip() for c in cells)
      empty = [k + 1 for k, c in enumerate(header) if not c]
      if empty:
        raise DataError(f"{path}, line {number}: header field {empty[0]} has no name")
      repeated = sorted({c for c in header if header.count(c) > 1})
      if repeated:
        raise DataError(f"{path}, line {number}: column {repeated[0]!r} appears twice in the header")
      continue
    if len(cells) != len(header):
      raise DataError(f"{path}, line {number}: expected {len(header)} fields, found {len(cells)}")
    rows.append(tuple(cells))
    numbers.append(number)
  if not rows:
    raise DataError(f"{path}: no data rows after the header")
  return CsvTable(path, header, tuple(rows), tuple(numbers))
