"""`fit` of flaxzoo.sklearn.LinearClassifier vs scikit-learn's LogisticRegression, in one run.

  python benchmarks/sklearn_fit.py [--rows 1000000] [--features 32] [--repeats 3] [--smoke] [--json PATH]

A synthetic binary problem (standardised features, labels from a noisy linear score), the same
objective on both sides: unpenalised (`LogisticRegression(C=inf)`) and with C = 1 (`l2 = 1 / n`).
Reports each fit's wall time (median of `--repeats`, compilation included: a user's first fit) and
the log loss it reaches; flaxzoo's fit is L-BFGS in float32 on the device, scikit-learn's lbfgs
in float64.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rows", type=int, default=1_000_000)
  parser.add_argument("--features", type=int, default=32)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--smoke", action="store_true", help="tiny sizes, only to prove it runs")
  parser.add_argument("--json", help="write {name, metrics} here")
  args = parser.parse_args()
  if args.smoke:
    args.rows, args.features, args.repeats = 5_000, 8, 1
  from sklearn.linear_model import LogisticRegression
  from sklearn.metrics import log_loss

  from flaxzoo.sklearn import LinearClassifier

  rng = np.random.default_rng(0)
  x = rng.normal(size=(args.rows, args.features))
  y = (x @ rng.normal(size=args.features) + rng.logistic(size=args.rows) * 2 > 0).astype(int)
  rows, metrics = {}, {}
  for name, C in (("no_penalty", np.inf), ("C1", 1.0)):
    l2 = 0.0 if np.inf == C else 1 / (C * args.rows)
    for who, make in (("flaxzoo", lambda l2=l2: LinearClassifier(l2=l2)),
                      ("sklearn", lambda C=C: LogisticRegression(C=C, max_iter=1000))):
      times = []
      for _ in range(args.repeats):
        start = time.perf_counter()
        model = make().fit(x, y)
        times.append(time.perf_counter() - start)
      rows[f"{who}_{name}"] = {"fit_s": statistics.median(times), "log_loss": log_loss(y, model.predict_proba(x)),
                               "times": times}
    a, b = rows[f"flaxzoo_{name}"], rows[f"sklearn_{name}"]
    metrics[f"speedup_vs_sklearn_{name}"] = b["fit_s"] / a["fit_s"]
    metrics[f"log_loss_relative_{name}"] = a["log_loss"] / b["log_loss"] - 1
  print(f"fit on {args.rows:,} x {args.features} (binary), medians of {args.repeats}:")
  for name, r in rows.items():
    print(f"  {name:22s} {r['fit_s']:8.2f} s   log loss {r['log_loss']:.6f}")
  for key, value in metrics.items():
    print(f"  {key}: {value:.3g}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"name": "sklearn_fit", "metrics": metrics, "details": rows, "args": vars(args)}, f, indent=2)


if __name__ == "__main__":
  main()
