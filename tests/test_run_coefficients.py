"""A run's coefficient table (results.json, `flaxzoo eval --coef-table`, an export's card) and the brain-age
models' intervals, against statsmodels on the run's own training rows in their own units (issue 33)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import one_line_error, run_cli

sm = pytest.importorskip("statsmodels.api")

from flaxzoo.checkpoints import load_pretrained, predict  # noqa: E402
from flaxzoo.datasets.brain_age import TissueFractions  # noqa: E402
from flaxzoo.experiments.trained import load_trained  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """A standardised least-squares run (exact) on a CSV with a column of groups the model does not read."""
  folder = tmp_path_factory.mktemp("coefficients")
  rng = np.random.default_rng(0)
  n = 800
  a, b, g = rng.normal(size=n) * 10 + 50, rng.normal(size=n), rng.integers(0, 40, n)
  y = 2 + 0.1 * a - 0.5 * b + rng.normal(size=n) * (1 + np.abs(b))
  path = folder / "d.csv"
  path.write_text("a,b,g,y\n" + "".join(f"{float(u)!r},{float(v)!r},G{w},{float(z)!r}\n" for u, v, w, z in zip(a, b, g, y)))
  workdir = folder / "run"
  result = run_cli("train", "linear_regression", "--dataset", f"csv:{path}", "--features", "a,b", "--label", "y",
                   "--solver", "auto", "--workdir", workdir, "--quiet")
  assert result.returncode == 0, result.stderr
  _, meta = load_trained(workdir)
  rows = meta["data"].rows_of("train")
  return workdir, np.c_[a, b][rows], y[rows], np.asarray([f"G{v}" for v in g])[rows]


def _columns(table):
  return {k: np.asarray([r[k] for r in table["rows"]]) for k in ("coef", "std_err", "p_value", "ci_low", "ci_high")}


def test_results_hold_the_table_in_the_columns_units(run):
  workdir, x, y, _ = run
  table = json.loads((workdir / "results.json").read_text())["coefficients"]
  assert table["cov_type"] == "nonrobust" and [r["name"] for r in table["rows"]] == ["intercept", "a", "b"]
  reference = sm.OLS(y, sm.add_constant(x)).fit()
  ours = _columns(table)
  # The run's float32 inputs and its solver's stop: the coefficients as exact as the fit, the errors to 1e-6.
  np.testing.assert_allclose(ours["coef"], reference.params, rtol=1e-5)
  np.testing.assert_allclose(ours["std_err"], reference.bse, rtol=1e-6)
  np.testing.assert_allclose(ours["ci_low"], reference.conf_int()[:, 0], rtol=1e-4)


def test_eval_prints_a_cluster_table(run):
  workdir, x, y, groups = run
  result = run_cli("eval", "--workdir", workdir, "--coef-table", "--cov-type", "cluster", "--groups", "g")
  assert result.returncode == 0, result.stderr
  lines = result.stdout.strip().splitlines()
  assert lines[0] == "coefficients (cluster, 95% intervals)"
  printed = np.asarray([[float(v) for v in line.split()[1:]] for line in lines[2:]])
  codes = np.unique(groups, return_inverse=True)[1]
  reference = sm.OLS(y, sm.add_constant(x)).fit(cov_type="cluster", cov_kwds={"groups": codes})
  np.testing.assert_allclose(printed[:, 1], reference.bse, rtol=1e-4)  # (printed to 6 digits)
  one_line_error(run_cli("eval", "--workdir", workdir, "--coef-table", "--cov-type", "cluster"), "--groups")
  one_line_error(run_cli("eval", "--workdir", workdir, "--coef-table", "--cov-type", "cluster", "--groups", "zz"),
                 "--groups zz")


def test_an_export_card_carries_the_table(run, tmp_path):
  workdir, *_ = run
  assert run_cli("export", "--workdir", workdir, "--name", "lr", "--out", tmp_path).returncode == 0
  card = json.loads((tmp_path / "lr" / "card.json").read_text())
  assert card["coefficients"] == json.loads((workdir / "results.json").read_text())["coefficients"]


def test_an_optax_run_has_no_table_and_eval_says_why(tmp_path):
  workdir = tmp_path / "gm"
  assert run_cli("train", "brain_age_gm", "--steps", "10", "--workdir", workdir, "--quiet").returncode == 0
  assert "coefficients" not in json.loads((workdir / "results.json").read_text())
  one_line_error(run_cli("eval", "--workdir", workdir, "--coef-table"), "no coefficient table")


@pytest.mark.parametrize("name", ["brain_age_gm", "brain_age_tissue"])
def test_brain_age_predictions_carry_their_interval_and_its_coverage(name, brain_age):
  model, card = load_pretrained(name)
  pre = TissueFractions(**card.data["preprocessing"]["params"])
  entry = card.data["prediction_interval"]
  w = np.asarray(model.linear.kernel[...], np.float64)[:, 0]
  b = float(np.asarray(model.linear.bias[...])[0])
  x, labels = (np.asarray(v, np.float64) for v in pre(brain_age["train"]))
  # statsmodels' observation interval at the card's parameters: s² from their residuals, C = s² (XᵀX)⁻¹.
  design = sm.add_constant(x)
  residual = labels - design @ np.r_[b, w]
  scale = residual @ residual / (len(x) - design.shape[1])
  np.testing.assert_allclose(entry["covariance"], scale * np.linalg.inv(design.T @ design), rtol=1e-8)
  for split in ("train", "test"):
    result = predict(model, card, brain_age[split])
    xs = np.asarray(pre(brain_age[split])[0], np.float64)
    f = sm.add_constant(xs, has_constant="add")
    half = entry["quantile"] * np.sqrt(np.einsum("ij,jk,ik->i", f, entry["covariance"], f) + scale)
    np.testing.assert_allclose(result["age_low"], result["predicted_age"] - half * pre.label_scale, rtol=1e-9)
    np.testing.assert_allclose(result["age_high"], result["predicted_age"] + half * pre.label_scale, rtol=1e-9)
    age = brain_age[split]["age"]
    inside = np.mean((result["age_low"] <= age) & (age <= result["age_high"]))
    assert entry["coverage"][split] == pytest.approx(inside, abs=1 / len(age))
  assert 0.9 <= entry["coverage"]["test"] <= 1.0
  notes = card.data["model_card"]
  assert notes["training_cohort"]["age_min"] == 18 and "extrapolation" in notes["outside_training_range"]
  assert {"intended_use", "limitations", "licence"} <= set(notes)


@pytest.fixture(scope="module")
def offset_run(tmp_path_factory):
  """A Poisson run with `--offset` (a column of log exposures) on a CSV."""
  folder = tmp_path_factory.mktemp("offset")
  rng = np.random.default_rng(1)
  n = 1500
  a, b, exposure = rng.normal(size=n), rng.normal(size=n) * 3 + 10, rng.uniform(0.2, 3.0, n)
  y = rng.poisson(exposure * np.exp(0.3 + 0.4 * a - 0.05 * b))
  path = folder / "claims.csv"
  path.write_text("a,b,log_exposure,claims\n" + "".join(
      f"{float(u)!r},{float(v)!r},{float(w)!r},{int(z)}\n" for u, v, w, z in zip(a, b, np.log(exposure), y)))
  workdir = folder / "run"
  result = run_cli("train", "linear", "--dataset", f"csv:{path}", "--features", "a,b", "--label", "claims",
                   "--family", "poisson", "--offset", "log_exposure", "--solver", "auto", "--workdir", workdir,
                   "--quiet")
  assert result.returncode == 0, result.stderr
  _, meta = load_trained(workdir)
  rows = meta["data"].rows_of("train")
  table = np.loadtxt(path, delimiter=",", skiprows=1)
  return folder, path, workdir, table[rows], table[meta["data"].rows_of("test")]


def test_an_offset_run_is_statsmodels_glm_with_that_offset(offset_run):
  _, _, workdir, train, test = offset_run
  reference = sm.GLM(train[:, 3], sm.add_constant(train[:, :2]), family=sm.families.Poisson(),
                     offset=train[:, 2]).fit(tol=1e-13)
  results = json.loads((workdir / "results.json").read_text())
  ours = _columns(results["coefficients"])
  np.testing.assert_allclose(ours["coef"], reference.params, rtol=1e-5)
  np.testing.assert_allclose(ours["std_err"], reference.bse, rtol=1e-5)
  # The metrics are the offset model's: its means on the test rows.
  means = reference.predict(sm.add_constant(test[:, :2]), offset=test[:, 2])
  assert results["test"]["mse"] == pytest.approx(np.mean((means - test[:, 3]) ** 2), rel=1e-4)


def test_an_offset_export_predicts_with_the_tables_column(offset_run, tmp_path):
  folder, path, workdir, *_ = offset_run
  assert run_cli("export", "--workdir", workdir, "--name", "rates", "--out", tmp_path).returncode == 0
  result = run_cli("predict", tmp_path / "rates", "--input", path)
  assert result.returncode == 0, result.stderr
  predicted = np.asarray([float(line.split(",")[1]) for line in result.stdout.strip().splitlines()[1:]])
  table = np.loadtxt(path, delimiter=",", skiprows=1)
  coef = [r["coef"] for r in json.loads((workdir / "results.json").read_text())["coefficients"]["rows"]]
  np.testing.assert_allclose(predicted, np.exp(coef[0] + table[:, :2] @ coef[1:] + table[:, 2]), rtol=1e-5)
  without = folder / "no_offset.csv"
  without.write_text("a,b\n1.0,2.0\n")
  one_line_error(run_cli("predict", tmp_path / "rates", "--input", without), "log_exposure")


def test_offset_is_refused_where_it_cannot_be_fitted(offset_run, tmp_path):
  _, path, *_ = offset_run
  common = ("train", "linear", "--dataset", f"csv:{path}", "--features", "a,b", "--label", "claims")
  one_line_error(run_cli(*common, "--family", "poisson", "--offset", "log_exposure", "--workdir", tmp_path / "a"),
                 "--solver auto")
  one_line_error(run_cli(*common, "--family", "poisson", "--offset", "nope", "--solver", "auto",
                         "--workdir", tmp_path / "b"), "nope")
  one_line_error(run_cli("train", "brain_age_gm", "--offset", "age", "--solver", "auto", "--workdir",
                         tmp_path / "c"), "--offset")
