"""Shipped checkpoints: cards whose metrics are recomputed from the arrays, loading
offline from the installed package, predicting tables, exporting, bad input."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import run_cli

from flaxzoo.checkpoints import list_pretrained, load_pretrained, predict
from flaxzoo.datasets import TissueFractions, read_volume_table
from flaxzoo.datasets.brain_age.brain_age_dataset_builder import RAW_FILE
from flaxzoo.zoo import UnknownNameError

SHIPPED = ["brain_age_gm", "brain_age_gm_lstsq", "brain_age_tissue"]  # regression
CLASSIFIERS = ["brain_age_group"]


def test_the_package_ships_the_brain_age_models():
  assert list_pretrained() == sorted(SHIPPED + CLASSIFIERS) == list_pretrained("brain_age*")
  from flaxzoo.checkpoints.pretrained import weights_dir

  if os.environ.get("CI") == "true":  # .ci/run installs the wheel, not the repo: the files are package data
    assert "site-packages" in str(weights_dir())


@pytest.mark.parametrize("name", SHIPPED)
def test_card_metrics_are_recomputed_from_the_arrays(name, brain_age):
  model, card = load_pretrained(name)
  w = np.asarray(model.linear.kernel[...], np.float64)
  b = np.asarray(model.linear.bias[...], np.float64)
  pre = TissueFractions(**card.data["preprocessing"]["params"])
  bias = card.data["bias_correction"]
  for split in ("train", "test"):
    raw = brain_age[split]
    x, _ = pre(raw)
    predicted = (x.astype(np.float64) @ w + b)[:, 0] * pre.label_scale
    age = raw["age"]
    gap = predicted - age
    m = card.metrics[split]
    assert m["count"] == len(age)
    np.testing.assert_allclose(m["mae_years"], np.mean(np.abs(gap)), rtol=1e-5)
    np.testing.assert_allclose(m["rmse_years"], np.sqrt(np.mean(gap**2)), rtol=1e-5)
    np.testing.assert_allclose(m["r2"], 1 - np.sum(gap**2) / np.sum((age - age.mean()) ** 2), rtol=1e-5)
    np.testing.assert_allclose(m["pearson_r"], np.corrcoef(predicted, age)[0, 1], rtol=1e-5)
    np.testing.assert_allclose(m["mean_gap_years"], gap.mean(), atol=1e-4)
    corrected = gap - (bias["slope"] * age + bias["intercept"])
    np.testing.assert_allclose(m["mean_corrected_gap_years"], corrected.mean(), atol=1e-4)
  # The bias fit is the training split's gap-on-age line: its corrected gap averages 0.
  assert abs(card.metrics["train"]["mean_corrected_gap_years"]) < 1e-6
  assert card.data["dataset"]["sha256"] == "2145cce715e1cd033bd493d152844977df1fed7db7887e09e70b3547797a27b7"


@pytest.mark.parametrize("name", SHIPPED + CLASSIFIERS)
def test_cards_carry_a_bootstrap_interval_and_the_cross_validation_recomputed_here(name, data_dir):
  from flaxzoo.checkpoints.card import bootstrap_interval
  from flaxzoo.datasets.sources import load_data
  from flaxzoo.experiments import get_experiment
  from flaxzoo.experiments.sweep import cross_validate

  model, card = load_pretrained(name)
  config = get_experiment(name).replace(steps=card.data["recipe"]["step"])
  data = load_data("brain_age", features=config.features, label=config.label, standardize=config.standardize,
                   data_dir=data_dir)
  x, y = data.splits["test"]
  outputs = np.asarray(model(x), np.float64)[:, 0]
  if name in CLASSIFIERS:
    per_row, headline = (outputs > 0) == y, card.metrics["test"]["accuracy"]
  else:
    per_row, headline = np.abs(outputs - y) * 100, card.metrics["test"]["mae_years"]
  boot = card.data["test_bootstrap"]
  expected = bootstrap_interval(per_row)
  assert boot["value"] == pytest.approx(headline, rel=1e-6) == expected["value"]
  assert boot["ci95"] == pytest.approx(expected["ci95"], rel=1e-6)
  assert boot["ci95"][0] < boot["value"] < boot["ci95"][1]
  cv = card.data["cross_validation"]
  assert cv["folds"] == 10 and cv["rows"] == len(data.splits["train"][1])
  import jax

  with jax.numpy_dtype_promotion("standard"):  # optax's Adam (brain_age_gm_lstsq) mixes int32 and float
    again = cross_validate(config, 10, data=data)
  for key, stats in cv["valid"].items():
    assert stats["mean"] == pytest.approx(again["valid"][key]["mean"], rel=1e-6), key
    assert stats["ci95"] == pytest.approx(again["valid"][key]["ci95"], rel=1e-6), key
  low, high = cv["valid"][cv["metric"]]["ci95"]
  assert low < cv["valid"][cv["metric"]]["mean"] < high
  assert cv["command"] == f"flaxzoo sweep {name} --steps {config.steps} --folds 10"


def test_brain_age_group_card_is_recomputed_from_the_arrays(brain_age):
  from sklearn import metrics as skm

  model, card = load_pretrained("brain_age_group")
  assert card.task == "classification" and card.data["classes"] == ["age<60", "age>=60"]
  pre = TissueFractions(**card.data["preprocessing"]["params"])
  assert pre.label == "age_group" and pre.mean is not None  # standardised with the train split's statistics
  w = np.asarray(model.linear.kernel[...], np.float64)[:, 0]
  b = float(np.asarray(model.linear.bias[...])[0])
  for split in ("train", "test"):
    x, y = pre(brain_age[split])
    scores = x.astype(np.float64) @ w + b
    m = card.metrics[split]
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, scores > 0))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, scores > 0))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, scores))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, 1 / (1 + np.exp(-scores))), rel=1e-5)
    assert m["confusion"] == skm.confusion_matrix(y, scores > 0).tolist()
  assert card.metrics["test"]["accuracy"] > 0.75 and card.metrics["test"]["roc_auc"] > 0.85
  # predict() on raw volumes: class names and probabilities that sum to 1.
  result = predict(model, card, brain_age["test"])
  x, y = pre(brain_age["test"])
  np.testing.assert_array_equal(result["predicted_class"] == "age>=60", (x.astype(np.float64) @ w + b) > 0)
  np.testing.assert_allclose(result["probability_age<60"] + result["probability_age>=60"], 1.0)


def test_the_reference_models_carry_the_reference_table():
  _, gm = load_pretrained("brain_age_gm")
  assert abs(gm.metrics["test"]["mse"] - 0.010567) <= 1e-5 and abs(gm.metrics["test"]["r2"] - 0.69809) <= 2e-4
  _, tissue = load_pretrained("brain_age_tissue")
  assert abs(tissue.metrics["test"]["mae_years"] - 8.024) <= 0.01
  _, optimum = load_pretrained("brain_age_gm_lstsq")
  # The least-squares model has the lower training error (it is the optimum).
  assert optimum.metrics["train"]["mse"] < gm.metrics["train"]["mse"]
  assert abs(optimum.data["least_squares"]["train_mse_excess"]) < 1e-5
  assert 1e-4 < gm.data["least_squares"]["train_mse_excess"] < 1e-2  # 15000 SGD steps stop short
  assert gm.data["dataset"]["version"] == "1.0.0"


def test_predict_on_the_reference_table_equals_the_trainers_predictions(brain_age, data_dir, tmp_path):
  from flaxzoo.experiments import get_experiment, load_trained, run_experiment

  run_experiment(get_experiment("brain_age_tissue"), workdir=tmp_path, data_dir=data_dir)
  trainer, _ = load_trained(tmp_path, data_dir=data_dir)
  model, card = load_pretrained("brain_age_tissue")
  table = read_volume_table(RAW_FILE)
  result = predict(model, card, table)
  rows = brain_age["test"]["row"]
  x, _ = TissueFractions("tissue")(brain_age["test"])
  np.testing.assert_allclose(result["predicted_age"][rows], trainer.predict(x)[:, 0] * 100, rtol=1e-6)
  np.testing.assert_allclose(result["brain_age_gap"], result["predicted_age"] - table.age)


def test_cli_predict_writes_ids_ages_and_gaps(tmp_path):
  table = tmp_path / "people.csv"
  table.write_text("Subject,gm vol,WM_VOL,csf,TOTAL VOL,age\nsub-1,716.28,425.44,493.752,1635.472,24\n"
                   "sub-2,542.256,395.496,633.312,1571.064,86\n")
  result = run_cli("predict", "brain_age_tissue", "--input", table, "--output", tmp_path / "out.csv")
  assert result.returncode == 0, result.stderr
  lines = (tmp_path / "out.csv").read_text().splitlines()
  assert lines[0] == "id,predicted_age,age,brain_age_gap,corrected_gap,age_low,age_high,outside_training_range"
  assert [line.split(",")[0] for line in lines[1:]] == ["sub-1", "sub-2"]
  model, card = load_pretrained("brain_age_tissue")
  expected = predict(model, card, read_volume_table(table))
  assert [float(line.split(",")[1]) for line in lines[1:]] == pytest.approx(expected["predicted_age"], abs=1e-3)
  again = run_cli("predict", "brain_age_tissue", "--input", table, "--output", tmp_path / "out.csv")
  assert again.returncode == 2 and "exists; pass --force to replace it" in again.stderr
  assert run_cli("predict", "brain_age_tissue", "--input", table, "--output", tmp_path / "out.csv",
                 "--force").returncode == 0


@pytest.mark.parametrize("row, message", [
    ("sub-1,abc,425.44,493.752,1635.472", "line 2, column 'GM Vol': not a number: 'abc'"),
    ("sub-1,-1,425.44,493.752,1635.472", "line 2, column 'GM Vol': must not be negative"),
    ("sub-1,716.28,425.44,493.752,0", "line 2, column 'Total Vol': total volume must be positive"),
    ("sub-1,716.28,425.44,493.752,1500", "line 2, column 'Total Vol': total volume 1500 is less than GM + WM + CSF = 1635.47"),
])
def test_cli_predict_rejects_bad_rows_by_file_and_line(row, message, tmp_path):
  table = tmp_path / "people.csv"
  table.write_text(f"id,GM Vol,WM Vol,CSF Vol,Total Vol\n{row}\n")
  result = run_cli("predict", "brain_age_gm", "--input", table)
  assert result.returncode == 2 and f"{table}, {message}" in result.stderr, result.stderr
  assert len(result.stderr.strip().splitlines()) == 1


def test_bad_names_paths_and_cards(tmp_path):
  with pytest.raises(UnknownNameError, match="unknown pretrained model 'resnet50'; available: brain_age_gm, "):
    load_pretrained("resnet50")
  from flaxzoo.checkpoints import CheckpointError

  with pytest.raises(CheckpointError, match="is not a pretrained checkpoint"):
    load_pretrained(tmp_path)
  # A name with a separator or ".." is a path, never looked up in the package.
  with pytest.raises(UnknownNameError, match="no such checkpoint directory"):
    load_pretrained("x/brain_age_gm")
  with pytest.raises(UnknownNameError, match="no such checkpoint directory"):
    load_pretrained("../brain_age_gm")
  from flaxzoo.checkpoints.pretrained import weights_dir

  broken = tmp_path / "broken"
  shutil.copytree(weights_dir() / "brain_age_gm", broken)
  card = json.loads((broken / "card.json").read_text())
  card["model"]["args"]["in_features"] = 3
  (broken / "card.json").write_text(json.dumps(card))
  with pytest.raises(CheckpointError, match=r"card.json: its contents differ from manifest.json"):
    load_pretrained(broken)
  from flaxzoo.checkpoints.manifest import write_manifest

  write_manifest(broken)  # a crafted export: its manifest made to match
  with pytest.raises(CheckpointError, match=r"the card.s model does not fit the arrays \(linear.kernel.value: saved \(1, 1\), expected \(3, 1\)\)"):
    load_pretrained(broken)
  result = run_cli("predict", str(broken), "--input", RAW_FILE)
  assert result.returncode == 2 and "the card's model does not fit the arrays" in result.stderr
  missing = tmp_path / "missing.csv"
  missing.write_text("id,GM Vol,CSF Vol,Total Vol\n1,2,3,6\n")
  result = run_cli("predict", "brain_age_gm", "--input", missing)
  assert result.returncode == 2 and "line 1: missing column 'wm'" in result.stderr and "found ['id', 'GM Vol'" in result.stderr


def test_export_writes_params_card_and_readme_and_loads_back(tmp_path, data_dir):
  workdir = tmp_path / "run"
  assert run_cli("train", "brain_age_gm", "--steps", "500", "--workdir", workdir, "--data-dir", data_dir).returncode == 0
  result = run_cli("export", "--workdir", workdir, "--name", "mine", "--out", tmp_path / "out", "--data-dir", data_dir)
  assert result.returncode == 0, result.stderr
  target = tmp_path / "out" / "mine"
  assert sorted(p.name for p in target.iterdir()) == ["README.md", "card.json", "manifest.json", "params"]
  card = json.loads((target / "card.json").read_text())
  assert card["recipe"]["step"] == 500 and card["parameters"] == 2
  assert "| test | 65 |" in (target / "README.md").read_text()
  model, loaded = load_pretrained(target)
  results = json.loads((workdir / "results.json").read_text())
  np.testing.assert_array_equal(np.asarray(model.linear.kernel[...]), results["params"]["linear/kernel"])
  assert loaded.metrics["test"]["mse"] == pytest.approx(results["test"]["mse"], rel=1e-6)
  again = run_cli("export", "--workdir", workdir, "--name", "mine", "--out", tmp_path / "out", "--data-dir", data_dir)
  assert again.returncode == 2 and "exists; pass --force" in again.stderr


# (slow selection: CI installs the package from its wheel for every test; here a wheel built and loaded outside
# the repository, ~9 s)
@pytest.mark.slow
def test_the_built_wheel_loads_and_predicts_outside_the_repository(tmp_path):
  repo = pathlib.Path(__file__).resolve().parents[1]
  subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                  tmp_path / "dist", repo], check=True, capture_output=True, timeout=300)
  wheel, = (tmp_path / "dist").glob("flaxzoo-*.whl")
  subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", tmp_path / "site", wheel],
                 check=True, capture_output=True, timeout=300)
  table = tmp_path / "people.tsv"
  table.write_text("GM Vol\tWM Vol\tCSF Vol\tTotal Vol\tAge\n716.28\t425.44\t493.752\t1635.472\t24\n")
  code = ("import flaxzoo.checkpoints as z, sys\n"
          "print(z.__file__)\n"
          "for name in z.list_pretrained():\n"
          "  m, c = z.load_pretrained(name)\n"
          "  t = __import__('flaxzoo.datasets', fromlist=['x']).read_volume_table(sys.argv[1])\n"
          "  r = z.predict(m, c, t)\n"
          "  print(name, r['predicted_age'][0] if 'predicted_age' in r else r['predicted_class'][0])\n")
  # The wheel's copy comes first on the path; the dependencies are this environment's.
  result = subprocess.run([sys.executable, "-c", code, str(table)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
  assert result.returncode == 0, result.stderr
  lines = result.stdout.split("\n")
  assert lines[0].startswith(str(tmp_path / "site"))
  assert [line.split()[0] for line in lines[1:5]] == sorted(SHIPPED + CLASSIFIERS)
  assert lines[3].split()[1] == "age<60"  # brain_age_group on a 24-year-old


def test_loads_replicated_on_eight_devices():
  code = ("from flaxzoo.checkpoints import load_pretrained; import numpy as np\n"
          "m, c = load_pretrained('brain_age_gm', devices=8)\n"
          "print(len(m.linear.kernel[...].sharding.device_set), float(m(np.ones((16, 1), np.float32))[0, 0]))")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"})
  assert result.returncode == 0, result.stderr
  count, value = result.stdout.split()
  assert int(count) == 8 and float(value) == pytest.approx(-2.8227031 + 1.737058, abs=1e-5)
