"""Training on your own data: `csv:PATH` and `tfds:NAME` end to end through the CLI,
and the errors a bad file or name gives."""

import io
import json
import os

import numpy as np
import PIL.Image
import pytest
from conftest import run_cli

from flaxzoo.datasets import DataError
from flaxzoo.datasets.sources import load_data


def write_csv(path, header, rows, delimiter=","):
  path.write_text("\n".join([delimiter.join(header)] + [delimiter.join(map(str, r)) for r in rows]) + "\n")
  return path


@pytest.fixture
def regression_csv(tmp_path):
  # Columns on wildly different scales; y = 3 a - 0.002 b + 5 + noise.
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=200), rng.normal(size=200) * 1000 + 5000
  y = 3 * a - 0.002 * b + 5 + rng.normal(size=200) * 0.1
  rows = [(f"{i}", f"{a[i]:.6f}", f"{b[i]:.3f}", f"{y[i]:.6f}") for i in range(200)]
  return write_csv(tmp_path / "reg.csv", ["id", "a", "b", "y"], rows)


@pytest.fixture
def classes_tsv(tmp_path):
  rng = np.random.default_rng(1)
  names = np.array(["cat", "dog", "eel"])
  k = rng.integers(0, 3, 300)
  x1 = np.array([0.0, 4.0, -4.0])[k] + rng.normal(size=300)
  x2 = (np.array([1.0, -1.0, 1.0])[k] + rng.normal(size=300)) * 0.001
  rows = [(f"{x1[i]:.5f}", f"{x2[i]:.7f}", names[k[i]]) for i in range(300)]
  return write_csv(tmp_path / "animals.tsv", ["x1", "x2", "species"], rows, "\t")


def test_csv_regression_end_to_end(regression_csv, tmp_path):
  workdir = tmp_path / "run"
  result = run_cli("train", "linear", "--dataset", f"csv:{regression_csv}", "--label", "y",
                   "--features", "a,b", "--workdir", workdir, "--steps", "500")
  assert result.returncode == 0, result.stderr
  results = json.loads((workdir / "results.json").read_text())
  assert results["task"] == "regression" and results["train"]["count"] == 160 and results["test"]["count"] == 40
  # Standardised by default, so plain SGD reaches the least-squares fit of raw columns 5 orders apart.
  data = load_data(f"csv:{regression_csv}", label="y", features="a,b")
  x, y = data.raw["train"]["a"], data.raw["train"]["y"]
  design = np.c_[x, data.raw["train"]["b"], np.ones_like(x)]
  optimum = np.mean((design @ np.linalg.lstsq(design, y, rcond=None)[0] - y) ** 2)
  assert results["train"]["mse"] == pytest.approx(optimum, rel=1e-3)
  assert results["preprocessing"]["params"]["mean"][1] == pytest.approx(np.mean(data.raw["train"]["b"]))
  # The workdir predicts raw rows with the recorded standardisation.
  out = tmp_path / "pred.csv"
  predicted = run_cli("predict", workdir, "--input", regression_csv, "--output", out)
  assert predicted.returncode == 0, predicted.stderr
  lines = out.read_text().splitlines()
  assert lines[0] == "id,predicted,outside_training_range" and len(lines) == 201
  got = np.array([float(line.split(",")[1]) for line in lines[1:]])
  table = np.loadtxt(regression_csv, delimiter=",", skiprows=1)
  assert np.abs(got - table[:, 3]).mean() < 0.2
  # Without standardisation the same run does not get there.
  raw_run = run_cli("train", "linear", "--dataset", f"csv:{regression_csv}", "--label", "y", "--features", "a,b",
                    "--workdir", tmp_path / "raw", "--steps", "500", "--no-standardize", "--lr", "1e-8")
  assert raw_run.returncode == 0, raw_run.stderr
  assert json.loads((tmp_path / "raw" / "results.json").read_text())["train"]["mse"] > 10 * optimum


def test_csv_classification_end_to_end(classes_tsv, tmp_path):
  workdir = tmp_path / "run"
  result = run_cli("train", "linear", "--dataset", f"csv:{classes_tsv}", "--label", "species",
                   "--workdir", workdir, "--steps", "300", "--test-fraction", "0.25")
  assert result.returncode == 0, result.stderr
  assert "accuracy" in result.stdout and "confusion" in result.stdout
  results = json.loads((workdir / "results.json").read_text())
  assert results["task"] == "classification" and results["classes"] == ["cat", "dog", "eel"]
  assert results["config"]["loss"] is None and results["test"]["count"] == 75
  assert results["test"]["accuracy"] > 0.85
  assert np.shape(results["params"]["linear/kernel"]) == (2, 3)  # softmax: one logit per class
  out = run_cli("predict", workdir, "--input", classes_tsv)
  assert out.returncode == 0, out.stderr
  header, first = out.stdout.splitlines()[:2]
  assert header == "id,predicted_class,probability_cat,probability_dog,probability_eel,outside_training_range"
  assert first.split(",")[1] in ("cat", "dog", "eel")


def test_integer_labels_infer_classification_and_task_overrides(tmp_path):
  rows = [(i % 7, i % 2) for i in range(40)]
  path = write_csv(tmp_path / "t.csv", ["x", "y"], rows)
  assert load_data(f"csv:{path}", label="y").task == "classification"
  assert load_data(f"csv:{path}", label="y", task="regression").task == "regression"
  floats = write_csv(tmp_path / "f.csv", ["x", "y"], [(i, i * 0.37) for i in range(40)])
  assert load_data(f"csv:{floats}", label="y").task == "regression"
  # The split is seeded: the same seed, the same rows.
  a, b = (load_data(f"csv:{floats}", label="y", split_seed=s).raw["test"]["x"] for s in (3, 3))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, load_data(f"csv:{floats}", label="y", split_seed=4).raw["test"]["x"])


@pytest.mark.parametrize("content, args, message", [
    ("a,b\n1,2\n3,4\n", ["--label", "y"], "no label column 'y'; columns: a, b"),
    ("a,y\n1,0\n2,0\n3,0\n4,0\n5,0\n", ["--label", "y"], "one class only ('0')"),
    ("a,b,y\n1,2,0\n3,x,1\n", ["--label", "y"], "line 3, column 'b': not a number: 'x'"),
    ("a,y\n1,p\n2,q\n3,r\n4,s\n5,t\n", ["--label", "y"], "5 classes but the train split has only 4 rows"),
    ("", ["--label", "y"], "file is empty"),
    ("a,y\n", ["--label", "y"], "no data rows"),
    ("a,y\n1,0\n2,1\n", [], "pass --label COLUMN; columns: a, y"),
    ("a,y\n1,0\n2,1\n", ["--label", "y", "--features", "a,c"], "no feature column 'c'; columns: a, y"),
    ("a,y\n1,x\n2,y\n3,x\n", ["--label", "y", "--task", "regression"], "column 'y': not a number: 'x'"),
])
def test_bad_csv_is_one_line_error(tmp_path, content, args, message):
  path = tmp_path / "bad.csv"
  path.write_text(content)
  result = run_cli("train", "linear", "--dataset", f"csv:{path}", *args, "--workdir", tmp_path / "run")
  assert result.returncode == 2
  assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
  assert message in result.stderr and str(path) in result.stderr
  assert not (tmp_path / "run" / "results.json").exists()


@pytest.mark.parametrize("args, message", [
    (["brain_age_gm", "--features", "xyz"], "brain_age: unknown feature set 'xyz'; known: gm, tissue"),
    (["brain_age_gm", "--label", "height"], "brain_age: unknown label 'height'; known: age, age_group"),
    (["brain_age_gm", "--task", "classification"], "brain_age label 'age' is a regression target"),
    (["brain_age_tissue", "--shuffle", "rows", "--parallel", "pmap"], "--shuffle rows needs --parallel none or mesh"),
])
def test_bad_brain_age_options_are_one_line_errors(args, message, tmp_path, data_dir):
  result = run_cli("train", *args, "--workdir", tmp_path, "--data-dir", data_dir)
  assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_a_missing_dataset_option_is_a_clear_error(tmp_path):
  result = run_cli("train", "linear_classifier", "--workdir", tmp_path)
  assert result.returncode == 2 and "--dataset csv:PATH --label COLUMN" in result.stderr


# A tiny image dataset with a test split, prepared by the test (no download).
TINY_NAME = "tiny_shapes"


def prepare_tiny_shapes(data_dir):
  import tensorflow_datasets as tfds
  from etils import epath

  class TinyShapes(tfds.core.GeneratorBasedBuilder):
    """4x4 images: a bright top half (class 'top') or bottom half ('bottom')."""

    VERSION = tfds.core.Version("1.0.0")
    name = TINY_NAME
    pkg_dir_path = epath.Path(__file__).parent  # TFDS looks for the builder's package otherwise

    def _info(self):
      return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
          "image": tfds.features.Image(shape=(4, 4, 1)),
          "label": tfds.features.ClassLabel(names=["top", "bottom"]),
      }))

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples(0, 120), "test": self._generate_examples(1, 40)}

    def _generate_examples(self, seed, n):
      rng = np.random.default_rng(seed)
      for i in range(n):
        label = int(rng.integers(0, 2))
        image = rng.integers(0, 120, (4, 4, 1)).astype(np.uint8)
        image[2 * label:2 * label + 2] += 120
        # Encoding a PNG through TFDS needs TensorFlow; a PNG made by Pillow does not.
        png = io.BytesIO()
        PIL.Image.fromarray(image[:, :, 0]).save(png, format="PNG")
        yield i, {"image": png.getvalue(), "label": label}

  TinyShapes(data_dir=os.fspath(data_dir), file_format="array_record").download_and_prepare()


def test_tfds_dataset_end_to_end(tmp_path):
  data_dir = tmp_path / "tfds"
  prepare_tiny_shapes(data_dir)
  data = load_data(f"tfds:{TINY_NAME}", data_dir=data_dir)
  x, y = data.splits["train"]
  assert x.shape == (120, 16) and x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1  # flattened, / 255
  assert data.class_names == ("top", "bottom") and data.splits["test"][0].shape == (40, 16)
  workdir = tmp_path / "run"
  result = run_cli("train", "linear_classifier", "--dataset", f"tfds:{TINY_NAME}", "--data-dir", data_dir,
                   "--workdir", workdir, "--steps", "200")
  assert result.returncode == 0, result.stderr
  results = json.loads((workdir / "results.json").read_text())
  assert results["test"]["count"] == 40 and results["test"]["accuracy"] > 0.9


def test_tfds_dataset_not_prepared_says_how(tmp_path):
  with pytest.raises(DataError, match="not prepared in .*--download"):
    load_data("tfds:mnist", data_dir=tmp_path)
  assert not any(tmp_path.iterdir())  # nothing downloaded or created
  result = run_cli("train", "linear", "--dataset", "tfds:mnist/foo", "--data-dir", tmp_path,
                   "--workdir", tmp_path / "run")
  assert result.returncode == 2 and "tfds:mnist/foo: not prepared" in result.stderr


@pytest.fixture
def counts_csv(tmp_path):
  # Counts with log-mean 0.5 + 0.3 a - 0.2 b + 0.1 c (seed 0): integers, which alone would read as classes.
  rng = np.random.default_rng(0)
  x = rng.normal(size=(600, 3))
  y = rng.poisson(np.exp(0.5 + x @ [0.3, -0.2, 0.1]))
  rows = [(f"{r[0]:.6f}", f"{r[1]:.6f}", f"{r[2]:.6f}", int(c)) for r, c in zip(x, y)]
  return write_csv(tmp_path / "counts.csv", ["a", "b", "c", "count"], rows)


@pytest.mark.slow  # (8 s: two trainings, an export, a prediction)
def test_a_poisson_glm_trains_exports_and_predicts_means_through_the_cli(counts_csv, tmp_path):
  """`--family poisson`: regression (not the integer labels' classification), the zoo's glm by Newton, metrics
  and predictions on the counts' scale (exp of the log means), a card that says its link; `--penalty l1` puts
  exact zeros in the weights; a loss parameter out of range and a power without its family are one-line errors."""
  from sklearn.linear_model import PoissonRegressor

  workdir = tmp_path / "run"
  result = run_cli("train", "linear", "--dataset", f"csv:{counts_csv}", "--label", "count", "--family", "poisson",
                   "--solver", "auto", "--workdir", workdir, "--no-standardize")
  assert result.returncode == 0, result.stderr
  assert "the newton solver" in result.stderr
  results = json.loads((workdir / "results.json").read_text())
  assert results["task"] == "regression"
  data = load_data(f"csv:{counts_csv}", label="count", task="regression", standardize=False)
  x, y = data.splits["train"]
  reference = PoissonRegressor(alpha=0.0, tol=1e-10).fit(x.astype(np.float64), y)
  assert results["train"]["mae"] == pytest.approx(np.mean(np.abs(reference.predict(x) - y)), rel=1e-4)
  exported = run_cli("export", "--workdir", workdir, "--name", "counts", "--out", tmp_path / "out")
  assert exported.returncode == 0, exported.stderr
  assert json.loads((tmp_path / "out" / "counts" / "card.json").read_text())["link"] == "log"
  out = tmp_path / "pred.csv"
  predicted = run_cli("predict", tmp_path / "out" / "counts", "--input", counts_csv, "--output", out)
  assert predicted.returncode == 0, predicted.stderr
  got = np.array([float(line.split(",")[1]) for line in out.read_text().splitlines()[1:]])
  table = np.loadtxt(counts_csv, delimiter=",", skiprows=1)
  np.testing.assert_allclose(got, reference.predict(table[:, :3]), rtol=1e-4)
  lasso = run_cli("train", "linear", "--dataset", f"csv:{counts_csv}", "--label", "count", "--family", "poisson",
                  "--solver", "auto", "--penalty", "l1", "--l2", "0.02", "--workdir", tmp_path / "l1")
  assert lasso.returncode == 0, lasso.stderr
  negative = write_csv(tmp_path / "negative.csv", ["a", "y"], [(f"{v:.3f}", f"{v - 1:.3f}") for v in range(5)] * 10)
  for solver in ("auto", "optax"):  # the exact path and the optax path: one line before any training
    bad = run_cli("train", "linear", "--dataset", f"csv:{negative}", "--label", "y", "--family", "poisson",
                  "--solver", solver, "--workdir", tmp_path / "negative")
    assert bad.returncode != 0 and "the poisson loss needs labels >= 0, got a minimum of -1" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
  for args, message in ((("--loss", "tweedie:inf"), "POWER a finite decimal number >= 1"),
                        (("--power", "1.5"), "--power is --family tweedie's"),
                        (("--family", "tweedie"), "needs --power")):
    bad = run_cli("train", "linear", "--dataset", f"csv:{counts_csv}", "--label", "count", *args,
                  "--workdir", tmp_path / "bad")
    assert bad.returncode != 0 and message in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
