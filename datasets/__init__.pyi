"""The names `flaxzoo.datasets` re-exports (read by `lazy_loader.attach_stub` and by type checkers)."""

from .brain_age import FEATURE_SETS as FEATURE_SETS
from .brain_age import TissueFractions as TissueFractions
from .brain_age import VolumeTable as VolumeTable
from .brain_age import read_volume_table as read_volume_table
from .loading import default_data_dir as default_data_dir
from .loading import get_builder as get_builder
from .loading import load_split as load_split
from .loading import prepare as prepare
from .preprocessing import Columns as Columns
from .preprocessing import Preprocessing as Preprocessing
from .preprocessing import preprocessing_from_dict as preprocessing_from_dict
from .sources import LoadedData as LoadedData
from .sources import load_data as load_data
from .sources import register_source as register_source
from .tables import DataError as DataError
from .tables import Table as Table
from .tables import read_table as read_table
