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

import contextlib
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


@contextlib.contextmanager
def _reading(path):
  """A regular file's read, its failures as one-line `DataError`s naming it."""
  check_regular_file(path)
  try:
    yield
  except FileNotFoundError:
    raise DataError(f"{path}: no such file") from None
  except IsADirectoryError:
    raise DataError(f"{path}: is a directory, not a table") from None
  except UnicodeDecodeError as e:
    raise DataError(f"{path}: not a UTF-8 text table ({e.reason})") from None
  except OSError as e:
    raise DataError(f"{path}: cannot read ({e.strerror})") from None


def read_bytes(path: str | os.PathLike) -> bytes:
  """The bytes at `path` (e.g. to hash a table); a one-line `DataError` naming it if unreadable."""
  with _reading(path), open(path, "rb") as f:
    return f.read()


def read_text(path: str | os.PathLike, newline: str | None = None, limit: int = -1) -> str:
  """The UTF-8 text at `path` (a BOM dropped; the first `limit` characters only, if given); a one-line
  `DataError` naming it if unreadable. `newline=""` keeps line endings inside quoted cells for `csv`."""
  with _reading(path), open(path, encoding="utf-8-sig", newline=newline) as f:
    return f.read(limit)


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

  def numeric(self, column: str, blank_ok: bool = False) -> np.ndarray:
    """Column `column` as float64 `[n]`; a cell that is not a finite number is an error naming its line.

    `blank_ok`: a blank cell is NaN (an optional value left out), not an error.
    """
    import numpy as np

    i = self.index_of(column)
    return np.asarray([math.nan if blank_ok and not row[i].strip() else parse_number(row[i], self.path, line, column)
                       for row, line in zip(self.rows, self.lines)], np.float64)


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


def stream_columns(path: str | os.PathLike, numeric: tuple[str, ...] = (), optional: tuple[str, ...] = (),
                   text: tuple[str, ...] = (), block_bytes: int = 1 << 19):
  """The named columns of a table, a block of rows at a time: `{name: [rows]}` dicts, float64 numpy
  arrays for `numeric` and `optional` (a blank optional cell is NaN), strings for `text` (a pyarrow
  string array or a numpy array of str: `list(values)` or `pyarrow.array(values)` takes either).

  The same table and the same errors as `read_table` (it is the reference): rows are parsed by
  Arrow's CSV reader in C++ (~5M rows/s here, memory bounded by the block), and any block Arrow
  reads differently, or that holds a bad cell, is read again by `read_table` — which then names the
  file, line and column of the error, or reads what Arrow could not (whitespace-only lines).
  """
  import numpy as np

  path = os.fspath(path)
  header = read_table_header(path)
  names = numeric + optional + text
  for name in names:
    if name not in header.names:
      raise DataError(f"{path}: no column {name!r}; columns: {', '.join(header.names)}")
  done = 0
  if header.line == 1 and names:
    try:
      for block in _arrow_blocks(path, header, numeric, optional, text, block_bytes):
        if len(block[names[0]]):
          yield block
          done += len(block[names[0]])
      if done == 0:
        raise DataError(f"{path}: no data rows after the header")
      return
    except _ReadAgain:
      pass
  table = read_table(path)  # the reference reader: raises the precise error, or reads the rest
  columns = {name: (table.numeric(name, blank_ok=name in optional) if name not in text else
                    np.asarray(table.text(name), dtype=object)) for name in names}
  for start in range(done, len(table), 1 << 16):
    yield {name: values[start:start + (1 << 16)] for name, values in columns.items()}


def _float_values(array) -> tuple[np.ndarray, np.ndarray]:
  """A float64 Arrow array as numpy `(values, blank)`, blanks (nulls) as NaN; read from the buffers
  (`to_numpy` imports pandas when it is installed: 0.1 s and 40 MB for nothing)."""
  import numpy as np

  n, offset = len(array), array.offset
  validity, data = array.buffers()[0], array.buffers()[1]
  values = np.frombuffer(data, np.float64, count=n, offset=8 * offset) if data is not None else np.zeros(n)
  blank = np.zeros(n, bool)
  if array.null_count:
    bits = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")[offset:offset + n]
    blank = bits == 0
    values = np.where(blank, np.nan, values)
  return values, blank


class _ReadAgain(Exception):
  """A block that the reference reader must read (an error to name, or a row Arrow reads otherwise)."""


@dataclasses.dataclass(frozen=True)
class Header:
  names: tuple[str, ...]  # stripped; a trailing empty name dropped
  raw_count: int  # fields on the header line, the trailing empty one included
  delimiter: str
  line: int  # physical line of the header


def read_table_header(path) -> Header:
  """The header as `read_table` reads it (same checks), from the start of the file only."""
  head = read_text(path, newline="", limit=1 << 16)
  lines = head.splitlines(keepends=True)
  number = next((k for k, line in enumerate(lines) if line.strip()), None)
  if number is None or (number == len(lines) - 1 and len(head) == 1 << 16):
    table = read_table(path)  # no header in the first 64 kB: the reference reader says why, or has it
    return Header(table.header, len(table.header), ",", 0)
  first = lines[number]
  delimiter = next((d for d in ("\t", ";") if d in first), ",")
  try:
    cells = next(csv.reader([first], delimiter=delimiter))
  except (csv.Error, StopIteration):
    cells = None
  names = tuple(c.strip() for c in cells or ())
  if not cells or '"' in first or len(names) > 1 and not names[-1] and any(not n for n in names[:-1]):
    table = read_table(path)  # quoted or odd headers: the reference reader decides
    return Header(table.header, len(table.header) + (first.rstrip("\r\n").endswith(delimiter)), delimiter, 0)
  trailing = len(names) > 1 and not names[-1]
  kept = names[:-1] if trailing else names
  if any(not n for n in kept) or len(set(kept)) != len(kept):
    read_table(path)  # raises the reference reader's error about the header
  return Header(kept, len(names), delimiter, number + 1)


def _arrow_blocks(path, header: Header, numeric, optional, text, block_bytes):
  import numpy as np
  import pyarrow as pa
  import pyarrow.compute as pc
  import pyarrow.csv as pcsv

  positional = [f"c{k}" for k in range(header.raw_count)]
  index = {name: positional[header.names.index(name)] for name in numeric + optional + text}
  types = {index[n]: pa.float64() for n in numeric + optional}
  types.update({index[n]: pa.string() for n in text})
  trailing = positional[-1] if header.raw_count > len(header.names) else None
  if trailing:
    types[trailing] = pa.string()
  try:
    reader = pcsv.open_csv(
        path,
        read_options=pcsv.ReadOptions(block_size=block_bytes, skip_rows=1, column_names=positional,
                                       use_threads=False),  # one block at a time: bounded memory
        parse_options=pcsv.ParseOptions(delimiter=header.delimiter, newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(column_types=types, include_columns=list(types), null_values=[""],
                                            # A quoted "" is text, never null; in a number column it
                                            # fails the conversion and the reference reader reads it.
                                            strings_can_be_null=False, quoted_strings_can_be_null=False),
    )
    for batch in reader:
      block = {}
      for name in numeric + optional:
        values, blank = _float_values(batch.column(index[name]))
        bad = ~np.isfinite(values)
        if name in optional:
          bad &= ~blank  # blank: unknown, allowed
        if bad.any() or (np.abs(np.nan_to_num(values)) > MAX_MAGNITUDE).any():
          raise _ReadAgain
        block[name] = values
      for name in text:
        values = pc.utf8_trim_whitespace(batch.column(index[name]))  # never null: see quoted_strings_can_be_null
        if len(values) and pc.max(pc.utf8_length(batch.column(index[name]))).as_py() > csv.field_size_limit():
          raise _ReadAgain
        block[name] = values  # a pyarrow string array: `to_pylist()`, or `pa.array(...)` of either kind
      if trailing is not None and pc.any(pc.not_equal(pc.utf8_trim_whitespace(batch.column(trailing)), "")).as_py():
        raise _ReadAgain
      yield block
  except (pa.ArrowInvalid, pa.ArrowException):
    raise _ReadAgain from None
