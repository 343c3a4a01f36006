"""What flaxzoo believes when it reads an export back, and what an export leaves when it is stopped.

An export is checked, never believed (a manifest of every file, no links, a card that fits its model and
holds finite numbers, finite parameters); an export replaced with `--force` is at every instant one complete
export; files get the umask's modes; predictions are written in full. Outputs, signals, tables and workdirs:
tests/test_trust_runs.py.
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import PEOPLE, cli_args, one_line_error, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flaxzoo.checkpoints import CheckpointError, load_pretrained, predict
from flaxzoo.checkpoints.manifest import check_manifest, write_manifest
from flaxzoo.checkpoints.pretrained import weights_dir
from flaxzoo.datasets.brain_age import RAW_FILE, read_volume_table
from flaxzoo.datasets.tables import DataError


@pytest.fixture(scope="module")
def exported(tmp_path_factory, data_dir):
  """A trained workdir and its export `out/mine`."""
  root = tmp_path_factory.mktemp("trust")
  workdir = root / "run"
  assert run_cli("train", "brain_age_tissue", "--steps", "300", "--workdir", workdir, "--data-dir", data_dir).returncode == 0
  result = run_cli("export", "--workdir", workdir, "--name", "mine", "--out", root / "out", "--data-dir", data_dir)
  assert result.returncode == 0, result.stderr
  return workdir, root / "out" / "mine"


def copy_of(export: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
  target = tmp_path / export.name
  shutil.copytree(export, target)
  return target


# --- an export is checked, never believed -------------------------------------------------------------


def test_an_export_lists_every_file_and_a_changed_swapped_or_added_file_is_named(exported, tmp_path):
  _, export = exported
  assert check_manifest(export) is True
  arrays = sorted(p for p in (export / "params").rglob("*") if p.is_file() and p.parent.name == "d")
  different = [q for q in arrays[1:] if q.read_bytes() != arrays[0].read_bytes()]
  assert different, arrays
  swapped = copy_of(export, tmp_path / "swapped")
  a, b = (swapped / p.relative_to(export) for p in (arrays[0], different[0]))
  data_a, data_b = a.read_bytes(), b.read_bytes()
  a.write_bytes(data_b)
  b.write_bytes(data_a)
  with pytest.raises(CheckpointError, match="its contents differ from manifest.json"):
    load_pretrained(swapped)
  added = copy_of(export, tmp_path / "added")
  (added / "params" / "extra").write_text("x")
  with pytest.raises(CheckpointError, match="extra: not listed in manifest.json"):
    load_pretrained(added)
  result = run_cli("predict", swapped, "--input", RAW_FILE)
  one_line_error(result, "its contents differ from manifest.json")


def test_links_in_an_export_are_refused_not_followed(exported, tmp_path):
  _, export = exported
  elsewhere = copy_of(export, tmp_path / "elsewhere")
  linked = tmp_path / "linked"
  linked.mkdir()
  for name in ("card.json", "README.md", "manifest.json"):
    shutil.copy(export / name, linked / name)
  (linked / "params").symlink_to(elsewhere / "params")
  one_line_error(run_cli("predict", linked, "--input", RAW_FILE), "params is a symbolic link")
  whole = tmp_path / "whole"
  whole.symlink_to(elsewhere, target_is_directory=True)
  with pytest.raises(CheckpointError, match="is a symbolic link"):
    load_pretrained(whole)


def rewrite(export: pathlib.Path, change) -> None:
  """Edits the card with `change(card)` and makes the manifest match, as a crafted export would."""
  card = json.loads((export / "card.json").read_text())
  change(card)
  (export / "card.json").write_text(json.dumps(card))
  write_manifest(export)


@pytest.mark.parametrize("change, message", [
    (lambda c: c["preprocessing"]["params"].update(mean=[0.4, 0.3, 0.3], std=[0.0, 1.0, 1.0]),
     "std must be a list of finite numbers > 0"),
    (lambda c: c["preprocessing"]["params"].update(mean=[float("nan"), 0.0, 0.0], std=[1.0] * 3),
     "mean must be a list of finite"),
    (lambda c: c["preprocessing"]["params"].update(mean=[0.4, 0.3], std=[1.0] * 3),
     "mean has 2 numbers; the model has 3 inputs"),
    (lambda c: c["preprocessing"]["params"].update(mean=["a", "b", "c"], std=[1.0] * 3),
     "mean must be a list of finite numbers"),
    (lambda c: c["preprocessing"]["params"].update(label_scale=1e400), "label_scale must be a finite number"),
    (lambda c: c.update(task="classification", classes=["a", "b", "c"]), "'classes' names 3 classes; the model tells 2"),
    (lambda c: c["input_range"].update(min=[0.0], max=[1.0]), "input_range.min has 1 numbers; the model has 3"),
], ids=["std-0", "mean-nan", "mean-short", "mean-strings", "label-scale-inf", "classes", "input-range"])
def test_a_card_that_does_not_fit_its_model_or_holds_bad_numbers_is_one_line(exported, tmp_path, change, message):
  _, export = exported
  crafted = copy_of(export, tmp_path)
  rewrite(crafted, change)
  one_line_error(run_cli("predict", crafted, "--input", RAW_FILE), message)


def test_non_finite_parameters_in_an_export_are_refused(exported, tmp_path):
  import orbax.checkpoint as ocp

  _, export = exported
  crafted = copy_of(export, tmp_path)
  with ocp.StandardCheckpointer() as checkpointer:
    params = checkpointer.restore((crafted / "params").absolute())
  params["linear"]["kernel"]["value"] = np.full_like(params["linear"]["kernel"]["value"], np.nan)
  shutil.rmtree(crafted / "params")
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save((crafted / "params").absolute(), params)
  write_manifest(crafted)
  one_line_error(run_cli("predict", crafted, "--input", RAW_FILE), "the parameters are not all finite")


def hostile_numbers():
  return st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(1e308), st.just(0.0), st.just(-1.0),
                   st.text(max_size=3), st.booleans(), st.none(), st.just([]), st.just({}))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from([("preprocessing", "params", "mean"), ("preprocessing", "params", "std"),
                              ("preprocessing", "params", "label_scale"), ("input_range", "min"),
                              ("input_range", "max"), ("bias_correction", "slope"), ("classes",), ("task",),
                              ("model", "args", "in_features"), ("preprocessing", "name")]),
       value=st.one_of(hostile_numbers(), st.lists(hostile_numbers(), max_size=4)),
       manifest=st.booleans())
def test_any_mutation_of_card_or_manifest_gives_one_clean_error_or_finite_predictions(
    exported, tmp_path_factory, field, value, manifest):
  """A card field set to a hostile value, with the manifest made to match (a crafted export) or not: loading
  and predicting either fail with flaxzoo's own error or predict finite numbers."""
  _, export = exported
  crafted = copy_of(export, tmp_path_factory.mktemp("mutated"))
  card = json.loads((crafted / "card.json").read_text())
  holder = card
  for key in field[:-1]:
    holder = holder.setdefault(key, {}) if isinstance(holder, dict) else holder
  holder[field[-1]] = value
  (crafted / "card.json").write_text(json.dumps(card))
  if manifest:
    write_manifest(crafted)
  table = read_volume_table(RAW_FILE, need_age=False)
  from flaxzoo.zoo.registry import UnknownNameError

  try:
    model, loaded = load_pretrained(crafted)
    result = predict(model, loaded, table)
  except (CheckpointError, DataError, UnknownNameError):
    return
  assert manifest, "a card changed behind the manifest's back was believed"
  for name, column in result.items():
    if np.asarray(column).dtype.kind == "f":
      assert np.all(np.isfinite(column)), name


def test_a_manifest_mutation_is_one_clean_error(exported, tmp_path):
  _, export = exported
  for change in (lambda m: m.update(format="other"), lambda m: m["files"].pop("card.json"),
                 lambda m: m["files"]["card.json"].update(size=1), lambda m: m.update(files=[])):
    crafted = copy_of(export, tmp_path / str(id(change)))
    manifest = json.loads((crafted / "manifest.json").read_text())
    change(manifest)
    (crafted / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="manifest"):
      load_pretrained(crafted)


# --- replacing: one complete export at every instant --------------------------------------------------


def test_export_never_touches_a_users_staging_folder_and_cleans_its_own_leftovers(exported, tmp_path, data_dir):
  workdir, _ = exported
  out = tmp_path / "out"
  users = out / ".mine.staging"
  users.mkdir(parents=True)
  (users / "notes.txt").write_text("mine")
  leftover = out / ".mine.flaxzoo-export-abc123"  # what an export killed outright (SIGKILL) leaves
  (leftover / "params").mkdir(parents=True)
  assert run_cli("export", "--workdir", workdir, "--name", "mine", "--out", out, "--data-dir", data_dir).returncode == 0
  assert (users / "notes.txt").read_text() == "mine" and not leftover.exists()
  assert sorted(p.name for p in out.iterdir()) == [".mine.staging", "mine"]


@pytest.mark.slow  # 20 exports, each its own process
def test_sigterm_at_20_moments_of_export_force_leaves_one_complete_export(exported, tmp_path, data_dir):
  workdir, export = exported
  out = tmp_path / "out"
  out.mkdir()
  shutil.copytree(export, out / "mine")
  command = [sys.executable, "-m", "flaxzoo.experiments.cli", *cli_args(
      ["export", "--workdir", workdir, "--name", "mine", "--out", out, "--force", "--data-dir", data_dir, "--quiet"])]
  start = time.perf_counter()
  assert subprocess.run(command, capture_output=True, timeout=300).returncode == 0
  duration = time.perf_counter() - start
  outcomes = []
  for moment in np.linspace(0.3, 1.05, 20) * duration:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(moment)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    outcomes.append(process.returncode)
    assert process.returncode in (0, 143), stderr
    assert "Traceback" not in stderr, stderr
    assert sorted(p.name for p in out.iterdir()) == ["mine"], list(out.iterdir())  # nothing half-made left
    assert check_manifest(out / "mine") is True
    load_pretrained(out / "mine")
  assert 143 in outcomes, outcomes  # some were stopped midway


# --- outputs: exclusive or atomic; signals; modes; precision -----------------------------------------


def test_predict_in_full_precision_or_to_chosen_decimals(tmp_path):
  people = tmp_path / "people.csv"
  people.write_text(PEOPLE)
  model, card = load_pretrained("brain_age_tissue")
  expected = predict(model, card, card.preprocessing.read_inputs(people)[0])["predicted_age"]
  assert run_cli("predict", "brain_age_tissue", "--input", people, "--output", tmp_path / "full.csv").returncode == 0
  lines = (tmp_path / "full.csv").read_text().splitlines()
  column = lines[0].split(",").index("predicted_age")
  np.testing.assert_array_equal([float(line.split(",")[column]) for line in lines[1:]], expected)  # every bit
  result = run_cli("predict", "brain_age_tissue", "--input", people, "--output", tmp_path / "three.csv",
                   "--precision", "3")
  assert result.returncode == 0
  cells = [line.split(",")[column] for line in (tmp_path / "three.csv").read_text().splitlines()[1:]]
  assert cells == [f"{v:.3f}" for v in expected]
  one_line_error(run_cli("predict", "brain_age_tissue", "--input", people, "--precision", "13"), "between 0 and 12")


def test_files_and_folders_get_the_umasks_modes(exported, tmp_path, data_dir):
  workdir, _ = exported
  people = tmp_path / "people.csv"
  people.write_text(PEOPLE)
  for mask, file_mode, folder_mode in ((0o022, 0o644, 0o755), (0o077, 0o600, 0o700)):
    old = os.umask(mask)
    try:
      out = tmp_path / f"out-{mask:o}"
      assert run_cli("export", "--workdir", workdir, "--name", "m", "--out", out, "--data-dir", data_dir).returncode == 0
      assert run_cli("predict", "brain_age_gm", "--input", people, "--output", out / "p.csv").returncode == 0
    finally:
      os.umask(old)
    assert (out / "m").stat().st_mode & 0o777 == folder_mode
    for name in ("card.json", "manifest.json", "README.md"):
      assert (out / "m" / name).stat().st_mode & 0o777 == file_mode, name
    assert (out / "p.csv").stat().st_mode & 0o777 == file_mode


def test_export_writes_outside_the_source_tree_by_default(exported, tmp_path, data_dir):
  workdir, _ = exported
  result = run_cli("export", "--workdir", workdir, "--name", "here", "--data-dir", data_dir, cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  assert (tmp_path / "exports" / "here" / "card.json").is_file()
  assert not (weights_dir().parent / "here").exists()


def test_predict_and_scikit_learn_load_give_the_same_predictions_on_a_cli_export(exported, tmp_path):
  from flaxzoo.sklearn import load

  _, export = exported
  people = tmp_path / "people.csv"
  people.write_text(PEOPLE)
  assert run_cli("predict", export, "--input", people, "--output", tmp_path / "p.csv").returncode == 0
  lines = (tmp_path / "p.csv").read_text().splitlines()
  column = lines[0].split(",").index("predicted_age")
  cli = np.asarray([float(line.split(",")[column]) for line in lines[1:]])
  table = {"GM Vol": [716.28, 542.256], "WM Vol": [425.44, 395.496], "CSF Vol": [493.752, 633.312],
           "Total Vol": [1635.472, 1571.064]}
  np.testing.assert_allclose(load(export).predict(table), cli, rtol=1e-6)


# --- what a run believes about its data -----------------------------------------------------------------


def test_eval_predict_and_scikit_learn_load_agree_on_an_export(exported, data_dir):
  """`flaxzoo eval` (the workdir the export came from), `flaxzoo predict` and `flaxzoo.sklearn.load` of the
  export: the same predictions to 1e-6 (eval's test MSE recomputed from the loaded export's predictions)."""
  from flaxzoo.experiments import load_trained
  from flaxzoo.sklearn import load

  workdir, export = exported
  assert run_cli("eval", "--workdir", workdir, "--data-dir", data_dir).returncode == 0
  evaluated = json.loads((workdir / "eval.json").read_text())["test"]["mse"]
  _, meta = load_trained(workdir, data_dir=data_dir)
  raw, (_, labels) = meta["data"].raw["test"], meta["splits"]["test"]
  years = load(export).predict(raw)
  model, card = load_pretrained(export)
  np.testing.assert_allclose(years, predict(model, card, raw)["predicted_age"], rtol=1e-6)
  assert np.mean((years / 100 - np.asarray(labels, np.float64).reshape(-1)) ** 2) == pytest.approx(evaluated, rel=1e-6)


def test_a_scale_that_overflows_the_inputs_stops_predict_at_the_row(tmp_path):
  from flaxzoo.sklearn import LinearRegression, save

  rng = np.random.default_rng(0)
  x = rng.normal(size=(50, 2))
  export = save(LinearRegression().fit(x, x @ [1.0, 2.0]), tmp_path, "scaled")
  rewrite(export, lambda c: c["preprocessing"]["params"].update(scale={"x0": 1e308}))
  table = tmp_path / "in.csv"
  table.write_text("x0,x1\n0.5,1\n3.0,1\n")
  # float64 parameters take float64 inputs: 0.5e308 is finite, 3e308 is not
  one_line_error(run_cli("predict", export, "--input", table), "row 2: the model inputs are not finite numbers")


