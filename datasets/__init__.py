"""TFDS datasets (array_record, read without TensorFlow) and their preprocessing."""

from flaxzoo.datasets.loading import default_data_dir as default_data_dir
from flaxzoo.datasets.loading import get_builder as get_builder
from flaxzoo.datasets.loading import load_split as load_split
from flaxzoo.datasets.loading import prepare as prepare
from flaxzoo.datasets.preprocessing import FEATURE_SETS as FEATURE_SETS
from flaxzoo.datasets.preprocessing import TissueFractions as TissueFractions
from flaxzoo.datasets.preprocessing import preprocessing_from_dict as preprocessing_from_dict
from flaxzoo.datasets.tables import DataError as DataError
from flaxzoo.datasets.tables import VolumeTable as VolumeTable
from flaxzoo.datasets.tables import read_volume_table as read_volume_table
from flaxzoo.datasets.csv_table import CsvTable as CsvTable
from flaxzoo.datasets.csv_table import read_csv_table as read_csv_table
from flaxzoo.datasets.preprocessing import Columns as Columns
from flaxzoo.datasets.sources import LoadedData as LoadedData
from flaxzoo.datasets.sources import load_data as load_data
