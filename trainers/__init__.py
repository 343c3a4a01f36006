"""The training core: losses, metrics, pure steps, the fused loop, placement, the Trainer, sweeps, streaming.

Any NNX module, any optax transform; no config objects, file formats or CLI
words (the run layer, `flaxzoo.experiments`, adds those).
"""

from typing import TYPE_CHECKING

from flaxzoo.zoo.registry import lazy_exports

# Name -> module, imported on first use: `import flaxzoo.trainers` costs nothing
# until a name is used (the CLI's --help and list import no JAX).
_EXPORTS = {
    "Layout": "flaxzoo.trainers.batching",
    "arrange": "flaxzoo.trainers.batching",
    "make_layout": "flaxzoo.trainers.batching",
    "make_fused_loop": "flaxzoo.trainers.loop",
    "LOSSES": "flaxzoo.trainers.losses",
    "get_loss": "flaxzoo.trainers.losses",
    "logistic_loss": "flaxzoo.trainers.losses",
    "mse_loss": "flaxzoo.trainers.losses",
    "softmax_loss": "flaxzoo.trainers.losses",
    "PARALLEL_MODES": "flaxzoo.trainers.placement",
    "Placement": "flaxzoo.trainers.placement",
    "make_placement": "flaxzoo.trainers.placement",
    "TrainState": "flaxzoo.trainers.steps",
    "make_eval_step": "flaxzoo.trainers.steps",
    "make_train_step": "flaxzoo.trainers.steps",
    "Sweep": "flaxzoo.trainers.sweep",
    "SweepHistory": "flaxzoo.trainers.sweep",
    "DivergedError": "flaxzoo.trainers.trainer",
    "History": "flaxzoo.trainers.trainer",
    "Trainer": "flaxzoo.trainers.trainer",
}

if TYPE_CHECKING:
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
  from flaxzoo.trainers.sweep import Sweep as Sweep
  from flaxzoo.trainers.sweep import SweepHistory as SweepHistory
  from flaxzoo.trainers.trainer import DivergedError as DivergedError
  from flaxzoo.trainers.trainer import History as History
  from flaxzoo.trainers.trainer import Trainer as Trainer


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
