"""Everything brain-age: the TFDS builder's table and split, volume tables, the preprocessing, the gap.

The TFDS builder itself is `flaxzoo.datasets.brain_age.brain_age_dataset_builder.Builder`
(imported only when the dataset is built or read: it imports TFDS).
"""

from flaxzoo.datasets.brain_age import source as _source  # Registers the `brain_age` source.
from flaxzoo.datasets.brain_age.gap import brain_age_metrics as brain_age_metrics
from flaxzoo.datasets.brain_age.gap import fit_bias as fit_bias
from flaxzoo.datasets.brain_age.preprocessing import FEATURE_SETS as FEATURE_SETS
from flaxzoo.datasets.brain_age.preprocessing import TissueFractions as TissueFractions
from flaxzoo.datasets.brain_age.split import RAW_FILE as RAW_FILE
from flaxzoo.datasets.brain_age.split import RAW_SHA256 as RAW_SHA256
from flaxzoo.datasets.brain_age.split import reference_split as reference_split
from flaxzoo.datasets.brain_age.volumes import VolumeTable as VolumeTable
from flaxzoo.datasets.brain_age.volumes import read_volume_table as read_volume_table

del _source
