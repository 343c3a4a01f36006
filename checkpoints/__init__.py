"""Everything Orbax: run checkpoints, model cards, export, pretrained models and predict.

The shipped weights are package data in `weights/`.
"""

from typing import TYPE_CHECKING

from flaxzoo.zoo.registry import lazy_exports

# Name -> module, imported on first use: `import flaxzoo.checkpoints` costs nothing
# until a name is used (the CLI's --help and list import no JAX).
_EXPORTS = {
    "Card": "flaxzoo.checkpoints.card",
    "build_card": "flaxzoo.checkpoints.card",
    "read_card": "flaxzoo.checkpoints.card",
    "summary": "flaxzoo.checkpoints.card",
    "CheckpointError": "flaxzoo.checkpoints.errors",
    "export": "flaxzoo.checkpoints.exporting",
    "Checkpointer": "flaxzoo.checkpoints.manager",
    "predict": "flaxzoo.checkpoints.prediction",
    "list_pretrained": "flaxzoo.checkpoints.pretrained",
    "load_pretrained": "flaxzoo.checkpoints.pretrained",
    "read_card_summary": "flaxzoo.checkpoints.pretrained",
}

if TYPE_CHECKING:
  from flaxzoo.checkpoints.card import Card as Card
  from flaxzoo.checkpoints.card import build_card as build_card
  from flaxzoo.checkpoints.card import read_card as read_card
  from flaxzoo.checkpoints.card import summary as summary
  from flaxzoo.checkpoints.errors import CheckpointError as CheckpointError
  from flaxzoo.checkpoints.exporting import export as export
  from flaxzoo.checkpoints.manager import Checkpointer as Checkpointer
  from flaxzoo.checkpoints.prediction import predict as predict
  from flaxzoo.checkpoints.pretrained import list_pretrained as list_pretrained
  from flaxzoo.checkpoints.pretrained import load_pretrained as load_pretrained
  from flaxzoo.checkpoints.pretrained import read_card_summary as read_card_summary


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
