"""The names `flaxzoo.trainers` re-exports (read by `lazy_loader.attach_stub` and by type checkers)."""

from .batching import Layout as Layout
from .batching import arrange as arrange
from .batching import make_layout as make_layout
from .history import DivergedError as DivergedError
from .history import History as History
from .history import SweepHistory as SweepHistory
from .loop import make_fused_loop as make_fused_loop
from .losses import LOSSES as LOSSES
from .losses import get_loss as get_loss
from .losses import logistic_loss as logistic_loss
from .losses import mse_loss as mse_loss
from .losses import softmax_loss as softmax_loss
from .placement import PARALLEL_MODES as PARALLEL_MODES
from .placement import Placement as Placement
from .placement import make_placement as make_placement
from .steps import TrainState as TrainState
from .steps import make_eval_step as make_eval_step
from .steps import make_train_step as make_train_step
from .sweep import Sweep as Sweep
from .trainer import Trainer as Trainer
