"""Nothing lost: a careless user's tries that could lose or overwrite data, or give wrong results with exit 0.
Each ends in a correct result or one `flaxzoo: error:` line with a non-zero exit, and leaves every earlier file
as it was. Hangs, tracebacks and valid files rejected: tests/test_nothing_silent.py.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import PEOPLE, cli_args, made_by_flaxzoo, one_line_error, run_cli, snapshot

from flaxzoo.datasets.brain_age import RAW_FILE


def no_non_finite_json(folder: pathlib.Path) -> None:
  """Every JSON file (and JSON line) under `folder` is standard JSON: no NaN or Infinity."""
  def reject(token):
    raise AssertionError(f"non-standard JSON constant {token}")

  for path in folder.rglob("*"):
    if path.is_file() and (path.suffix in (".json", ".jsonl") or path.name == "metadata"):
      for line in path.read_text().splitlines() if path.suffix == ".jsonl" else [path.read_text()]:
        if line.strip():
          json.loads(line, parse_constant=reject)


# --- data lost or overwritten -------------------------------------------------------------------------


def start_train(workdir, data_dir, lr):
  return subprocess.Popen([sys.executable, "-m", "flaxzoo.experiments.cli",
                           *cli_args(["train", "brain_age_gm", "--steps", "4000", "--lr", lr, "--workdir", workdir,
                                      "--data-dir", data_dir, "--quiet"])],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# (a race: more attempts, more chances to catch it; the second and third in the slow selection)
@pytest.mark.parametrize("attempt", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_two_runs_on_one_workdir_one_wins_and_nothing_is_mixed(attempt, tmp_path, data_dir):
  workdir = tmp_path / "run"
  runs = {lr: start_train(workdir, data_dir, lr) for lr in ("0.05", "0.1")}
  ended = {lr: (p.communicate(timeout=300)[1], p.returncode)[::-1] for lr, p in runs.items()}
  winners = [lr for lr, (code, _) in ended.items() if code == 0]
  assert len(winners) == 1, ended
  loser = next(lr for lr in ended if lr not in winners)
  code, stderr = ended[loser]
  assert code == 2 and "Traceback" not in stderr, stderr
  # Locked out while the winner ran, or (had the winner already finished) refused as another config.
  assert "is in use by another flaxzoo run (pid" in stderr or "holds a run of another config" in stderr, stderr
  results = json.loads((workdir / "results.json").read_text())
  assert results["config"]["learning_rate"] == float(winners[0])
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert {r["learning_rate"] for r in records} == {float(winners[0])}
  assert [r["step"] for r in records] == list(range(100, 4001, 100))[9::10]  # log_every 1000: once each
  assert not (workdir / ".flaxzoo" / "owner.json").exists()  # the lock's record goes with the run


def test_a_second_run_is_told_who_holds_the_workdir(tmp_path, data_dir):
  from flaxzoo.experiments.workdir import WorkdirLock

  workdir = made_by_flaxzoo(tmp_path / "run")
  with WorkdirLock(workdir):
    result = run_cli("train", "brain_age_gm", "--steps", "10", "--workdir", workdir, "--data-dir", data_dir,
                     fresh_process=True)
  one_line_error(result, f"{workdir} is in use by another flaxzoo run (pid {os.getpid()} on")
  assert result.returncode == 2


def test_a_folder_flaxzoo_did_not_make_is_never_written(tmp_path, data_dir):
  folder = tmp_path / "thesis"
  (folder / "plots").mkdir(parents=True)
  (folder / "results.json").write_text('{"mine": true}')
  (folder / "plots" / "loss.png").write_bytes(b"my figure")
  before = snapshot(folder)
  for extra in ([], ["--restart"]):
    result = run_cli("train", "brain_age_gm", "--steps", "10", "--workdir", folder, "--data-dir", data_dir, *extra)
    one_line_error(result, "is not empty and flaxzoo did not make it (it holds plots, results.json)")
  assert snapshot(folder) == before


def test_a_new_run_moves_the_earlier_outputs_aside(trained, tmp_path, data_dir):
  workdir = tmp_path / "run"
  shutil.copytree(trained, workdir)
  (workdir / "plots").mkdir(exist_ok=True)
  (workdir / "plots" / "note.txt").write_text("kept")
  earlier = (workdir / "results.json").read_bytes()
  result = run_cli("train", "brain_age_gm", "--steps", "500", "--lr", "0.1", "--restart", "--workdir", workdir,
                   "--data-dir", data_dir)
  assert result.returncode == 0, result.stderr
  aside = {p.name.split(".old-")[0]: p for p in workdir.iterdir() if ".old-" in p.name}
  assert {"results.json", "plots", "checkpoints", "metrics.jsonl"} <= set(aside)
  assert aside["results.json"].read_bytes() == earlier
  assert (aside["plots"] / "note.txt").read_text() == "kept"
  assert json.loads((workdir / "results.json").read_text())["step"] == 500


def test_export_force_replaces_only_an_earlier_export(trained, tmp_path, data_dir):
  out = tmp_path / "out"
  user = out / "mydata"
  user.mkdir(parents=True)
  (user / "thesis.tex").write_text("\\documentclass{article}")
  result = run_cli("export", "--workdir", trained, "--name", "mydata", "--out", out, "--force", "--data-dir", data_dir)
  one_line_error(result, "is not an earlier export (no card.json); not replacing it")
  assert (user / "thesis.tex").read_text() == "\\documentclass{article}"
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  (elsewhere / "card.json").write_text("{}")
  (out / "link").symlink_to(elsewhere)
  result = run_cli("export", "--workdir", trained, "--name", "link", "--out", out, "--force", "--data-dir", data_dir)
  one_line_error(result, "not replacing it")
  assert sorted(p.name for p in elsewhere.iterdir()) == ["card.json"]
  assert run_cli("export", "--workdir", trained, "--name", "mine", "--out", out, "--data-dir", data_dir).returncode == 0
  again = run_cli("export", "--workdir", trained, "--name", "mine", "--out", out, "--force", "--data-dir", data_dir)
  assert again.returncode == 0, again.stderr
  assert not list(out.glob(".*staging*"))


# --- wrong results with exit 0 ------------------------------------------------------------------------


@pytest.mark.parametrize("flags", [["--lr", "1e30"], ["--lr", "1e30", "--batch-size", "50"]],
                         ids=["full-batch", "mini-batch"])
def test_divergence_stops_the_run_within_one_block_and_writes_nothing_non_finite(flags, tmp_path, data_dir):
  workdir = tmp_path / "run"
  result = run_cli("train", "brain_age_gm", *flags, "--steps", "5000", "--save-every", "1000", "--workdir", workdir,
                   "--data-dir", data_dir)
  line = one_line_error(result, "training diverged: the loss or the parameters are not finite at step 1000",
                        "try a smaller learning rate")
  assert result.returncode == 1, line
  assert not (workdir / "results.json").exists()
  no_non_finite_json(workdir)
  saved = [p.name for p in (workdir / "checkpoints").iterdir()] if (workdir / "checkpoints").exists() else []
  assert saved == []  # the first block already diverged: no checkpoint is marked good


@pytest.mark.parametrize("flag, value", [("--lr", "inf"), ("--lr", "nan"), ("--l2", "inf")])
def test_non_finite_hyperparameters_are_usage_errors(flag, value, tmp_path):
  result = run_cli("train", "brain_age_gm", flag, value, "--workdir", tmp_path)
  one_line_error(result, f"argument {flag}: not a decimal number: '{value}'")
  assert result.returncode == 2


def test_a_non_finite_checkpoint_is_refused_by_eval_export_and_predict(trained, tmp_path, data_dir):
  import jax

  from flaxzoo.checkpoints.manager import Checkpointer
  from flaxzoo.experiments import load_trained

  workdir = tmp_path / "run"
  shutil.copytree(trained, workdir)
  trainer, _ = load_trained(workdir, data_dir=data_dir)
  checkpoints = Checkpointer(workdir / "checkpoints", keep=None, async_save=False)
  meta = checkpoints.restore_meta(2000)
  state = trainer.state
  poisoned = state.replace(params=jax.tree.map(lambda p: p * np.nan, state.params), step=state.step + 1)
  checkpoints.save(2001, poisoned, meta, {})  # what a diverged run never saves, planted by hand
  checkpoints.close()
  for command in (["eval", "--workdir", workdir, "--data-dir", data_dir],
                  ["export", "--workdir", workdir, "--name", "x", "--out", tmp_path, "--data-dir", data_dir],
                  ["predict", workdir, "--input", RAW_FILE]):
    one_line_error(run_cli(*command), "checkpoint step 2001", "holds non-finite parameters")
  assert not (tmp_path / "x").exists()


def test_duplicate_and_ambiguous_columns_are_errors_with_a_way_to_choose(tmp_path):
  twice = tmp_path / "twice.csv"
  twice.write_text("GM Vol,GM Vol,WM Vol,CSF Vol,Total Vol\n1,2,3,4,10\n")
  one_line_error(run_cli("predict", "brain_age_tissue", "--input", twice),
                 "column 'GM Vol' appears 2 times in the header (fields 1, 2)")
  ambiguous = tmp_path / "ambiguous.csv"
  ambiguous.write_text("GM Vol,gm,WM Vol,CSF Vol,Total Vol\n700,1,400,500,1700\n")
  one_line_error(run_cli("predict", "brain_age_tissue", "--input", ambiguous),
                 "columns ['GM Vol', 'gm'] all name the field 'gm'; say which one (--column gm=NAME)")
  chosen = run_cli("predict", "brain_age_tissue", "--input", ambiguous, "--column", "gm=GM Vol")
  assert chosen.returncode == 0, chosen.stderr
  reference = tmp_path / "reference.csv"
  reference.write_text("GM Vol,WM Vol,CSF Vol,Total Vol\n700,400,500,1700\n")
  assert chosen.stdout == run_cli("predict", "brain_age_tissue", "--input", reference).stdout


@pytest.mark.parametrize("cell, message", [
    ("7_16.28", "not a number: '7_16.28'"),
    ("0x10", "not a number: '0x10'"),
    ("1e308", "1e308 is too large"),
    ("inf", "value is not finite"),
])
def test_strict_numbers_in_training_and_predict_tables(cell, message, tmp_path, data_dir):
  table = tmp_path / "t.csv"
  rows = "\n".join(f"{i},{2 * i},{i % 3}" for i in range(1, 30))
  table.write_text(f"a,b,y\n{cell},1,0\n{rows}\n")
  one_line_error(run_cli("train", "linear", "--dataset", f"csv:{table}", "--label", "y", "--workdir", tmp_path / "w"),
                 f"{table}, line 2, column 'a': {message}")
  people = tmp_path / "people.csv"
  people.write_text(f"GM Vol,WM Vol,CSF Vol,Total Vol\n{cell},425.44,493.752,1635.472\n")
  one_line_error(run_cli("predict", "brain_age_gm", "--input", people), f"{people}, line 2, column 'GM Vol'")


def test_a_constant_feature_is_kept_and_not_divided_by_zero(tmp_path):
  table = tmp_path / "t.csv"
  rng = np.random.default_rng(0)
  x = rng.normal(size=80)
  table.write_text("a,c,y\n" + "\n".join(f"{v:.6f},5,{3 * v + 1:.6f}" for v in x) + "\n")
  result = run_cli("train", "linear", "--dataset", f"csv:{table}", "--label", "y", "--workdir", tmp_path / "w",
                   "--steps", "300")
  assert result.returncode == 0, result.stderr
  results = json.loads((tmp_path / "w" / "results.json").read_text())
  assert results["test"]["r2"] > 0.99 and results["preprocessing"]["params"]["std"][1] == 1.0


def test_a_local_folder_named_like_a_shipped_model_is_not_used(trained, tmp_path):
  shutil.copytree(trained, tmp_path / "brain_age_tissue")  # a workdir that happens to have that name
  people = tmp_path / "people.csv"
  people.write_text(PEOPLE)
  shipped = run_cli("predict", "brain_age_tissue", "--input", people, cwd=tmp_path)
  assert shipped.returncode == 0, shipped.stderr
  assert "predictions of brain_age_tissue (" in shipped.stderr and "weights" in shipped.stderr
  local = run_cli("predict", "./brain_age_tissue", "--input", people, cwd=tmp_path)
  assert local.returncode == 0, local.stderr
  assert local.stdout != shipped.stdout  # the local one is a 1-feature gm run


def test_inputs_outside_the_training_range_are_flagged(tmp_path):
  people = tmp_path / "people.csv"
  people.write_text(PEOPLE + "sub-3,1200.0,200.0,100.0,1500.0,50\n")  # a GM fraction of 0.8: nobody in training
  result = run_cli("predict", "brain_age_tissue", "--input", people)
  assert result.returncode == 0, result.stderr
  assert [line.split(",")[-1] for line in result.stdout.splitlines()] == ["outside_training_range", "no", "no", "yes"]
  assert "warning: 1 of 3 rows have inputs outside the range of the training data" in result.stderr


