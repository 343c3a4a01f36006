"""Reading volume tables: the reference file, and every kind of bad input."""

import numpy as np
import pytest

from flaxzoo.datasets import DataError, read_volume_table
from flaxzoo.datasets.brain_age.brain_age_dataset_builder import RAW_FILE

HEADER = "GM Vol \t WM Vol \t CSF Vol \t Total Vol \t Age \n"
GOOD = "716.28\t425.44\t493.752\t1635.472\t24\n758.296\t425.112\t311.584\t1494.992\t18\n"


def write(tmp_path, text, name="table.tsv"):
  path = tmp_path / name
  path.write_text(text)
  return path


def test_reads_the_reference_table():
  table = read_volume_table(RAW_FILE)
  assert len(table) == 652
  assert table.gm[0] == 716.28 and table.total[0] == 1635.472 and table.age[0] == 24
  assert table.age[-1] == 86
  np.testing.assert_allclose(table.gm + table.wm + table.csf, table.total, atol=1e-9)


def test_headers_match_case_and_space_insensitively_and_csv_works(tmp_path):
  path = write(tmp_path, "gm_vol,WM VOL,csf,total_vol,AGE\n1,2,3,6,40\n", "t.csv")
  table = read_volume_table(path)
  assert (table.gm[0], table.wm[0], table.csf[0], table.total[0], table.age[0]) == (1, 2, 3, 6, 40)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", r"table.tsv: file is empty"),
        ("\n\n", r"table.tsv: file is empty"),
        ("GM Vol\tWM Vol\tTotal Vol\tAge\n1\t2\t3\t4\n", r"table.tsv, line 1: missing column 'csf'"),
        (HEADER, r"table.tsv: no data rows"),
        (HEADER + GOOD + "716.28\tabc\t493.752\t1635.472\t24\n", r"table.tsv, line 4, column 'WM Vol': not a number: 'abc'"),
        (HEADER + "716.28\t425.44\tnan\t1635.472\t24\n", r"table.tsv, line 2, column 'CSF Vol': value is not finite"),
        (HEADER + "716.28\t425.44\t493.752\tinf\t24\n", r"table.tsv, line 2, column 'Total Vol': value is not finite"),
        (HEADER + GOOD + "-716.28\t425.44\t493.752\t1635.472\t24\n", r"table.tsv, line 4, column 'GM Vol': must not be negative"),
        (HEADER + "0\t0\t0\t0\t24\n", r"table.tsv, line 2, column 'Total Vol': total volume must be positive"),
        (HEADER + "716.28\t425.44\t1635.472\t24\n", r"table.tsv, line 2: expected 5 fields, found 4"),
        (HEADER + "716.28\t425.44\t493.752\t1635.472\t\n", r"table.tsv, line 2, column 'Age': not a number: ''"),
    ],
    ids=["empty", "blank-lines", "missing-column", "header-only", "non-numeric", "nan", "inf",
         "negative", "zero-total", "short-row", "empty-cell"],
)
def test_bad_tables_raise_one_line_naming_file_line_and_column(tmp_path, text, expected):
  path = write(tmp_path, text)
  with pytest.raises(DataError, match=expected) as info:
    read_volume_table(path)
  assert "\n" not in str(info.value)
  assert str(path) in str(info.value)


def test_missing_file_and_binary_file(tmp_path):
  with pytest.raises(DataError, match="no such file"):
    read_volume_table(tmp_path / "absent.tsv")
  path = tmp_path / "binary.tsv"
  path.write_bytes(b"\xff\xfe\x00garbage")
  with pytest.raises(DataError, match="not a UTF-8 text table"):
    read_volume_table(path)
  with pytest.raises(DataError, match="is a directory, not a table"):
    read_volume_table(tmp_path)
