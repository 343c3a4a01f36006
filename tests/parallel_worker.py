"""Runs trainings on simulated CPU devices and prints their parameters as JSON.

Started by tests as a subprocess: XLA_FLAGS must be set before jax is imported,
which a pytest process has already done (a test imports `train` for a run on its
one device: no process to start).

  python parallel_worker.py DATA_DIR '[{"features": "gm", "steps": 200, "parallel": "mesh", "devices": 3}, ...]'
"""

import json
import os
import sys

if __name__ == "__main__":  # (imported by a test: its process's devices, its environment untouched)
  os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"

import numpy as np  # noqa: E402
import optax  # noqa: E402

from flaxzoo.datasets import TissueFractions, load_split  # noqa: E402
from flaxzoo.datasets.sources import load_data  # noqa: E402
from flaxzoo.trainers import Trainer  # noqa: E402
from flaxzoo.zoo import create_model  # noqa: E402


def main():
  data_dir, runs = sys.argv[1], json.loads(sys.argv[2])
  print(json.dumps([train(data_dir, run) for run in runs]))


def train(data_dir, run: dict) -> dict:
  """`run`'s training: its parameters, metrics and losses, with `run`'s own keys."""
  if run.get("label") == "age_group":  # logistic regression with an L2 penalty
    data = load_data("brain_age", features=run["features"], label="age_group", standardize=True,
                     data_dir=data_dir)
    rows, test = data.splits["train"], data.splits["test"]
    model = create_model("logistic_regression", seed=13, in_features=data.num_features)
    trainer = Trainer(model, optax.sgd(run.get("lr", 1.0)), "logistic", seed=13, parallel=run["parallel"],
                      devices=run.get("devices"), l2=run.get("l2", 0.0))
  else:
    pre = TissueFractions(run["features"])
    rows = pre(load_split("brain_age", "train", data_dir))
    test = pre(load_split("brain_age", "test", data_dir))
    model = create_model("linear_regression", seed=13, init="reference", in_features=pre.num_features)
    trainer = Trainer(model, optax.sgd(run.get("lr", 0.05)), "mse", seed=13, parallel=run["parallel"],
                      devices=run.get("devices"), label_scale=100.0, label_unit="years")
  history = trainer.fit(rows, steps=run["steps"], batch_size=run.get("batch_size"), shuffle=run.get("shuffle", "blocks"),
                        eval_data={"test": test}, log_every=run.get("log_every", 1000))
  params = trainer.params
  return {
      **run,
      "mode": trainer.placement.mode,
      "num_devices": len(trainer.placement.devices),
      "kernel": np.asarray(params["linear"]["kernel"][...]).ravel().tolist(),
      "bias": np.asarray(params["linear"]["bias"][...]).ravel().tolist(),
      "metrics": history.metrics,
      "losses": history.losses,
  }


if __name__ == "__main__":
  main()
