"""The least-squares optimum of the brain_age gm split, reached by Adam.

Plain float32 SGD stalls 1.6e-4 short of it (lr × gradient < half an ulp); Adam gets to 1e-7.
"""

import dataclasses

from flaxzoo.experiments.configs import brain_age_gm


def get_config():
  return dataclasses.replace(brain_age_gm.get_config(), name="brain_age_gm_lstsq", optimizer="adam",
                             learning_rate=1e-3, steps=200_000, log_every=10_000)
