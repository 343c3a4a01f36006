"""Coefficient tables with robust and clustered standard errors: flaxzoo against statsmodels and glum.

  python benchmarks/inference.py [--rows 1000000] [--repeats 3] [--smoke] [--json PATH]

Rows (float64 data, the same model and covariance on every side):
- `ols_hc1`: least squares on n x 32 heteroscedastic data, fit + HC1 table: `LinearRegression().fit` +
  `coef_table(cov_type="HC1")`; glum `GeneralizedLinearRegressor(family="normal", alpha=0)` + `coef_table(robust=
  True)`; statsmodels `OLS(...).fit(cov_type="HC1")` and its `bse`.
- `poisson_cluster`: Poisson on n x 32, 1,000 clusters, fit + cluster table: `PoissonRegressor(alpha=0)` +
  `coef_table(cov_type="cluster")`; glum (poisson, alpha 0) + `coef_table(clusters=)`; statsmodels `GLM(Poisson)
  .fit(cov_type="cluster")`.
- `bootstrap`: 999 bootstrap refits of logistic regression on 100,000 x 16 (`coef_table(cov_type="bootstrap")`)
  over one fit's time (`LinearClassifier(C=np.inf).fit`), flaxzoo alone; and the resamples' draws alone
  (`bootstrap.resample_counts`: 999 x 100k row indices drawn and counted on every core) over the same fit, the
  part no refit can save.
- `second_table_compiles`: the programs a second table of the same shapes compiles (JAX's compile events).

Each time is the median of `--repeats` calls after a first (warm: compilation and imports excluded), flaxzoo's
and glum's taken in turns, each after a 1 s pause (a drift of the machine falls on both; another library's
spinning threads on neither); statsmodels once (it takes seconds). Ratios are flaxzoo / the library, from this
one run (2 shared cores: absolute times drift). glum comes from the `bench` extra and statsmodels from `test`; a
row notes a library it cannot import.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import median_time, report  # noqa: E402


def make_data(rows: int, d: int, seed: int = 0):
  """`(X [rows, d], y_ls, y_poisson, groups [rows], X16 [100k, 16], labels)`."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((rows, d))
  beta = rng.standard_normal(d) / np.sqrt(d)
  y_ls = 1.0 + x @ beta + rng.standard_normal(rows) * (0.5 + np.abs(x[:, 0]))
  y_poisson = rng.poisson(np.exp(0.5 + 0.3 * x @ beta)).astype(np.float64)
  groups = rng.integers(0, 1000, rows)
  small = min(rows, 100_000)
  x16 = rng.standard_normal((small, 16))
  labels = (rng.random(small) < 1 / (1 + np.exp(-x16 @ rng.standard_normal(16) / 2))).astype(np.int64)
  return x, y_ls, y_poisson, groups, x16, labels


def flaxzoo_rows(x, y_ls, y_poisson, groups):
  from flaxzoo.sklearn import LinearRegression, PoissonRegressor

  return {"ols_hc1": lambda: LinearRegression().fit(x, y_ls).coef_table(x, y_ls, cov_type="HC1"),
          "poisson_cluster": lambda: PoissonRegressor(alpha=0.0).fit(x, y_poisson).coef_table(
              x, y_poisson, cov_type="cluster", groups=groups)}


def glum_rows(x, y_ls, y_poisson, groups):
  from glum import GeneralizedLinearRegressor

  def ols():
    model = GeneralizedLinearRegressor(family="normal", alpha=0.0).fit(x, y_ls)
    return model.coef_table(x, y_ls, robust=True)

  def poisson():
    model = GeneralizedLinearRegressor(family="poisson", alpha=0.0).fit(x, y_poisson)
    # (glum's clusters must be the codes 0..G-1)
    return model.coef_table(x, y_poisson, clusters=np.unique(groups, return_inverse=True)[1])

  return {"ols_hc1": ols, "poisson_cluster": poisson}


def statsmodels_rows(x, y_ls, y_poisson, groups):
  import statsmodels.api as sm

  exog = sm.add_constant(x)
  return {"ols_hc1": lambda: sm.OLS(y_ls, exog).fit(cov_type="HC1").bse,
          "poisson_cluster": lambda: sm.GLM(y_poisson, exog, family=sm.families.Poisson()).fit(
              cov_type="cluster", cov_kwds={"groups": groups}).bse}


def bootstrap_ratio(x16, labels, repeats: int) -> dict:
  from flaxzoo.sklearn import LinearClassifier
  from flaxzoo.trainers.bootstrap import resample_counts

  fit = lambda: LinearClassifier(C=np.inf).fit(x16, labels)
  fit()
  one, _ = median_time(fit, repeats)
  model = fit()
  table = lambda: model.coef_table(x16, labels, cov_type="bootstrap", n_resamples=999, random_state=0)
  table()
  boot, _ = median_time(table, max(1, repeats // 2))
  # The resamples' draws alone (999 x n row indices, counted: every bootstrap of rows pays them), as a floor
  draws, _ = median_time(lambda: resample_counts(len(x16), 999, 0), max(1, repeats // 2))
  return {"one_fit_s": one, "bootstrap_999_s": boot, "draws_999_s": draws}


def compiles_of_second_table(x, y_ls) -> int:
  """The backend compilations of a second `coef_table` (another estimator, new data of the same shapes)."""
  import jax

  from flaxzoo.sklearn import LinearRegression

  events = []
  jax.monitoring.register_event_duration_secs_listener(
      lambda name, *_, **__: events.append(name) if name == "/jax/compilation_cache/compile_time_saved_sec"
      or name.endswith("backend_compile_duration") else None)
  LinearRegression().fit(x, y_ls).coef_table(x, y_ls, cov_type="HC3")
  events.clear()
  LinearRegression().fit(x, y_ls + 1.0).coef_table(x, y_ls + 1.0, cov_type="HC3")
  return sum(name.endswith("backend_compile_duration") for name in events)


# Before each timed call: the other library's BLAS / OpenMP threads spin for a while after its call returns, and
# on two cores they take one from the next call (flaxzoo's Poisson row right after glum's: 0.707 s, after a
# 1 s pause 0.630, alone 0.630).
PAUSE_S = 1.0


def time_rows(rows: dict, repeats: int) -> dict:
  """`{"{row}/{library}_s": median seconds}`: flaxzoo's and glum's calls of a row taken in turns (each warmed
  first, each call after `PAUSE_S`), so that a drift of this shared machine over the minutes of a row falls on
  both; statsmodels once."""
  details = {}
  for row in rows["flaxzoo"]:
    alternating = [library for library in ("flaxzoo", "glum") if library in rows]
    for library in alternating:
      rows[library][row]()  # warm: compilation and first imports
    times = {library: [] for library in alternating}
    for _ in range(repeats):
      for library in alternating:
        time.sleep(PAUSE_S)
        times[library].append(median_time(rows[library][row], 1)[0])
    if "statsmodels" in rows:
      times["statsmodels"] = [median_time(rows["statsmodels"][row], 1)[0]]
    for library, seconds in times.items():
      details[f"{row}/{library}_s"] = statistics.median(seconds)
      print(f"{row:>16} {library:>12}: {details[f'{row}/{library}_s']:.3f} s")
  return details


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rows", type=int, default=1_000_000)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--smoke", action="store_true", help="tiny data, one repeat: proves the script runs")
  parser.add_argument("--json", default=None, help="write the results there")
  args = parser.parse_args(argv)
  if args.smoke:
    args.rows, args.repeats = 5_000, 1
  warnings.simplefilter("ignore")
  x, y_ls, y_poisson, groups, x16, labels = make_data(args.rows, 32)
  rows = {}
  for library, make in (("flaxzoo", flaxzoo_rows), ("glum", glum_rows), ("statsmodels", statsmodels_rows)):
    try:
      rows[library] = make(x, y_ls, y_poisson, groups)
    except ImportError as e:
      print(f"{library}: not installed ({e.name}); its rows skipped")
  details, metrics = time_rows(rows, args.repeats), {}
  for row in ("ols_hc1", "poisson_cluster"):
    for library in ("glum", "statsmodels"):
      if f"{row}/{library}_s" in details:
        metrics[f"{row}: flaxzoo / {library}"] = details[f"{row}/flaxzoo_s"] / details[f"{row}/{library}_s"]
  boot = bootstrap_ratio(x16, labels, args.repeats)
  details.update({f"bootstrap/{k}": v for k, v in boot.items()})
  metrics["bootstrap: 999 refits / one fit"] = boot["bootstrap_999_s"] / boot["one_fit_s"]
  metrics["bootstrap: its draws alone / one fit"] = boot["draws_999_s"] / boot["one_fit_s"]
  details["second_table_compiles"] = compiles_of_second_table(x, y_ls)
  print(f"{'second table compiles':>45}: {details['second_table_compiles']}")
  report("inference", metrics, details, args, args.json)


if __name__ == "__main__":
  main()
