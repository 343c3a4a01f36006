"""A newcomer's first hour: what they met, each as it should be."""

import os

import numpy as np
import pytest
from conftest import one_line_error, run_cli


def test_the_results_table_keeps_large_numbers_apart():
  """The houses example printed `361072148.48000019001.898549...`: each column is as wide as its widest entry."""
  import contextlib
  import io

  from flaxzoo.experiments.cli.output import _print_metrics

  results = {split: {"mse": 361072148.48, "rmse": 19001.898549, "mae": 15075.9, "r2": 0.98796} for split in
             ("train", "test")}
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    _print_metrics(results, ["train", "test"])
  row = out.getvalue().splitlines()[1].split()
  assert row[0] == "train" and len(row) == 5
  assert [float(v) for v in row[1:]] == pytest.approx([361072148.48, 19001.898549, 15075.9, 0.98796], rel=1e-5)


def _csv(path, rows):
  path.write_text("a,y\n" + "".join(f"{a},{y}\n" for a, y in rows))
  return path


def test_a_run_says_its_task_first_and_a_count_label_is_read_as_classes_unless_told(tmp_path):
  counts = _csv(tmp_path / "counts.csv", [(i, i % 11) for i in range(60)])
  result = run_cli("train", "linear", "--dataset", f"csv:{counts}", "--label", "y", "--steps", "5",
                   "--workdir", tmp_path / "run")
  assert result.returncode == 0, result.stderr
  first = result.stderr.splitlines()[0]
  assert first.startswith("linear: classification of 11 classes (integer labels: --task regression for a number)")
  again = run_cli("train", "linear", "--dataset", f"csv:{counts}", "--label", "y", "--steps", "5", "--task",
                  "regression", "--workdir", tmp_path / "again")
  assert again.stderr.splitlines()[0].startswith("linear: regression;")


def test_a_run_refused_before_its_first_output_leaves_no_workdir(tmp_path):
  for command in ("train", "sweep"):
    result = run_cli(command, "linear", "--dataset", f"csv:{tmp_path / 'missing.csv'}", "--label", "y",
                     "--workdir", tmp_path / command)
    one_line_error(result, "missing.csv")
    assert not (tmp_path / command).exists()
  kept = tmp_path / "kept"
  kept.mkdir()
  run_cli("train", "linear", "--dataset", f"csv:{tmp_path / 'missing.csv'}", "--label", "y", "--workdir", kept)
  assert kept.is_dir()  # a folder that was there before stays


def test_sweep_takes_trains_output_flags(tmp_path):
  table = _csv(tmp_path / "t.csv", [(i / 10, 2 * i / 10 + (i % 3)) for i in range(60)])
  result = run_cli("sweep", "linear", "--dataset", f"csv:{table}", "--label", "y", "--steps", "20", "--folds", "2",
                   "--refit", "--no-plots", "--no-tensorboard", "--workdir", tmp_path / "sweep")
  assert result.returncode == 0, result.stderr
  assert (tmp_path / "sweep" / "best" / "results.json").is_file()
  assert not (tmp_path / "sweep" / "best" / "tb").exists() and not (tmp_path / "sweep" / "best" / "plots").exists()


def test_a_sweep_without_an_optimizer_is_the_exact_solvers_or_one_line():
  import optax  # noqa: F401

  from flaxzoo.trainers import Sweep
  from flaxzoo.zoo import create_model

  x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
  models = [create_model("linear_regression", in_features=3, seed=s) for s in range(2)]
  history = Sweep(models, None, solver="auto").fit((x, x @ np.ones((3, 1), np.float32)), steps=10)
  assert history.converged.all()
  with pytest.raises(ValueError, match="optimizer is None: give an optax optimizer function"):
    Sweep(models, None)


def test_predict_on_an_array_and_a_blank_age_say_the_way_on(tmp_path):
  from flaxzoo.checkpoints import load_pretrained, predict
  from flaxzoo.datasets import DataError, read_volume_table

  model, card = load_pretrained("brain_age_tissue")
  with pytest.raises(TypeError, match="an array's columns have no names"):
    predict(model, card, np.ones((3, 4)))
  table = tmp_path / "people.csv"
  table.write_text("id,GM Vol,WM Vol,CSF Vol,Total Vol,Age\nsub-1,716.28,425.44,493.752,1635.472,\n")
  with pytest.raises(DataError, match=r"line 2, column 'Age': not a number: '' \(a blank age: need_age=False"):
    read_volume_table(table)
  assert np.isnan(read_volume_table(table, need_age=False).age[0])


def test_an_exports_readme_loads_as_written(tmp_path):
  """The README an export writes showed load_pretrained("visits_model"), which looks for a shipped name."""
  from flaxzoo.sklearn import LinearRegression, save

  x = np.random.default_rng(0).normal(size=(30, 2))
  folder = save(LinearRegression().fit(x, x @ [1.0, 2.0]), tmp_path, "visits_model")
  line = next(line for line in (folder / "README.md").read_text().splitlines() if "load_pretrained(" in line
              and "=" in line)
  cwd = os.getcwd()
  os.chdir(tmp_path)
  try:
    from flaxzoo.checkpoints import load_pretrained

    scope = {"load_pretrained": load_pretrained}
    exec(line.split("#")[0].strip(), scope)  # noqa: S102 - the README's own line
  finally:
    os.chdir(cwd)
  assert scope["card"].name == "visits_model"
