"""The named experiments (one file each in `configs/`): `get_experiment(name)`, `list_experiments()`."""

from __future__ import annotations

from flaxzoo.experiments.config import Config
from flaxzoo.experiments.configs import (
  brain_age_gm,
  brain_age_gm_lstsq,
  brain_age_gm_robust,
  brain_age_group,
  brain_age_tissue,
  claims_poisson,
  linear,
  linear_classifier,
  linear_regression,
)
from flaxzoo.zoo.registry import Registry

EXPERIMENTS: Registry = Registry("experiment")
for _module in (brain_age_gm, brain_age_tissue, brain_age_gm_lstsq, brain_age_group, claims_poisson, linear,
                linear_regression, linear_classifier):
  EXPERIMENTS.register(_module.get_config().name, _module.get_config)
for _get_config in (brain_age_gm_robust.huber, brain_age_gm_robust.median):
  EXPERIMENTS.register(_get_config().name, _get_config)


def list_experiments() -> list[str]:
  return EXPERIMENTS.names()


def get_experiment(name: str) -> Config:
  """The named experiment's config; an unknown name lists the known ones."""
  return EXPERIMENTS.get(name)()
