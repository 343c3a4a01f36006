"""`csv:PATH`: a researcher's own CSV/TSV, read by the one table reader."""

from __future__ import annotations

import hashlib

import numpy as np

from flaxzoo.datasets.preprocessing import Columns, class_name
from flaxzoo.datasets.sources import LoadedData, Request, check_distinct, classes_of, infer_task, split_rows
from flaxzoo.datasets.tables import DataError, read_bytes, read_table


def load_csv(request: Request) -> LoadedData:
  """The table at `request.spec`, split by `split_seed` (see `flaxzoo.datasets.sources`)."""
  name, path, features, label, task = request.name, request.spec, request.features, request.label, request.task

  table = read_table(path)
  if not label:
    raise DataError(f"{path}: which column is the label? pass --label COLUMN; columns: {', '.join(table.header)}")
  table.index_of(label, "label column")
  columns = [c.strip() for c in features.split(",")] if features else [c for c in table.header if c != label]
  check_distinct(columns, path)
  for column in columns:
    table.index_of(column, "feature column")
  if label in columns:
    raise DataError(f"{path}: the label column {label!r} is also a feature")
  if not columns:
    raise DataError(f"{path}: no feature columns besides the label {label!r}")
  values = table.text(label)
  empty = [table.lines[k] for k, v in enumerate(values) if not v]
  if empty:
    raise DataError(f"{path}, line {empty[0]}, column {label!r}: empty label")
  task = task or infer_task(values)
  columns_raw: dict[str, np.ndarray] = {c: table.numeric(c) for c in columns}
  if task == "regression":
    columns_raw[label] = table.numeric(label)
    classes = None
  else:
    columns_raw[label] = np.asarray([class_name(v) for v in values])
    classes = classes_of(values)
  rows = split_rows(len(table), request.test_fraction, request.split_seed, path)
  raw = {split: {k: v[index] for k, v in columns_raw.items()} for split, index in rows.items()}
  preprocessing = Columns(features=tuple(columns), label=label, task=task, classes=classes)
  record = {"sha256": hashlib.sha256(read_bytes(path)).hexdigest()}
  return LoadedData(name, task, preprocessing, {}, raw, classes, record, row_ids=rows)

