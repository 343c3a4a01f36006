"""Claim counts (`claims`, a synthetic table shipped with flaxzoo) by a Poisson GLM, fitted exactly by Newton.

  flaxzoo train claims_poisson                                    # the count table of docs/models.md
  flaxzoo train claims_poisson --loss mse --model linear_regression   # least squares on the same split
"""

from flaxzoo.experiments.config import Config


def get_config() -> Config:
  return Config(name="claims_poisson", dataset="claims", loss="poisson", model="glm", solver="auto", steps=100,
                seed=0, log_every=10)
