"""Everything Orbax: run checkpoints, model cards, export, pretrained models and predict.

The shipped weights are package data in `weights/`.
"""

from flaxzoo.checkpoints.card import Card as Card
from flaxzoo.checkpoints.card import build_card as build_card
from flaxzoo.checkpoints.card import read_card as read_card
from flaxzoo.checkpoints.card import summary as summary
from flaxzoo.checkpoints.errors import CheckpointError as CheckpointError
from flaxzoo.checkpoints.export import export as export
from flaxzoo.checkpoints.manager import Checkpointer as Checkpointer
from flaxzoo.checkpoints.predict import predict as predict
from flaxzoo.checkpoints.pretrained import list_pretrained as list_pretrained
from flaxzoo.checkpoints.pretrained import load_pretrained as load_pretrained
from flaxzoo.checkpoints.pretrained import read_card_summary as read_card_summary
