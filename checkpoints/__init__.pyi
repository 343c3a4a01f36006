"""The names `flaxzoo.checkpoints` re-exports (read by `lazy_loader.attach_stub` and by type checkers)."""

from .card import Card as Card
from .card import build_card as build_card
from .card import read_card as read_card
from .card import summary as summary
from .errors import CheckpointError as CheckpointError
from .exporting import export as export
from .manager import Checkpointer as Checkpointer
from .prediction import predict as predict
from .pretrained import list_pretrained as list_pretrained
from .pretrained import load_pretrained as load_pretrained
from .pretrained import read_card_summary as read_card_summary
