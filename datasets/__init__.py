"""Datasets: the one table reader, sources by name (brain_age, csv:, tfds:), preprocessing."""

from typing import TYPE_CHECKING

from flaxzoo.zoo.registry import lazy_exports

# Name -> module, imported on first use: `import flaxzoo.datasets` costs nothing
# until a name is used (the CLI's --help and list import no JAX).
_EXPORTS = {
    "FEATURE_SETS": "flaxzoo.datasets.brain_age",
    "TissueFractions": "flaxzoo.datasets.brain_age",
    "VolumeTable": "flaxzoo.datasets.brain_age",
    "read_volume_table": "flaxzoo.datasets.brain_age",
    "default_data_dir": "flaxzoo.datasets.loading",
    "get_builder": "flaxzoo.datasets.loading",
    "load_split": "flaxzoo.datasets.loading",
    "prepare": "flaxzoo.datasets.loading",
    "Columns": "flaxzoo.datasets.preprocessing",
    "Preprocessing": "flaxzoo.datasets.preprocessing",
    "preprocessing_from_dict": "flaxzoo.datasets.preprocessing",
    "LoadedData": "flaxzoo.datasets.sources",
    "load_data": "flaxzoo.datasets.sources",
    "register_source": "flaxzoo.datasets.sources",
    "DataError": "flaxzoo.datasets.tables",
    "Table": "flaxzoo.datasets.tables",
    "read_table": "flaxzoo.datasets.tables",
}

if TYPE_CHECKING:
  from flaxzoo.datasets.brain_age import FEATURE_SETS as FEATURE_SETS
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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
