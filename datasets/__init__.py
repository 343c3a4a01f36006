"""Datasets: the one table reader, sources by name (brain_age, csv:, tfds:), preprocessing."""

from flaxzoo.datasets import csv_source as _csv_source  # Registers `csv:`.
from flaxzoo.datasets import tfds_source as _tfds_source  # Registers `tfds:`.
from flaxzoo.datasets.brain_age import FEATURE_SETS as FEATURE_SETS  # Registers `brain_age`.
from flaxzoo.datasets.brain_age import TissueFractions as TissueFractions
from flaxzoo.datasets.brain_age import VolumeTable as VolumeTable
from flaxzoo.datasets.brain_age import read_volume_table as read_volume_table
from flaxzoo.datasets.loading import default_data_dir as default_data_dir
from flaxzoo.datasets.loading import get_builder as get_builder
from flaxzoo.datasets.loading import load_split as load_split
from flaxzoo.datasets.loading import prepare as prepare
from flaxzoo.datasets.preprocessing import Columns as Columns
from flaxzoo.datasets.preprocessing import Preprocessing as Preprocessing
from flaxzoo.datasets.preprocessing import preprocessing_from_dict as preprocessing_from_dict
from flaxzoo.datasets.sources import LoadedData as LoadedData
from flaxzoo.datasets.sources import load_data as load_data
from flaxzoo.datasets.sources import register_source as register_source
from flaxzoo.datasets.tables import DataError as DataError
from flaxzoo.datasets.tables import Table as Table
from flaxzoo.datasets.tables import read_table as read_table

del _csv_source, _tfds_source
