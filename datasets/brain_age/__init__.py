"""Everything brain-age: the TFDS builder's table and split, volume tables, the preprocessing, the gap.

The TFDS builder itself is `flaxzoo.datasets.brain_age.brain_age_dataset_builder.Builder`
(imported only when the dataset is built or read: it imports TFDS).
"""

from typing import TYPE_CHECKING

from flaxzoo.zoo.registry import lazy_exports

# Name -> module, imported on first use: `import flaxzoo.datasets.brain_age` costs nothing
# until a name is used (the CLI's --help and list import no JAX).
_EXPORTS = {
    "brain_age_metrics": "flaxzoo.datasets.brain_age.gap",
    "fit_bias": "flaxzoo.datasets.brain_age.gap",
    "FEATURE_SETS": "flaxzoo.datasets.brain_age.preprocessing",
    "TissueFractions": "flaxzoo.datasets.brain_age.preprocessing",
    "RAW_FILE": "flaxzoo.datasets.brain_age.split",
    "RAW_SHA256": "flaxzoo.datasets.brain_age.split",
    "reference_split": "flaxzoo.datasets.brain_age.split",
    "VolumeTable": "flaxzoo.datasets.brain_age.volumes",
    "read_volume_table": "flaxzoo.datasets.brain_age.volumes",
}

if TYPE_CHECKING:
  from flaxzoo.datasets.brain_age.gap import brain_age_metrics as brain_age_metrics
  from flaxzoo.datasets.brain_age.gap import fit_bias as fit_bias
  from flaxzoo.datasets.brain_age.preprocessing import FEATURE_SETS as FEATURE_SETS
  from flaxzoo.datasets.brain_age.preprocessing import TissueFractions as TissueFractions
  from flaxzoo.datasets.brain_age.split import RAW_FILE as RAW_FILE
  from flaxzoo.datasets.brain_age.split import RAW_SHA256 as RAW_SHA256
  from flaxzoo.datasets.brain_age.split import reference_split as reference_split
  from flaxzoo.datasets.brain_age.volumes import VolumeTable as VolumeTable
  from flaxzoo.datasets.brain_age.volumes import read_volume_table as read_volume_table


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
