"""brain_age: gray/white matter and CSF volumes from MRI, and age, of 652 people."""

from __future__ import annotations

import hashlib
import inspect

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from flaxzoo.datasets.brain_age.split import RAW_FILE, RAW_SHA256, VERSION, reference_split
from flaxzoo.datasets.brain_age.volumes import read_volume_table
from flaxzoo.datasets.tables import DataError


def sha256_of(path) -> str:
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


class Builder(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for brain_age: raw volumes (cm^3) and age (years)."""

  VERSION = tfds.core.Version(VERSION)
  RELEASE_NOTES = {"1.0.0": "Initial release: 652 people, reference 587/65 split (seed 13)."}
  # Class attributes so that a test can point a subclass at a tampered copy.
  RAW_FILE = RAW_FILE
  RAW_SHA256 = RAW_SHA256
  # TFDS locates this folder (README.md, CITATIONS.bib) through the resources
  # of the top-level package, which fails for the `flaxzoo` namespace package
  # in an editable install; the file's own path works for every install.
  pkg_dir_path = epath.Path(__file__).parent

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    return epath.Path(inspect.getfile(cls))

  def _info(self) -> tfds.core.DatasetInfo:
    # Encoded as raw bytes: TFDS stores plain float features as float32, which
    # would change the 3rd decimal of the reference preprocessing on some rows.
    volume = lambda doc: tfds.features.Tensor(
        shape=(), dtype=np.float64, encoding=tfds.features.Encoding.BYTES, doc=doc
    )
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "row": tfds.features.Scalar(np.int32, doc="0-based data row of brain_data.tsv"),
            "index": tfds.features.Scalar(np.int32, doc="position in the reference split order"),
            "gm": volume("gray matter volume, cm^3"),
            "wm": volume("white matter volume, cm^3"),
            "csf": volume("cerebrospinal fluid volume, cm^3"),
            "total": volume("total intracranial volume, cm^3"),
            "age": volume("age, years"),
        }),
        homepage="https://github.com/GoktugGuvercin/Machine-Learning-and-Optimization-Theory",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # The raw table ships with the package: nothing to download.
    actual = sha256_of(self.RAW_FILE)
    if actual != self.RAW_SHA256:
      raise DataError(
          f"{self.RAW_FILE}: checksum mismatch (sha256 {actual}, expected"
          f" {self.RAW_SHA256}); the raw table was modified or corrupted"
      )
    table = read_volume_table(self.RAW_FILE)
    train, test = reference_split(len(table))
    return {
        "train": self._generate_examples(table, train),
        "test": self._generate_examples(table, test),
    }

  def _generate_examples(self, table, rows):
    for index, row in enumerate(rows):
      row = int(row)
      yield row, {
          "row": row,
          "index": index,
          "gm": table.gm[row],
          "wm": table.wm[row],
          "csf": table.csf[row],
          "total": table.total[row],
          "age": table.age[row],
      }
