"""Provenance: an exported card's `recipe.command`, run again in a new workdir, gives bitwise the same
parameters, for every field of the config schema that changes training; and the schema is the CLI."""

import dataclasses
import json
import shlex

import numpy as np
import pytest
from conftest import cli_main

from flaxzoo.experiments.config import Config, field_options, flag_of, training_fields


def write_table(path, rng, classes=None):
  x = rng.normal(size=(60, 3))
  y = x @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.1, size=60)
  label = y if classes is None else np.asarray(classes)[np.digitize(y, [-1.0, 1.0])]
  lines = ["a,b,c,y"] + [f"{r[0]:.6f},{r[1]:.6f},{r[2]:.6f},{v if classes else f'{v:.6f}'}" for r, v in zip(x, label)]
  path.write_text("\n".join(lines) + "\n")
  return path


def cases(tmp_path):
  rng = np.random.default_rng(0)
  regression = write_table(tmp_path / "regression.csv", rng)
  classes = write_table(tmp_path / "classes.csv", rng, classes=["low", "mid", "high"])
  x = rng.normal(size=(60, 3))
  amounts = rng.poisson(np.exp(0.5 + x @ [0.3, -0.2, 0.1])) * rng.gamma(2.0, 0.5, size=60)  # zeros and positives
  counts = tmp_path / "amounts.csv"
  counts.write_text("\n".join(["a,b,c,y"] + [f"{r[0]:.6f},{r[1]:.6f},{r[2]:.6f},{v:.6f}" for r, v in zip(x, amounts)])
                    + "\n")
  exposure = rng.uniform(0.5, 2.0, size=60)
  rates = tmp_path / "rates.csv"
  rates.write_text("\n".join(["a,b,c,log_e,y"] + [
      f"{r[0]:.6f},{r[1]:.6f},{r[2]:.6f},{e:.6f},{v}" for r, e, v in zip(
          x, np.log(exposure), rng.poisson(exposure * np.exp(0.5 + x @ [0.3, -0.2, 0.1])))]) + "\n")
  return {
      # (experiment, flags, the schema fields those flags change)
      "brain_age": ("brain_age_tissue",
                    ["--lr", "0.1", "--steps", "60", "--batch-size", "64", "--seed", "3", "--shuffle", "rows",
                     "--l2", "0.001", "--optimizer", "momentum", "--features", "gm", "--init", "default",
                     "--standardize"],
                    {"learning_rate", "steps", "batch_size", "seed", "shuffle", "l2", "optimizer", "features", "init",
                     "standardize"}),
      "csv": ("linear",
              ["--dataset", f"csv:{regression}", "--label", "y", "--features", "a,c", "--task", "regression",
               "--test-fraction", "0.3", "--split-seed", "5", "--no-standardize", "--model", "linear_regression",
               "--loss", "mse", "--steps", "40", "--optimizer", "momentum", "--lr", "0.01", "--solver", "auto"],
              {"dataset", "label", "features", "task", "test_fraction", "split_seed", "standardize", "model", "loss",
               "steps", "optimizer", "learning_rate", "solver"}),
      "classes": ("linear_classifier",
                  ["--dataset", f"csv:{classes}", "--label", "y", "--model", "softmax_regression", "--loss", "softmax",
                   "--steps", "30", "--batch-size", "16", "--shuffle", "none", "--seed", "7"],
                  {"dataset", "label", "model", "loss", "steps", "batch_size", "shuffle", "seed"}),
      "glm": ("linear",
              ["--dataset", f"csv:{counts}", "--label", "y", "--family", "tweedie", "--power", "1.5", "--penalty",
               "elasticnet", "--l1-ratio", "0.3", "--l2", "0.01", "--solver", "auto"],
              {"dataset", "label", "family", "power", "penalty", "l1_ratio", "l2", "solver"}),
      "offset": ("linear",
                 ["--dataset", f"csv:{rates}", "--label", "y", "--features", "a,b,c", "--family", "poisson",
                  "--offset", "log_e", "--solver", "auto"],
                 {"dataset", "label", "features", "family", "offset", "solver"}),
  }


def test_the_cases_cover_every_field_that_changes_training(tmp_path):
  covered = set().union(*(fields for _, _, fields in cases(tmp_path).values()))
  assert covered == set(training_fields())


@pytest.mark.parametrize("case", ["brain_age", "csv", "classes", pytest.param("glm", marks=pytest.mark.slow)])
def test_the_cards_command_reproduces_the_run_bitwise(case, tmp_path, data_dir):
  experiment, flags, _ = cases(tmp_path)[case]
  common = ["--data-dir", data_dir, "--quiet", "--no-tensorboard"]
  first = cli_main("train", experiment, *flags, "--workdir", tmp_path / "first", *common)
  assert first.returncode == 0, first.stderr
  exported = cli_main("export", "--workdir", tmp_path / "first", "--name", "mine", "--out", tmp_path / "out",
                      "--data-dir", data_dir)
  assert exported.returncode == 0, exported.stderr
  card = json.loads((tmp_path / "out" / "mine" / "card.json").read_text())
  results = json.loads((tmp_path / "first" / "results.json").read_text())
  command = card["recipe"]["command"]
  assert command == results["command"]
  words = shlex.split(command)
  assert words[:3] == ["flaxzoo", "train", experiment]
  again = cli_main(*words[1:], "--workdir", tmp_path / "again", *common)
  assert again.returncode == 0, again.stderr
  rerun = json.loads((tmp_path / "again" / "results.json").read_text())
  assert rerun["config"] == results["config"]
  for key, value in results["params"].items():
    np.testing.assert_array_equal(np.asarray(rerun["params"][key]), np.asarray(value))
  # results.json names the resolved model and loss, whatever the config left to the task.
  assert results["model"]["name"] and results["loss"] in ("mse", "softmax", "tweedie:1.5")


def test_every_schema_field_is_a_train_flag_and_back():
  from flaxzoo.experiments.cli.parser import build_parser

  parser = build_parser()
  train = parser._subparsers._group_actions[0].choices["train"]
  flags = {option: action.dest for action in train._actions for option in action.option_strings}
  for field in field_options():
    assert flags[flag_of(field)] == field.name
  schema = {f.name for f in dataclasses.fields(Config)}
  run_options = {"workdir", "download", "data_dir", "coordinator", "num_processes", "process_id", "timeout",
                 "save_every", "keep", "keep_best", "sync_save", "restart", "fallback", "no_plots", "wait_for_plots", "no_tensorboard",
                 "verbose", "quiet", "help"}
  assert set(flags.values()) - schema <= run_options  # every other flag is about where and how a run goes


def test_a_bad_value_is_named_by_the_schema():
  from flaxzoo.experiments.errors import ConfigError

  with pytest.raises(ConfigError, match="x: learning_rate must be > 0 and finite, got -1"):
    Config(name="x", learning_rate=-1)
  with pytest.raises(ConfigError, match="x: unknown shuffle 'random'; known: blocks, rows, none"):
    Config(name="x", shuffle="random")
  with pytest.raises(ConfigError, match="x: steps must be a int, got 1.5"):
    Config(name="x", steps=1.5)
