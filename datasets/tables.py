"""The one table reader: every CSV/TSV flaxzoo reads (training tables, predict's inputs, volume tables).

A table is a header row, then one example a row. The `csv` module splits
lines (quoting as Excel writes it); the delimiter is a tab, semicolon or
comma, whichever the header line has (in that order); a UTF-8 byte-order mark
is dropped; blank lines are skipped. Cells stay text until a column is asked
for as numbers, so an error names the file, the line and the column of the
first bad cell. Numbers are strict: decimal notation only (`1e-3`, `-2.5`),
no `1_000`, hex, `inf` or `nan` (Python's `float()` takes those, a table
must not), and at most `MAX_MAGNITUDE` in size (beyond it, float32 sums of
squares overflow and standardisation turns a feature to zeros). Only regular
files are read (a FIFO, a device or a directory is refused at once), a cell
holds at most `csv.field_size_limit()` characters, and a header names each
column once.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import re
import stat
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports DataError before it knows whether it needs numpy
  import numpy as np

MAX_MAGNITUDE = 1e30
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class DataError(ValueError):
  """A data file or dataset is malformed; the message names the file, line and field."""


def check_regular_file(path) -> None:
  """A one-line `DataError` unless `path` is a regular file (opening a FIFO would wait forever)."""
  try:
    mode = os.stat(path).st_mode
  except FileNotFoundError:
    raise DataError(f"{path}: no such file") from None
  except OSError as e:
    raise DataError(f"{path}: cannot read ({e.strerror})") from None
  if stat.S_ISDIR(mode):
    raise DataError(f"{path}: is a directory, not a table")
  if not stat.S_ISREG(mode):
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special"
    raise DataError(f"{path}: is {kind}, not a regular file; flaxzoo reads tables from files")


def read_bytes(path: str | os.PathLike) -> bytes:
  """The bytes at `path` (e.g. to hash a table); a one-line `DataError` naming it if unreadable."""
  check_regular_file(path)
  try:
    with open(path, "rb") as f:
      return f.read()
  except FileNotFoundError:
    raise DataError(f"{path}: no such file") from None
  except IsADirectoryError:
    raise DataError(f"{path}: is a directory, not a table") from None
  except OSError as e:
    raise DataError(f"{path}: cannot read ({e.strerror})") from None


def read_text(path: str | os.PathLike, newline: str | None = None) -> str:
  """The whole UTF-8 text at `path` (a BOM dropped); a one-line `DataError` naming it if unreadable.

  `newline=""` keeps line endings inside quoted cells for the `csv` module.
  """
  check_regular_file(path)
  try:
    with open(path, encoding="utf-8-sig", newline=newline) as f:
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
  stripped = text.strip()
  if not _NUMBER.fullmatch(stripped):
    if stripped.lower().lstrip("+-") in ("inf", "infinity", "nan"):
      raise DataError(f"{path}, line {line}, column {column!r}: value is not finite: {stripped!r}")
    raise DataError(f"{path}, line {line}, column {column!r}: not a number: {stripped!r}")
  value = float(stripped)
  if not math.isfinite(value):
    raise DataError(f"{path}, line {line}, column {column!r}: value is not finite: {stripped!r}")
  if abs(value) > MAX_MAGNITUDE:
    raise DataError(f"{path}, line {line}, column {column!r}: {stripped} is too large (more than"
                    f" {MAX_MAGNITUDE:g} in size overflows float32 statistics); rescale the column")
  return value


@dataclasses.dataclass(frozen=True)
class Table:
  """A table of text cells. `rows[i]` came from line `lines[i]` of `path`; names are stripped."""

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
    import numpy as np

    i = self.index_of(column)
    return np.asarray([parse_number(row[i], self.path, line, column) for row, line in zip(self.rows, self.lines)],
                      np.float64)


def read_table(path: str | os.PathLike) -> Table:
  """Reads a CSV or TSV with a header row (see the module docstring).

  A header that ends with a delimiter (`a,b,c,`, as some spreadsheets write)
  has no last column: a row's cell there must then be empty.

  Raises:
    DataError: not a regular file, no such file, not UTF-8 text, an empty
      file, a header with an empty or repeated name, a row with another number
      of fields, a cell the csv module cannot read, no data rows.
  """
  path = os.fspath(path)
  text = read_text(path, newline="")
  first = next((line for line in text.splitlines() if line.strip()), None)
  if first is None:
    raise DataError(f"{path}: file is empty (expected a header row, then one row per example)")
  delimiter = next((d for d in ("\t", ";") if d in first), ",")
  reader = csv.reader(io.StringIO(text), delimiter=delimiter)
  header, rows, numbers, trailing = None, [], [], False
  while True:
    try:
      cells = next(reader)
    except StopIteration:
      break
    except csv.Error as e:  # a cell past csv.field_size_limit(), a NUL byte
      raise DataError(f"{path}, line {reader.line_num}: cannot be read as a table row ({e})") from None
    number = reader.line_num
    if not cells or not "".join(cells).strip():
      continue
    if header is None:
      header = tuple(c.strip() for c in cells)
      if len(header) > 1 and not header[-1]:
        header, trailing = header[:-1], True
      empty = [k + 1 for k, c in enumerate(header) if not c]
      if empty:
        raise DataError(f"{path}, line {number}: header field {empty[0]} has no name")
      repeated = sorted({c for c in header if header.count(c) > 1})
      if repeated:
        where = [k + 1 for k, c in enumerate(header) if c == repeated[0]]
        raise DataError(f"{path}, line {number}: column {repeated[0]!r} appears {len(where)} times in the header"
                        f" (fields {', '.join(map(str, where))}); rename all but one")
      continue
    if trailing and len(cells) == len(header) + 1 and not cells[-1].strip():
      cells = cells[:-1]
    if len(cells) != len(header):
      raise DataError(f"{path}, line {number}: expected {len(header)} fields, found {len(cells)}")
    rows.append(tuple(cells))
    numbers.append(number)
  if not rows:
    raise DataError(f"{path}: no data rows after the header")
  return Table(path, header, tuple(rows), tuple(numbers))
