"""The brain_age TFDS dataset."""

from flaxzoo.datasets.brain_age.brain_age_dataset_builder import Builder as Builder
from flaxzoo.datasets.brain_age.brain_age_dataset_builder import reference_split as reference_split
