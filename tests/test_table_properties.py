"""The one table reader under hypothesis: random bytes never give a traceback or a hang, and any table
Python's `csv` module writes (quoting, BOM, CRLF, delimiter) reads back to the same numbers through the
training reader (`csv:` datasets) and the predict readers (named columns, volume tables)."""

import csv
import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flaxzoo.datasets import DataError, load_data, read_table, read_volume_table
from flaxzoo.datasets.preprocessing import Columns

SETTINGS = settings(max_examples=int(__import__("os").environ.get("FLAXZOO_HYPOTHESIS_EXAMPLES", 150)), deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(data=st.binary(max_size=400))
def test_random_bytes_give_a_table_or_one_data_error(tmp_path, data):
  path = tmp_path / "random.csv"
  path.write_bytes(data)
  for read in (read_table, read_volume_table, lambda p: read_volume_table(p, need_age=False)):
    try:
      read(path)
    except DataError as e:
      assert "\n" not in str(e) and str(path) in str(e)


@SETTINGS
@given(lines=st.lists(st.text(alphabet=st.sampled_from('ab1.,;\t"\r\n \ufeff-e5_x'), max_size=30), max_size=6))
def test_table_like_text_gives_a_table_or_one_data_error(tmp_path, lines):
  path = tmp_path / "t.csv"
  path.write_text("\n".join(lines), encoding="utf-8")
  try:
    table = read_table(path)
  except DataError as e:
    assert "\n" not in str(e)
  else:
    for column in table.header:
      try:
        values = table.numeric(column)
        assert np.all(np.isfinite(values))
      except DataError as e:
        assert "\n" not in str(e)


finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)
dialects = st.fixed_dictionaries({
    "delimiter": st.sampled_from([",", "\t", ";"]),
    "quoting": st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
    "lineterminator": st.sampled_from(["\n", "\r\n"]),
})


def write(path, header, rows, dialect, bom):
  buffer = io.StringIO()
  writer = csv.writer(buffer, **dialect)
  writer.writerow(header)
  writer.writerows(rows)
  path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode())


@SETTINGS
@given(values=st.lists(st.tuples(finite, finite, finite), min_size=3, max_size=25), dialect=dialects,
       bom=st.booleans())
def test_any_csv_module_table_reads_back_through_train_and_predict(tmp_path, values, dialect, bom):
  path = tmp_path / "t.csv"
  header = ["alpha", "beta", "y"]
  write(path, header, values, dialect, bom)
  expected = np.asarray(values, np.float64)
  # predict: the model's named input columns
  table, ids = Columns(features=("alpha", "beta"), label="y", task="regression").read_inputs(path)
  np.testing.assert_array_equal(table["alpha"], expected[:, 0])
  np.testing.assert_array_equal(table["beta"], expected[:, 1])
  assert ids == tuple(str(i + 1) for i in range(len(values)))
  # train: a csv: dataset, split into train and test
  data = load_data(f"csv:{path}", label="y", task="regression", standardize=False, test_fraction=0.3)
  for k, column in enumerate(header):
    both = np.concatenate([data.raw["train"][column], data.raw["test"][column]])
    np.testing.assert_array_equal(np.sort(both), np.sort(expected[:, k]))


volumes = st.tuples(st.floats(0, 1e4), st.floats(0, 1e4), st.floats(0, 1e4), st.floats(1, 1e4), st.floats(0, 120))


@SETTINGS
@given(rows=st.lists(volumes, min_size=1, max_size=15), dialect=dialects, bom=st.booleans(),
       names=st.sampled_from([["GM Vol", "WM Vol", "CSF Vol", "Total Vol", "Age"], ["gm", "wm", "csf", "tiv", "age"],
                              ["gray_matter", "white-matter", "CSF", "total volume", "AGE years"]]))
def test_any_csv_module_volume_table_reads_back_through_predict(tmp_path, rows, dialect, bom, names):
  rows = [(gm, wm, csf, gm + wm + csf + total, age) for gm, wm, csf, total, age in rows]  # a consistent total
  path = tmp_path / "v.csv"
  write(path, names, rows, dialect, bom)
  table = read_volume_table(path)
  expected = np.asarray(rows, np.float64)
  for k, field in enumerate(("gm", "wm", "csf", "total", "age")):
    np.testing.assert_array_equal(getattr(table, field), expected[:, k])


@SETTINGS
@given(body=st.lists(st.text(alphabet=st.sampled_from('a1.,;"\r\n -e5_'), max_size=20), max_size=8),
       header=st.sampled_from(["a,b,c", "a,b,c,", '"a",b,c', "a;b;c", "a\tb\tc", "\n\na,b,c"]))
def test_the_streaming_reader_agrees_with_the_reference_reader(tmp_path, body, header):
  """`stream_columns` (Arrow, a block at a time) reads what `read_table` reads, or fails with its error."""
  from flaxzoo.datasets.tables import stream_columns

  path = tmp_path / "t.csv"
  path.write_text(header + "\n" + "\n".join(body), encoding="utf-8")
  try:
    table = read_table(path)
    expected = {"a": table.numeric("a"), "b": table.numeric("b", blank_ok=True), "c": table.text("c")}
  except DataError as e:
    expected = str(e)
  try:
    blocks = list(stream_columns(path, numeric=("a",), optional=("b",), text=("c",)))
    got = {name: np.concatenate([np.asarray(b[name], np.float64) for b in blocks]) for name in "ab"}
    got["c"] = [str(v) for b in blocks for v in (b["c"].to_pylist() if hasattr(b["c"], "to_pylist") else b["c"])]
  except DataError as e:
    got = str(e)
  if isinstance(expected, str) or isinstance(got, str):
    assert got == expected
  else:
    np.testing.assert_array_equal(got["a"], expected["a"])
    np.testing.assert_array_equal(got["b"], expected["b"])
    assert got["c"] == expected["c"]
