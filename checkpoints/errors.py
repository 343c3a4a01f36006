"""The checkpoints layer's errors: one line each, naming the file or step."""


class CheckpointError(ValueError):
  """A checkpoint, export or card cannot be used; the message names the step or file and what is wrong."""
