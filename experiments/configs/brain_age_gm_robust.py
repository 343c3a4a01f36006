"""Brain age from GM with robust losses: is the reference's squared error pulled by outlying ages?

  flaxzoo train brain_age_gm_huber     # Huber, epsilon 0.1 (10 years): squared inside, absolute beyond
  flaxzoo train brain_age_gm_median    # the pinball loss at 0.5: median regression, least absolute error

The reference's split and features (GM fraction, unstandardised, seed 13), each loss's exact optimum: Newton
for Huber's loss (at its fixed scale), the linear program for the pinball loss (`QuantileRegressor(alpha=0)`'s
answer); docs/brain_age.md compares the three.
"""

import dataclasses

from flaxzoo.experiments.configs import brain_age_gm


def huber():
  return dataclasses.replace(brain_age_gm.get_config(), name="brain_age_gm_huber", loss="huber:0.1", solver="auto",
                             steps=100)


def median():
  return dataclasses.replace(brain_age_gm.get_config(), name="brain_age_gm_median", loss="quantile:0.5",
                             solver="auto", steps=100)
