"""`claims`: the shipped synthetic claim counts (`generate.py`, seed 0), read as `csv:` reads a table."""

from __future__ import annotations

import dataclasses
import pathlib

from flaxzoo.datasets.sources import LoadedData, Request

TABLE = pathlib.Path(__file__).parent / "claims.csv"


def load_claims(request: Request) -> LoadedData:
  """The claims table: label `claims` (counts: regression), features all the other columns by default."""
  from flaxzoo.datasets.csv_source import load_csv

  loaded = load_csv(dataclasses.replace(request, spec=str(TABLE), label=request.label or "claims",
                                        task=request.task or "regression"))
  return dataclasses.replace(loaded, name=request.name)
