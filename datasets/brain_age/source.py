"""`brain_age` as a training source: the reference split, GM or tissue fractions, age or age group."""

from __future__ import annotations

from flaxzoo.datasets.brain_age.preprocessing import TissueFractions
from flaxzoo.datasets.brain_age.split import RAW_SHA256, VERSION, describe_split
from flaxzoo.datasets.loading import load_split
from flaxzoo.datasets.sources import LoadedData, Request
from flaxzoo.datasets.tables import DataError


def load_brain_age(request: Request) -> LoadedData:
  """Both splits of the built TFDS dataset (built on first use), raw; the preprocessing to apply."""
  label = request.label or "age"
  try:
    preprocessing = TissueFractions(features=request.features or "gm", label=label)
  except ValueError as e:  # an unknown feature set or label, named with the known ones
    raise DataError(f"brain_age: {e}") from None
  if request.task is not None and request.task != preprocessing.task:
    raise DataError(f"brain_age label {label!r} is a {preprocessing.task} target, not {request.task}")
  raw = {split: load_split("brain_age", split, request.data_dir, request.log, request.progress_bar)
         for split in ("train", "test")}
  record = {"sha256": RAW_SHA256, "version": VERSION,
            "split": describe_split(sum(len(r["age"]) for r in raw.values()))}
  return LoadedData("brain_age", preprocessing.task, preprocessing, {}, raw, preprocessing.class_names, record)

