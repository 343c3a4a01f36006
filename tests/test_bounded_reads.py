"""What a folder's own metadata says bounds what flaxzoo reads from it: a FIFO where a card or an array file
should be, or a file padded to 10 GB, is refused in one line at once (load, `flaxzoo predict`, scikit-learn's
`load`), with or without the export's manifest; a crafted card is one line, never a traceback."""

import json
import os
import time

import numpy as np
import pytest
from conftest import one_line_error, run_cli

from flaxzoo.checkpoints import CheckpointError, load_pretrained


@pytest.fixture
def export(tmp_path):
  from flaxzoo.sklearn import LinearClassifier, save

  rng = np.random.default_rng(0)
  x = rng.normal(size=(80, 3))
  folder = save(LinearClassifier().fit(x, (x[:, 0] > 0).astype(int)), tmp_path / "exports", "model")
  (tmp_path / "rows.csv").write_text("x0,x1,x2\n0.1,0.2,0.3\n")
  return folder


def _refused_at_once(folder, tmp_path, *fragments):
  from flaxzoo.sklearn import load

  for read in (load_pretrained, load):
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as e:
      read(folder)
    assert time.perf_counter() - start < 1.0
    assert all(f in str(e.value) for f in fragments) and "\n" not in str(e.value)
  start = time.perf_counter()
  one_line_error(run_cli("predict", folder, "--input", tmp_path / "rows.csv"), *fragments)
  assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("manifest", [True, False], ids=["manifest", "no-manifest"])
def test_a_fifo_card_is_refused_at_once(export, tmp_path, manifest):
  """It hung `load` and `predict` forever."""
  if not manifest:
    (export / "manifest.json").unlink()
  (export / "card.json").unlink()
  os.mkfifo(export / "card.json")
  _refused_at_once(export, tmp_path, "card.json", "not a regular file")


@pytest.mark.parametrize("manifest", [True, False], ids=["manifest", "no-manifest"])
def test_an_array_file_padded_to_10_gb_is_refused_unread(export, tmp_path, manifest):
  """A sparse 10 GB file was read whole (RSS 10.7 GB) before its digest was compared."""
  if not manifest:
    (export / "manifest.json").unlink()
  data = max((p for p in (export / "params").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
  os.truncate(data, 10 << 30)  # sparse: no disk used
  _refused_at_once(export, tmp_path, "params", "not read")


@pytest.mark.parametrize(("change", "fragment"), [
    (lambda c: c.update(recipe=[1, 2]), "'recipe' is not what a card holds there"),
    (lambda c: c["recipe"].update(step=10**400), "'recipe' is not what a card holds there"),
    (lambda c: c["recipe"].update(labels=[0]), "'recipe.labels' must list one label for each of 'classes'"),
    (lambda c: c["sklearn"].update(params=[]), "'sklearn' is not what a card holds there"),
    (lambda c: c["sklearn"]["params"].update(C={"tuple": 3}), "its 'sklearn' entry cannot be read back"),
    (lambda c: c["sklearn"].update({"class": "os.system"}), "is not one of flaxzoo's estimators"),
    (lambda c: c["sklearn"]["attributes"].update(__class__=1), "is not a fitted attribute"),
])
def test_a_crafted_card_is_one_line(export, tmp_path, change, fragment):
  from flaxzoo.sklearn import load

  (export / "manifest.json").unlink()  # an export without a manifest: its card is read as it is
  card = json.loads((export / "card.json").read_text())
  change(card)
  (export / "card.json").write_text(json.dumps(card))
  with pytest.raises(CheckpointError, match=fragment.replace("(", r"\(").replace(")", r"\)")) as e:
    load(export)
  assert "\n" not in str(e.value)
