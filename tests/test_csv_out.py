"""Predictions written by Arrow are byte for byte what `csv.writer` writes: numbers in full (every one reads
back as the same float64), or with `f"{x:.{decimals}f}"`."""

import csv
import io

import numpy as np
import pyarrow as pa
from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from flaxzoo.experiments.csv_out import format_rows, header_line, shortest


def reference(columns, decimals: int = 3) -> bytes:
  """csv.writer, numbers to `decimals` decimals, NaN empty."""
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator="\n")
  for row in zip(*columns.values()):
    writer.writerow([v if isinstance(v, str) else (f"{v:.{decimals}f}" if v == v else "") for v in row])
  return buffer.getvalue().encode()


def read_back(text: bytes, column: int) -> list[float]:
  return [float(row[column]) if row[column] else float("nan") for row in csv.reader(io.StringIO(text.decode()))]


def test_ties_signs_zeros_huge_and_missing_numbers():
  halves = (np.arange(-3000, 3000) + 0.5) / 1000  # every x.xxx5: ties in decimal, not in binary
  special = [0.0, -0.0, -0.0004, 0.0005, 0.0015, 2.0005, 1e15, 1e20, -1e300, 5e-324, np.nan, 123456789.1235]
  values = np.concatenate([halves, special, np.random.default_rng(0).normal(0, 100, 5000)])
  ids = [f"sub-{i}" for i in range(len(values))]
  ids[3], ids[7], ids[11] = 'a, b', 'say "hi"', "line\nbreak"
  columns = {"id": np.asarray(ids), "x": values, "y": -values * 3.7, "flag": np.where(values > 0, "yes", "no")}
  plain = {k: (list(v) if v.dtype.kind == "U" else v) for k, v in columns.items()}
  for decimals in (3, 0, 1, 6, 12):
    assert format_rows(columns, decimals) == reference(plain, decimals), decimals
  assert format_rows({"id": pa.array(ids), "x": values}, 3) == reference({"id": ids, "x": values})
  full = format_rows(columns)  # in full: the same text but the numbers, which read back exactly
  np.testing.assert_array_equal(read_back(full, 1), values)
  np.testing.assert_array_equal(read_back(full, 2), -values * 3.7)
  assert [row[0] for row in csv.reader(io.StringIO(full.decode()))] == ids


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.floats(allow_infinity=False, width=64), min_size=1, max_size=50),
       text=st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6),
                     min_size=1, max_size=50),
       decimals=st.integers(0, 12))
def test_any_numbers_and_text(values, text, decimals):
  n = min(len(values), len(text))
  columns = {"t": np.asarray(text[:n], dtype=object).astype(str), "v": np.asarray(values[:n])}
  assert format_rows(columns, decimals) == reference({"t": text[:n], "v": columns["v"]}, decimals)
  cells = shortest(columns["v"]).to_pylist()  # in full: each number's text reads back as the same float64
  assert all(float(c) == v if c else v != v for c, v in zip(cells, columns["v"]))
  assert format_rows(columns) == reference({"t": text[:n], "v": cells})


def test_header_is_csv_writer_s():
  assert header_line(["id", "probability_a,b", "x"]) == b'id,"probability_a,b",x\n'


def test_cli_predict_output_equals_the_csv_writer_path(tmp_path):
  from flaxzoo.checkpoints import load_pretrained, predict
  from flaxzoo.datasets.brain_age import RAW_FILE, read_volume_table

  for name in ("brain_age_tissue", "brain_age_group"):
    out = tmp_path / f"{name}.csv"
    result = run_cli("predict", name, "--input", RAW_FILE, "--output", out, "--precision", "3")
    assert result.returncode == 0, result.stderr
    model, card = load_pretrained(name)
    predicted = predict(model, card, read_volume_table(RAW_FILE, need_age=False))
    ids = [str(i + 1) for i in range(652)]
    expected = header_line(["id", *predicted]) + reference({"id": ids, **{k: (list(v) if v.dtype.kind == "U" else v)
                                                                          for k, v in predicted.items()}})
    assert out.read_bytes() == expected


def test_predictions_in_chunks_are_the_whole_table_s_to_the_last_bit():
  """predict runs the model on fixed-size chunks; the numbers are those of `model(x)` on the whole table
  (the output before streaming), over more than one chunk."""
  from flaxzoo.checkpoints import load_pretrained
  from flaxzoo.checkpoints.prediction import CHUNK_ROWS, apply_in_chunks
  from flaxzoo.datasets import VolumeTable

  rng = np.random.default_rng(5)
  n = CHUNK_ROWS + 1234
  gm, wm, csf = rng.uniform(500, 800, n), rng.uniform(350, 500, n), rng.uniform(300, 600, n)
  table = VolumeTable(gm, wm, csf, gm + wm + csf, None)
  for name in ("brain_age_tissue", "brain_age_gm", "brain_age_group"):
    model, card = load_pretrained(name)
    x = card.preprocess(table)
    np.testing.assert_array_equal(apply_in_chunks(model, x), np.asarray(model(x), np.float64))
