"""The training core: losses, metrics, pure steps, the fused loop, placement, the Trainer, streaming.

Any NNX module, any optax transform; no config objects, file formats or CLI
words (the run layer, `flaxzoo.experiments`, adds those).
"""

from flaxzoo.trainers.batching import Layout as Layout
from flaxzoo.trainers.batching import arrange as arrange
from flaxzoo.trainers.batching import make_layout as make_layout
from flaxzoo.trainers.loop import make_fused_loop as make_fused_loop
from flaxzoo.trainers.losses import LOSSES as LOSSES
from flaxzoo.trainers.losses import get_loss as get_loss
from flaxzoo.trainers.losses import logistic_loss as logistic_loss
from flaxzoo.trainers.losses import mse_loss as mse_loss
from flaxzoo.trainers.losses import softmax_loss as softmax_loss
from flaxzoo.trainers.placement import PARALLEL_MODES as PARALLEL_MODES
from flaxzoo.trainers.placement import Placement as Placement
from flaxzoo.trainers.placement import make_placement as make_placement
from flaxzoo.trainers.steps import TrainState as TrainState
from flaxzoo.trainers.steps import make_eval_step as make_eval_step
from flaxzoo.trainers.steps import make_train_step as make_train_step
from flaxzoo.trainers.trainer import History as History
from flaxzoo.trainers.trainer import Trainer as Trainer
