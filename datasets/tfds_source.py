"""`tfds:NAME[/CONFIG]`: a TFDS dataset prepared as array_record, read without TensorFlow."""

from __future__ import annotations

import os
import pathlib

import numpy as np

from flaxzoo.datasets.loading import default_data_dir
from flaxzoo.datasets.preprocessing import Columns
from flaxzoo.datasets.sources import LoadedData, Request, check_distinct, classes_of, infer_task, split_rows
from flaxzoo.datasets.tables import DataError


def find_prepared(name: str, data_dir) -> pathlib.Path | None:
  """The newest prepared version folder of TFDS dataset `NAME[/CONFIG]` in `data_dir`, or None."""
  root = pathlib.Path(data_dir) / name
  if not root.is_dir():
    return None
  versions = [p for p in root.iterdir() if (p / "dataset_info.json").is_file()]
  if not versions:
    return None

  def key(path):
    try:
      return tuple(int(part) for part in path.name.split("."))
    except ValueError:
      return (-1,)

  return max(versions, key=key)


def load_tfds(request: Request) -> LoadedData:
  """The prepared TFDS dataset `request.spec`; its test split, or a seeded split of train."""
  name, spec, features, label, task = request.name, request.spec, request.features, request.label, request.task
  data_dir, download, log = request.data_dir, request.download, request.log

  import tensorflow_datasets as tfds

  data_dir = pathlib.Path(data_dir) if data_dir else default_data_dir()
  folder = find_prepared(spec, data_dir)
  if folder is None:
    if not download:
      raise DataError(
          f"{name}: not prepared in {data_dir} (no {spec}/VERSION/dataset_info.json). Prepare it there in"
          f" array_record format (tfds.builder({spec!r}, data_dir=...).download_and_prepare("
          "file_format='array_record')), or pass --download to let flaxzoo do that"
      )
    if log:
      log(f"downloading and preparing {spec} into {data_dir}")
    try:
      builder = tfds.builder(spec, data_dir=os.fspath(data_dir), file_format="array_record")
      builder.download_and_prepare()
    except Exception as e:  # TFDS raises many kinds; the user needs the one line
      raise DataError(f"{name}: could not download and prepare it: {type(e).__name__}: {e}") from None
    folder = find_prepared(spec, data_dir)
  builder = tfds.builder_from_directory(os.fspath(folder))
  info_features = builder.info.features
  label = label or "label"
  if label not in info_features:
    raise DataError(f"{name}: no label feature {label!r}; features: {', '.join(info_features)}")
  if features:
    columns = [c.strip() for c in features.split(",")]
    check_distinct(columns, name)
    for column in columns:
      if column not in info_features:
        raise DataError(f"{name}: no feature {column!r}; features: {', '.join(info_features)}")
  else:
    columns = [c for c in info_features if c != label and _is_numeric(info_features[c])]
  sources = builder.as_data_source()
  if "train" not in sources:
    raise DataError(f"{name}: no 'train' split; splits: {', '.join(sources)}")
  raw, row_ids = {}, {}
  if "test" in sources:
    for split in ("train", "test"):
      raw[split] = _read_source(sources[split], columns + [label], name, split)
  else:
    everything = _read_source(sources["train"], columns + [label], name, "train")
    rows = split_rows(len(everything[label]), request.test_fraction, request.split_seed, name)
    raw = {split: {k: v[index] for k, v in everything.items()} for split, index in rows.items()}
    row_ids = rows  # the example's index in the TFDS train split
  for column in columns:
    if raw["train"][column].dtype.kind not in "biuf":
      raise DataError(f"{name}: feature {column!r} is not numeric ({raw['train'][column].dtype})")
  label_feature = info_features[label]
  if isinstance(label_feature, tfds.features.ClassLabel):
    task = task or "classification"
    classes = tuple(label_feature.names) if task == "classification" else None
    if classes is not None:
      raw = {s: {**r, label: np.asarray([classes[int(v)] for v in r[label]])} for s, r in raw.items()}
  else:
    task = task or infer_task([str(v) for v in raw["train"][label]])
    classes = None
    if task == "classification":
      classes = classes_of(np.concatenate([raw[s][label] for s in raw]))
  scale = {c: 1 / 255 for c in columns if isinstance(info_features[c], tfds.features.Image)}
  preprocessing = Columns(features=tuple(columns), label=label, task=task, classes=classes, scale=scale or None)
  return LoadedData(name, task, preprocessing, {}, raw, classes, row_ids=row_ids)


def _is_numeric(feature) -> bool:
  dtype = getattr(feature, "np_dtype", None)
  return dtype is not None and np.dtype(dtype).kind in "biuf"


def _read_source(source, columns, name, split) -> dict[str, np.ndarray]:
  if len(source) == 0:
    raise DataError(f"{name}: split {split!r} is empty")
  examples = source.__getitems__(range(len(source)))
  return {c: np.stack([np.asarray(e[c]) for e in examples]) for c in columns}

