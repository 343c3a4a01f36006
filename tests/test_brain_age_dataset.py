"""The brain_age TFDS builder: splits, features, checksum, read without TensorFlow."""

import shutil
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from flaxzoo.datasets import DataError, load_split, prepare, read_volume_table
from flaxzoo.datasets.brain_age import reference_split
from flaxzoo.datasets.brain_age.brain_age_dataset_builder import RAW_FILE, Builder


def test_split_sizes_and_reference_order(brain_age):
  train, test = brain_age["train"], brain_age["test"]
  assert len(train["row"]) == 587 and len(test["row"]) == 65
  # DESIGN.md: the test split begins with rows 526, 366, 596, 13, 455.
  assert test["row"][:5].tolist() == [526, 366, 596, 13, 455]
  assert train["index"].tolist() == list(range(587))
  assert set(train["row"]).isdisjoint(test["row"])
  assert sorted(np.concatenate([train["row"], test["row"]])) == list(range(652))


def test_split_matches_permuting_the_rows_with_the_legacy_prng():
  import jax

  with jax.threefry_partitionable(False):
    k1, _ = jax.random.split(jax.random.PRNGKey(13))
    rows = np.arange(652.0)[:, None].repeat(2, 1)
    permuted = np.asarray(jax.random.permutation(k1, rows))  # permute rows, not indices
  train, test = reference_split(652)
  np.testing.assert_array_equal(permuted[:587, 0], train)
  np.testing.assert_array_equal(permuted[587:, 0], test)


def test_features_are_raw_volumes_in_float64(brain_age):
  table = read_volume_table(RAW_FILE)
  train = brain_age["train"]
  for key in ("gm", "wm", "csf", "total", "age"):
    assert train[key].dtype == np.float64 and train[key].shape == (587,)
    np.testing.assert_array_equal(train[key], getattr(table, key)[train["row"]])


def test_info_has_readme_citation_and_version(data_dir):
  builder = Builder(data_dir=str(data_dir), file_format="array_record")
  assert builder.info.splits["train"].num_examples == 587
  assert builder.info.splits["test"].num_examples == 65
  assert "652 people" in builder.info.description
  assert "Guvercin" in builder.info.citation
  assert str(builder.info.version) == "1.0.0"


def test_reads_by_name_with_tfds_data_source_and_without_tensorflow(data_dir):
  source = tfds.data_source("brain_age", split="test", data_dir=str(data_dir), download=False)
  assert len(source) == 65
  assert sorted(source[i]["row"] for i in range(65)) == sorted(reference_split(652)[1])
  assert "tensorflow" not in sys.modules


def test_builds_on_first_use_into_the_data_dir(tmp_path):
  data = load_split("brain_age", "test", tmp_path / "fresh")
  assert len(data["row"]) == 65
  assert list((tmp_path / "fresh" / "brain_age" / "1.0.0").glob("*.array_record*"))


def test_data_dir_defaults_to_tfds_data_dir(tmp_path, monkeypatch):
  from flaxzoo.datasets import default_data_dir

  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "env"))
  assert default_data_dir() == tmp_path / "env"
  monkeypatch.delenv("TFDS_DATA_DIR")
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
  assert default_data_dir() == tmp_path / "cache" / "flaxzoo" / "tensorflow_datasets"


class _FromFile(Builder, skip_registration=True):
  """The real builder reading another copy of the raw table."""

  RAW_FILE = None


def _builder_for(raw_file, data_dir):
  builder_cls = type("TamperedBrainAge", (_FromFile,), {"RAW_FILE": raw_file}, skip_registration=True)
  return builder_cls(data_dir=str(data_dir), file_format="array_record")


def test_checksum_mismatch_is_detected_and_nothing_is_written(tmp_path):
  tampered = tmp_path / "brain_data.tsv"
  shutil.copy(RAW_FILE, tampered)
  with open(tampered, "a") as f:
    f.write("700\t400\t300\t1400\t30\n")
  builder = _builder_for(tampered, tmp_path / "data")
  with pytest.raises(DataError, match=r"brain_data.tsv: checksum mismatch \(sha256 [0-9a-f]{64}, expected 2145cce7"):
    builder.download_and_prepare()
  assert not builder.is_prepared()


def test_builder_reports_a_bad_cell_by_file_and_line(tmp_path):
  bad = tmp_path / "brain_data.tsv"
  lines = RAW_FILE.read_text().splitlines()
  lines[10] = lines[10].replace("\t", "\tx", 1)
  bad.write_text("\n".join(lines) + "\n")
  builder = _builder_for(bad, tmp_path / "data")
  builder.RAW_SHA256 = __import__("hashlib").sha256(bad.read_bytes()).hexdigest()
  with pytest.raises(DataError, match=r"brain_data.tsv, line 11, column 'WM Vol': not a number"):
    builder.download_and_prepare()


def test_unwritable_data_dir_is_a_clear_error(tmp_path):
  not_a_dir = tmp_path / "file"
  not_a_dir.write_text("a file where the data dir should be")
  with pytest.raises(DataError, match=r"data dir .*file/tfds is not writable"):
    prepare("brain_age", not_a_dir / "tfds")
  assert not_a_dir.read_text() == "a file where the data dir should be"


def test_unknown_dataset_and_split(data_dir):
  with pytest.raises(DataError, match="unknown dataset 'mnist'; known: brain_age"):
    load_split("mnist", "train", data_dir)
  with pytest.raises(DataError, match="has no split 'validation'; splits: train, test"):
    load_split("brain_age", "validation", data_dir)
