"""The names `flaxzoo.datasets.brain_age` re-exports (read by `lazy_loader.attach_stub` and by type checkers)."""

from .gap import brain_age_metrics as brain_age_metrics
from .gap import fit_bias as fit_bias
from .preprocessing import FEATURE_SETS as FEATURE_SETS
from .preprocessing import TissueFractions as TissueFractions
from .split import RAW_FILE as RAW_FILE
from .split import RAW_SHA256 as RAW_SHA256
from .split import reference_split as reference_split
from .volumes import VolumeTable as VolumeTable
from .volumes import read_volume_table as read_volume_table
