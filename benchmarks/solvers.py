"""flaxzoo's exact solvers against scikit-learn, glum and NeMoS, each library in a fresh process.

  python benchmarks/solvers.py [--repeats 3] [--smoke] [--json PATH] [--only ROW,...]

Rows (the same objective on every side, float64 data):
- `least_squares`: 1,000,000 x 32, Ridge(alpha=1) / LinearRegression; glum (normal); NeMoS (Gaussian, LBFGS).
- `logistic`: 1,000,000 x 32, C = 1; scikit-learn lbfgs; glum (binomial, IRLS); NeMoS (Bernoulli, LBFGS).
- `softmax`: 200,000 x 64, 10 classes, C = 1; scikit-learn lbfgs.
- `grid_breast_cancer`, `grid_100k`: GridSearchCV, 5 folds x 4 C, StandardScaler + the classifier.
- `bootstrap`: 200 bootstrap refits on breast cancer (standardised), C = 1: scikit-learn's loop vs one
  `Sweep` of 200 models with `solver="auto"` (the bootstrap counts as example weights).
- `cv_100k`: LinearClassifierCV vs LogisticRegressionCV(Cs=10, cv=5) on 100,000 x 32.
- `poisson_100k`, `gamma_100k`, `tweedie_100k`: PoissonRegressor, GammaRegressor, TweedieRegressor(power=1.5),
  alpha = 1e-3, on 100,000 x 32 (log-mean 0.5 + x b / 10); glum (the same family, alpha, log link).
- `elastic_net_cv_100k`: ElasticNetCV(l1_ratio=0.5, cv=5), 100 alphas x 5 folds, on 100,000 x 32 (least
  squares data); glum's GeneralizedLinearRegressorCV (normal, the same grid size).
- `l1_logistic_100k`: L1 logistic regression, C = 0.01 (`l1_ratio=1`) on 100,000 x 32 standard normal
  features (a third of the coefficients 0): LinearClassifier vs LogisticRegression (saga, the solver
  scikit-learn has for it) and glum (binomial, alpha = 1 / (C n), l1_ratio 1).
- `cv_elasticnet_100k`: LinearClassifierCV(Cs=10, l1_ratios=(0.5,), cv=5) vs LogisticRegressionCV(the same,
  saga) on the cv_100k data; glum's GeneralizedLinearRegressorCV (binomial, l1_ratio 0.5, 10 alphas, 5 folds).
- `huber_100k`: HuberRegressor() on 100,000 x 32 standard normal features, 5% of the targets moved by
  +-20 sd: ours vs scikit-learn's (L-BFGS-B).
- `quantile_5k`: QuantileRegressor(quantile=0.7, alpha=1e-3) on 5,000 x 32 (heavy-tailed noise): ours vs
  scikit-learn's (HiGHS; 20,000 rows took it minutes).
- `huber_wide`: HuberRegressor() on 200 x 2000 (p >> n; 5 informative columns, t(2) noise): ours vs scikit-learn's.
- `quantile_200k`: QuantileRegressor(quantile=0.5, alpha=0) on 200,000 x 64: ours vs scikit-learn's, which is
  fitted once (its first fit is its warm time: one takes minutes).
The robust rows also record `peak_over_data`: the process's peak memory growth during the first fit over the
size of X.

Every (row, library) runs in its own process: `first` is the first fit there (compilation included,
imports not), `warm` the median of `--repeats` more fits of new estimators on the same data. flaxzoo's
`first` loads its programs from its persistent compilation cache (on by default; filled by an earlier
run of the row), and `cold_s` is its first fit in one more process with an empty cache: every program
compiled. Ratios are flaxzoo / the library, from this one run (the machine's absolute times drift).
glum and NeMoS come from the `bench` extra; a row notes a library it cannot import.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import median_time, report, use_compilation_cache  # noqa: E402

ROWS = ("least_squares", "logistic", "softmax", "grid_breast_cancer", "grid_100k", "bootstrap", "cv_100k",
        "poisson_100k", "gamma_100k", "tweedie_100k", "elastic_net_cv_100k", "l1_logistic_100k", "cv_elasticnet_100k",
        "huber_100k", "quantile_5k", "huber_wide", "quantile_200k")
ROBUST = ("huber_100k", "quantile_5k", "huber_wide", "quantile_200k")
GLM_ROWS = {"poisson_100k": ("PoissonRegressor", {}, "poisson"), "gamma_100k": ("GammaRegressor", {}, "gamma"),
            "tweedie_100k": ("TweedieRegressor", {"power": 1.5}, "tweedie")}
LIBRARIES = {
    "least_squares": ("flaxzoo", "sklearn", "sklearn_ols", "glum", "nemos"),
    "logistic": ("flaxzoo", "sklearn", "glum", "nemos"),
    "softmax": ("flaxzoo", "sklearn"),
    "grid_breast_cancer": ("flaxzoo", "sklearn"),
    "grid_100k": ("flaxzoo", "sklearn"),
    "bootstrap": ("flaxzoo", "sklearn"),
    "cv_100k": ("flaxzoo", "sklearn"),
    "elastic_net_cv_100k": ("flaxzoo", "sklearn", "glum"),
    **{row: ("flaxzoo", "sklearn", "glum") for row in ("poisson_100k", "gamma_100k", "tweedie_100k")},
    "l1_logistic_100k": ("flaxzoo", "sklearn", "glum"),
    "cv_elasticnet_100k": ("flaxzoo", "sklearn", "glum"),
    "huber_100k": ("flaxzoo", "sklearn"),
    "quantile_5k": ("flaxzoo", "sklearn"),
    "huber_wide": ("flaxzoo", "sklearn"),
    "quantile_200k": ("flaxzoo", "sklearn"),
}


def make_data(row: str, smoke: bool):
  rng = np.random.default_rng(0)
  if row in ("grid_breast_cancer", "bootstrap"):
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(return_X_y=True)
  if row in GLM_ROWS:
    n = 4000 if smoke else 100_000
    x = rng.normal(size=(n, 32))
    mean = np.exp(0.5 + x @ rng.normal(size=32) / 10)
    if row == "poisson_100k":
      return x, rng.poisson(mean).astype(np.float64)
    if row == "gamma_100k":
      return x, rng.gamma(2.0, mean / 2.0)
    return x, rng.poisson(mean) * rng.gamma(2.0, 0.5, size=n)  # compound Poisson-gamma: zeros and positives
  if row == "huber_wide":
    n, d = (50, 200) if smoke else (200, 2000)
    x = rng.normal(size=(n, d))
    return x, x[:, :5] @ np.ones(5) + rng.standard_t(2, size=n)
  if row == "quantile_200k":
    n = 2000 if smoke else 200_000
    x = rng.normal(size=(n, 64))
    return x, x[:, :5] @ np.ones(5) + rng.standard_t(2, size=n)
  if row in ("huber_100k", "quantile_5k"):
    n = 2000 if smoke else {"huber_100k": 100_000, "quantile_5k": 5_000}[row]
    x = rng.normal(size=(n, 32))
    y = x @ rng.normal(size=32) + 3.0 + rng.standard_t(3, size=n)
    if row == "huber_100k":
      moved = rng.random(n) < 0.05
      y[moved] += rng.choice([-20.0, 20.0], moved.sum()) * y.std()
    return x, y
  n, d, k = {"least_squares": (1_000_000, 32, 1), "l1_logistic_100k": (100_000, 32, 2),
             "logistic": (1_000_000, 32, 2), "softmax": (200_000, 64, 10), "grid_100k": (100_000, 32, 2),
             "cv_100k": (100_000, 32, 2), "cv_elasticnet_100k": (100_000, 32, 2),
             "elastic_net_cv_100k": (100_000, 32, 1)}[row]
  if smoke:
    n = 4000
  x = rng.normal(size=(n, d))
  if row in ("least_squares", "elastic_net_cv_100k"):
    return x, x @ rng.normal(size=d) + rng.normal(size=n) + 3.0
  scores = x @ rng.normal(size=(d, k)) + rng.gumbel(size=(n, k)) * 2
  return x, np.argmax(scores, axis=1)


def fitter(row: str, library: str, x, y):
  """`fit()` → an objective-bearing summary of one fresh fit."""
  n = len(y)
  if row == "least_squares":
    if library == "flaxzoo":
      from flaxzoo.sklearn import LinearRegression

      return lambda: LinearRegression(alpha=1.0).fit(x, y).coef_
    if library == "sklearn":
      from sklearn.linear_model import Ridge

      return lambda: Ridge(alpha=1.0).fit(x, y).coef_
    if library == "sklearn_ols":
      from sklearn.linear_model import LinearRegression

      return lambda: LinearRegression().fit(x, y).coef_
    if library == "glum":
      from glum import GeneralizedLinearRegressor

      return lambda: GeneralizedLinearRegressor(family="normal", alpha=1.0 / n).fit(x, y).coef_
    if library == "nemos":
      import nemos

      return lambda: nemos.glm.GLM("Gaussian", regularizer="Ridge", regularizer_strength=1.0 / n,
                                   solver_name="LBFGS").fit(x, y).coef_
  if row in ("logistic", "softmax"):
    if library == "flaxzoo":
      from flaxzoo.sklearn import LinearClassifier

      return lambda: LinearClassifier(C=1.0).fit(x, y).coef_
    if library == "sklearn":
      from sklearn.linear_model import LogisticRegression

      return lambda: LogisticRegression(C=1.0).fit(x, y).coef_
    if library == "glum":
      from glum import GeneralizedLinearRegressor

      return lambda: GeneralizedLinearRegressor(family="binomial", alpha=1.0 / n).fit(x, y).coef_
    if library == "nemos":
      import nemos

      return lambda: nemos.glm.GLM("Bernoulli", regularizer="Ridge", regularizer_strength=1.0 / n,
                                   solver_name="LBFGS").fit(x, y.astype(float)).coef_
  if row in ("grid_breast_cancer", "grid_100k"):
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if library == "flaxzoo":
      from flaxzoo.sklearn import LinearClassifier as Classifier
    else:
      from sklearn.linear_model import LogisticRegression as Classifier
    grid = {"classifier__C": [0.01, 0.1, 1.0, 10.0]}

    def search():
      pipeline = Pipeline([("scaler", StandardScaler()), ("classifier", Classifier())])
      return GridSearchCV(pipeline, grid, cv=5).fit(x, y).best_params_["classifier__C"]

    return search
  if row == "bootstrap":
    from sklearn.preprocessing import StandardScaler

    xs = StandardScaler().fit_transform(x)
    counts = np.random.default_rng(1).multinomial(n, np.full(n, 1 / n), size=200).astype(np.float64)
    if library == "flaxzoo":
      from flaxzoo.trainers import Sweep
      from flaxzoo.zoo import create_model

      def refits():  # one Sweep of 200 models, the bootstrap counts as their example weights
        models = [create_model("logistic_regression", in_features=xs.shape[1], seed=s) for s in range(len(counts))]
        sweep = Sweep(models, loss="logistic", l2=1.0 / counts.sum(axis=1), parallel="none", solver="auto", tol=1e-4)
        sweep.fit((xs, y), steps=100, weights=counts)
        return sweep.state.params["linear"]["kernel"]

      return refits
    from sklearn.linear_model import LogisticRegression

    return lambda: np.stack([LogisticRegression(C=1.0).fit(xs, y, sample_weight=c).coef_[0] for c in counts])
  if row == "cv_100k":
    if library == "flaxzoo":
      from flaxzoo.sklearn import LinearClassifierCV

      return lambda: float(LinearClassifierCV(Cs=10, cv=5).fit(x, y).C_[0])
    from sklearn.linear_model import LogisticRegressionCV

    return lambda: float(LogisticRegressionCV(Cs=10, cv=5, scoring="accuracy", l1_ratios=(0.0,),
                                              use_legacy_attributes=False).fit(x, y).C_)
  if row in GLM_ROWS:
    name, args, family = GLM_ROWS[row]
    if library == "glum":
      from glum import GeneralizedLinearRegressor, TweedieDistribution

      distribution = TweedieDistribution(1.5) if family == "tweedie" else family
      return lambda: GeneralizedLinearRegressor(family=distribution, link="log", alpha=1e-3).fit(x, y).coef_
    if library == "flaxzoo":
      import flaxzoo.sklearn as module
    else:
      import sklearn.linear_model as module
    return lambda: getattr(module, name)(alpha=1e-3, **args).fit(x, y).coef_
  if row == "cv_elasticnet_100k":
    if library == "flaxzoo":
      from flaxzoo.sklearn import LinearClassifierCV

      return lambda: float(LinearClassifierCV(Cs=10, l1_ratios=(0.5,), cv=5).fit(x, y).C_[0])
    if library == "glum":
      from glum import GeneralizedLinearRegressorCV

      return lambda: float(GeneralizedLinearRegressorCV(family="binomial", l1_ratio=0.5, n_alphas=10, cv=5)
                           .fit(x, y).alpha_)
    from sklearn.linear_model import LogisticRegressionCV

    return lambda: float(LogisticRegressionCV(Cs=10, cv=5, scoring="accuracy", l1_ratios=(0.5,), solver="saga",
                                              use_legacy_attributes=False).fit(x, y).C_)
  if row == "l1_logistic_100k":
    if library == "glum":
      from glum import GeneralizedLinearRegressor

      return lambda: GeneralizedLinearRegressor(family="binomial", alpha=1 / (0.01 * n), l1_ratio=1.0).fit(x, y).coef_
    if library == "flaxzoo":
      from flaxzoo.sklearn import LinearClassifier

      return lambda: LinearClassifier(C=0.01, l1_ratio=1.0).fit(x, y).coef_
    from sklearn.linear_model import LogisticRegression

    return lambda: LogisticRegression(C=0.01, l1_ratio=1.0, solver="saga").fit(x, y).coef_
  if row in ROBUST:
    import sklearn.linear_model

    import flaxzoo.sklearn

    module = flaxzoo.sklearn if library == "flaxzoo" else sklearn.linear_model
    if row in ("huber_100k", "huber_wide"):
      return lambda: module.HuberRegressor().fit(x, y).coef_
    if row == "quantile_200k":
      return lambda: module.QuantileRegressor(quantile=0.5, alpha=0.0).fit(x, y).coef_
    return lambda: module.QuantileRegressor(quantile=0.7, alpha=1e-3).fit(x, y).coef_
  if row == "elastic_net_cv_100k":
    if library == "flaxzoo":
      from flaxzoo.sklearn import ElasticNetCV

      return lambda: float(ElasticNetCV(l1_ratio=0.5, cv=5).fit(x, y).alpha_)
    if library == "sklearn":
      from sklearn.linear_model import ElasticNetCV

      return lambda: float(ElasticNetCV(l1_ratio=0.5, cv=5).fit(x, y).alpha_)
    if library == "glum":
      from glum import GeneralizedLinearRegressorCV

      return lambda: float(GeneralizedLinearRegressorCV(family="normal", l1_ratio=0.5, n_alphas=100, cv=5)
                           .fit(x, y).alpha_)
  raise ValueError(f"no {library} for {row}")


def worker(row: str, library: str, repeats: int, smoke: bool) -> dict:
  warnings.simplefilter("ignore")  # scikit-learn's ConvergenceWarning on raw features is part of its answer
  x, y = make_data(row, smoke)
  if library == "flaxzoo":  # imports are not the fit (scikit-learn's are done by make_data)
    import jax.numpy as jnp

    import flaxzoo.sklearn.cv  # noqa: F401
    import flaxzoo.trainers.exact  # noqa: F401 - (the solvers' package re-exports lazily: imported here, not in the fit)
    from flaxzoo.experiments.config import OPTIMIZERS  # noqa: F401
    from flaxzoo.trainers.solvers import solve  # noqa: F401

    use_compilation_cache()
    jnp.zeros(1).block_until_ready()
  try:
    fit = fitter(row, library, x, y)
  except ImportError as e:
    return {"skipped": f"cannot import: {e}"}
  import resource

  before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  start = time.perf_counter()
  result = fit()
  first = time.perf_counter() - start
  peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 / x.nbytes  # ru_maxrss: KiB
  if row == "quantile_200k" and library == "sklearn" and not smoke:
    warm, spread = first, [first, first]  # one fit takes it minutes
  else:
    warm, spread = median_time(fit, repeats)
  out = {"first_s": first, "warm_s": warm, "warm_range_s": spread}
  if row in ROBUST:
    out["peak_over_data"] = peak
  if row in ("cv_100k", "cv_elasticnet_100k"):
    out["chosen_C"] = result
  if row == "elastic_net_cv_100k":
    out["chosen_alpha"] = result
  if row.startswith("grid"):
    out["best_C"] = result
  if library == "flaxzoo":
    import jax

    events = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda name, *_, **__: events.append(name) if name == "/jax/core/compile/backend_compile_duration" else None)
    fit()
    out["compilations_warm"] = len(events)
  return out


def run_worker(command: list[str], env: dict[str, str] | None = None) -> dict:
  done = subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})})
  if done.returncode != 0:
    raise SystemExit(f"{' '.join(command[-5:])} failed:\n{done.stderr[-2000:]}")
  return json.loads(done.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--smoke", action="store_true", help="tiny sizes, only to prove it runs")
  parser.add_argument("--json", help="write {name, metrics, details} here")
  parser.add_argument("--only", help="comma-separated rows")
  parser.add_argument("--worker", nargs=2, metavar=("ROW", "LIBRARY"), help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.smoke:
    args.repeats = 1
  if args.worker:
    print(json.dumps(worker(*args.worker, args.repeats, args.smoke)))
    return
  rows = args.only.split(",") if args.only else list(ROWS)
  if args.smoke:
    rows = [r for r in rows if r in ("least_squares", "logistic", "grid_breast_cancer", "poisson_100k",
                                     "elastic_net_cv_100k", "l1_logistic_100k", "cv_elasticnet_100k", "huber_100k",
                                     "quantile_5k", "huber_wide", "quantile_200k")]
  details, metrics = {}, {}
  for row in rows:
    details[row] = {}
    for library in LIBRARIES[row]:
      command = [sys.executable, os.path.abspath(__file__), "--worker", row, library, "--repeats", str(args.repeats)]
      command += ["--smoke"] if args.smoke else []
      details[row][library] = run_worker(command)
      if library == "flaxzoo":  # first fit with an empty compilation cache: everything compiled
        with tempfile.TemporaryDirectory() as cache:
          once = [part if command[i - 1] != "--repeats" else "1" for i, part in enumerate(command)]
          cold = run_worker(once, {"FLAXZOO_JAX_CACHE": cache})
        details[row][library]["cold_s"] = cold["first_s"]
    ours = details[row]["flaxzoo"]
    for library, result in details[row].items():
      if library == "flaxzoo" or "skipped" in result:
        continue
      metrics[f"{row}_warm_vs_{library}"] = ours["warm_s"] / result["warm_s"]
      metrics[f"{row}_first_vs_{library}"] = ours["first_s"] / result["first_s"]
      metrics[f"{row}_cold_vs_{library}"] = ours["cold_s"] / result["first_s"]
    line = "  ".join(f"{lib} first {r['first_s']:.3f} s warm {r['warm_s']:.3f} s" if "skipped" not in r else
                     f"{lib} skipped" for lib, r in details[row].items())
    line = line.replace("flaxzoo first", f"flaxzoo cold {ours['cold_s']:.3f} s first", 1)
    print(f"{row:>20}: {line}", flush=True)
  report("solvers", metrics, details, args, args.json, width=45)


if __name__ == "__main__":
  main()
